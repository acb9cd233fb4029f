#!/usr/bin/env bash
# preload_bench.sh: connection rate of the same server (preload_test_server, epoll mode:
# accept4 + non-blocking + epoll, one thread per connection) without and with
# libxproxy-preload.so, under the same sequential load, measured alternately in one run.
# Target (DESIGN.md): rate with the shim >= 0.95 x without. Prints the ratio and the
# per-connection overhead in microseconds. Env: XPROXY_BUILD_DIR, ROUNDS (4), CONNS (5000).
set -euo pipefail
B=${XPROXY_BUILD_DIR:?set XPROXY_BUILD_DIR}
ROUNDS=${ROUNDS:-4}
CONNS=${CONNS:-5000}
SERVER=$B/preload/preload_test_server
CLIENT=$B/preload/preload_conn_rate
SHIM=$B/preload/libxproxy-preload.so
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

start() {  # start NAME [env...] -> prints the port
  local name=$1; shift
  env "$@" "$SERVER" epoll >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pids+=($!)
  for _ in $(seq 100); do grep -q '^port=' "$tmp/$name.out" 2>/dev/null && break; sleep 0.05; done
  sed -n 's/^port=//p' "$tmp/$name.out"
}
plain=$(start plain)
shim=$(start shim LD_PRELOAD="$SHIM" XPROXY_TRUSTED=127.0.0.1 XPROXY_LOG=off)

"$CLIENT" "$plain" 500 >/dev/null; "$CLIENT" "$shim" 500 >/dev/null  # warm-up
sum_plain=0; sum_shim=0
for r in $(seq "$ROUNDS"); do
  a=$("$CLIENT" "$plain" "$CONNS" | sed -n 's/.*seconds=\([0-9.]*\).*/\1/p')
  b=$("$CLIENT" "$shim" "$CONNS" | sed -n 's/.*seconds=\([0-9.]*\).*/\1/p')
  echo "round $r: without $(awk -v c="$CONNS" -v s="$a" 'BEGIN{printf "%.0f", c/s}') conn/s, with $(awk -v c="$CONNS" -v s="$b" 'BEGIN{printf "%.0f", c/s}') conn/s"
  sum_plain=$(awk -v x="$sum_plain" -v y="$a" 'BEGIN{print x+y}')
  sum_shim=$(awk -v x="$sum_shim" -v y="$b" 'BEGIN{print x+y}')
done
awk -v a="$sum_plain" -v b="$sum_shim" -v n="$((CONNS * ROUNDS))" 'BEGIN{
  ra = n / a; rb = n / b;
  printf "without shim: %.0f conn/s\nwith shim:    %.0f conn/s\nratio (with/without): %.3f (target >= 0.95)\noverhead: %.1f us per connection\n", ra, rb, rb / ra, (b - a) / n * 1e6 }'
