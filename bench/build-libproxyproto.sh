#!/usr/bin/env bash
# build-libproxyproto.sh DIR: builds libproxyproto.so (an LD_PRELOAD library that reads
# PROXY headers, https://github.com/msantos/libproxyproto) in DIR, a source checkout of
# it, with -O2, for bench/preload_bench.sh. Its code is not part of this tree. Prints the
# path of the library, to be given to the bench as LIBPROXYPROTO:
#   LIBPROXYPROTO=$(bench/build-libproxyproto.sh /tmp/libproxyproto) \
#     XPROXY_BUILD_DIR=build/ci bench/preload_bench.sh
# Its Makefile passes no CFLAGS, so -O2 travels in CC. Env: CC (cc).
set -euo pipefail
DIR=${1:?usage: build-libproxyproto.sh DIR (a libproxyproto source checkout)}
[ -f "$DIR/libproxyproto.c" ] && [ -f "$DIR/Makefile" ] || {
  echo "build-libproxyproto: $DIR is not a libproxyproto checkout (no libproxyproto.c / Makefile)" >&2
  exit 1
}
rm -f "$DIR/libproxyproto.so"
make -C "$DIR" CC="${CC:-cc} -O2" libproxyproto >&2
[ -f "$DIR/libproxyproto.so" ] || { echo "build-libproxyproto: no libproxyproto.so was built" >&2; exit 1; }
echo "$(cd "$DIR" && pwd)/libproxyproto.so"
