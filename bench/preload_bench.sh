#!/usr/bin/env bash
# preload_bench.sh: connection rate of the same server without and with
# libxproxy-preload.so (and with libproxyproto.so when LIBPROXYPROTO names one), under
# the same load, measured in interleaved rounds in one run (bench/preload_rate.cpp).
# Three servers: "blocking" (one thread in accept(), as a legacy gateway), "epoll"
# (accept4 + non-blocking listener + epoll) and a real nginx (stream module, one worker).
# Every client sends a PROXY v2 header (TCP4, 28 bytes; libproxyproto accepts v1 and v2
# by default); the servers call getpeername() on each connection.
# The shim logs as by default (syslog, level info) unless XPROXY_LOG / XPROXY_LOG_LEVEL are
# set; libproxyproto runs with LIBPROXYPROTO_MUST_USE_PROTOCOL_HEADER=1, without
# LIBPROXYPROTO_DEBUG (bench/build-libproxyproto.sh builds it with -O2).
# Targets (doc/design.md, "Performance targets"): rate with the shim >= 0.95 x without,
# and ahead of libproxyproto (shim/libproxyproto > 1). Prints, per server, the rate ratios
# and each library's overhead per connection in microseconds of server CPU. The servers
# do almost nothing per connection (nginx: stream `return`), so these ratios are the
# worst case; a server doing real work per connection hides the same cost.
# Env: XPROXY_BUILD_DIR (required), LIBPROXYPROTO (optional: path to libproxyproto.so),
# ROUNDS (5), SECONDS_PER_ROUND (2), CLIENTS (4), MODES ("blocking epoll nginx").
set -euo pipefail
B=${XPROXY_BUILD_DIR:?set XPROXY_BUILD_DIR}
RATE=$B/bench/preload_rate
[ -x "$RATE" ] || { echo "preload_bench: $RATE not built (cmake --build \$XPROXY_BUILD_DIR --target preload_rate)" >&2; exit 1; }
if [ -n "${LIBPROXYPROTO:-}" ] && [ ! -r "$LIBPROXYPROTO" ]; then
  echo "preload_bench: LIBPROXYPROTO=$LIBPROXYPROTO is not readable (bench/build-libproxyproto.sh builds it)" >&2
  exit 1
fi
summary=()
for mode in ${MODES:-blocking epoll nginx}; do
  out=$("$RATE" --mode "$mode" --rounds "${ROUNDS:-5}" --seconds "${SECONDS_PER_ROUND:-2}" --clients "${CLIENTS:-4}")
  echo "$out"
  echo
  pick() { sed -n "s/^$1: \\([-0-9.]*\\).*/\\1/p" <<<"$out"; }
  ratio=$(pick 'rate ratio shim\/without')
  us=$(pick 'overhead per connection shim')
  met=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.95) ? "met" : "NOT met" }')
  line=$(printf '%-9s shim/without %s (target >= 0.95: %s), shim %s us of server CPU per connection' \
    "$mode" "$ratio" "$met" "$us")
  if [ -n "${LIBPROXYPROTO:-}" ]; then
    lw=$(pick 'rate ratio libproxyproto\/without')
    sl=$(pick 'rate ratio shim\/libproxyproto')
    lus=$(pick 'overhead per connection libproxyproto')
    ahead=$(awk -v r="$sl" 'BEGIN { print (r > 1) ? "met" : "NOT met" }')
    line+=$(printf '; libproxyproto/without %s (%s us); shim/libproxyproto %s (target > 1: %s)' \
      "$lw" "$lus" "$sl" "$ahead")
  fi
  summary+=("$line")
done
echo "summary:"
printf '  %s\n' "${summary[@]}"
