#!/usr/bin/env bash
# preload_bench.sh: connection rate of the same server without and with
# libxproxy-preload.so, under the same load, measured alternately in one run
# (bench/preload_rate.cpp). Three servers: "blocking" (one thread in accept(), as a
# legacy gateway), "epoll" (accept4 + non-blocking listener + epoll) and a real nginx
# (stream module, one worker). Every client sends a PROXY v2 header; the servers call
# getpeername() on each connection.
# Target (doc/design.md, "Performance targets"): rate with the shim >= 0.95 x without. Prints, per server, the
# rate ratio and the shim's overhead per connection in microseconds of server CPU. The
# servers do almost nothing per connection (nginx: stream `return`), so these ratios are
# the shim's worst case; a server doing real work per connection hides the same cost.
# Env: XPROXY_BUILD_DIR (required), ROUNDS (5), SECONDS_PER_ROUND (2), CLIENTS (4),
# MODES ("blocking epoll nginx").
set -euo pipefail
B=${XPROXY_BUILD_DIR:?set XPROXY_BUILD_DIR}
RATE=$B/bench/preload_rate
[ -x "$RATE" ] || { echo "preload_bench: $RATE not built (cmake --build \$XPROXY_BUILD_DIR --target preload_rate)" >&2; exit 1; }
summary=()
for mode in ${MODES:-blocking epoll nginx}; do
  out=$("$RATE" --mode "$mode" --rounds "${ROUNDS:-5}" --seconds "${SECONDS_PER_ROUND:-2}" --clients "${CLIENTS:-4}")
  echo "$out"
  echo
  ratio=$(sed -n 's/^rate ratio (with\/without): \([0-9.]*\).*/\1/p' <<<"$out")
  us=$(sed -n 's/^overhead per connection: \([-0-9.]*\) us.*/\1/p' <<<"$out")
  met=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.95) ? "met" : "NOT met" }')
  summary+=("$(printf '%-9s ratio %s (target >= 0.95: %s), %s us of server CPU per connection' "$mode" "$ratio" "$met" "$us")")
done
echo "summary:"
printf '  %s\n' "${summary[@]}"
