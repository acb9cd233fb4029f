#!/usr/bin/env bash
# policyd_bench.sh: xproxy-policyd side by side with postfwd (Debian's postfwd2, one rule
# answering DUNNO) in one run, under the same load: 100 persistent connections sending
# Postfix 3.7's RCPT request (tests/e2e/data/policy_postfix37_capture.txt).
#   throughput: closed loop, as fast as replies come back   (target >= 50,000 req/s)
#   latency:    open loop at 10,000 req/s                   (target p99 < 1 ms)
# xproxy-policyd runs the vdomains, deposit and risk policies on a small directory.
# Env: XPROXY_BUILD_DIR, SECONDS_EACH (5).
set -euo pipefail
B=${XPROXY_BUILD_DIR:?set XPROXY_BUILD_DIR}
SRC=$(cd "$(dirname "$0")/.." && pwd)
T=${SECONDS_EACH:-5}
REQ=$SRC/tests/e2e/data/policy_postfix37_capture.txt
LOAD=$B/policyd/policyd_load
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }

printf 'domain example.com\nuser alice@example.com\n' > "$tmp/dir"
printf 'class high transport=smtp-high:\nnetwork 192.0.2.0/24 class=high\n' > "$tmp/risk"
P1=$(free_port)
"$B/policyd/xproxy-policyd" --listen "inet:127.0.0.1:$P1" --log off --threads 2 \
  --policy vdomains,deposit,risk --directory "$tmp/dir" --risk-map "$tmp/risk" &
pids+=($!)
wait_port "$P1"

P2=$(free_port)
if command -v postfwd >/dev/null; then
  postfwd --nodaemon --interface 127.0.0.1 --port "$P2" --min_servers 100 --max_servers 110 \
    --min_spare_servers 1 --max_spare_servers 110 --pidfile "$tmp/postfwd.pid" -r 'id=R1; action=DUNNO' \
    >"$tmp/postfwd.log" 2>&1 &
  pids+=($!)
  wait_port "$P2" || P2=
  sleep 2  # let it prefork its children
else
  P2=
fi

run() {  # run NAME PORT [RATE]
  local out
  out=$("$LOAD" "$2" 100 "$T" "$REQ" ${3:-} || true)
  echo "$1: $out"
}
echo "== throughput, 100 persistent connections, closed loop, ${T}s"
run xproxy-policyd "$P1" | tee "$tmp/a"
[ -n "$P2" ] && run postfwd "$P2" | tee "$tmp/b"
echo "== latency at 10,000 requests/s, open loop, ${T}s"
run xproxy-policyd "$P1" 10000 | tee "$tmp/c"
[ -n "$P2" ] && run postfwd "$P2" 10000 | tee "$tmp/d"
rate=$(sed -n 's/.* rate=\([0-9]*\).*/\1/p' "$tmp/a")
p99=$(sed -n 's/.* p99_us=\([0-9]*\).*/\1/p' "$tmp/c")
echo "xproxy-policyd: ${rate} req/s (target 50000, ratio $(awk -v r="$rate" 'BEGIN{printf "%.2f", r/50000}')); p99 at 10k req/s ${p99} us (target 1000)"
if [ -n "$P2" ]; then
  r2=$(sed -n 's/.* rate=\([0-9]*\).*/\1/p' "$tmp/b")
  echo "xproxy-policyd / postfwd throughput ratio: $(awk -v a="$rate" -v b="$r2" 'BEGIN{ if (b>0) printf "%.1f", a/b; else print "n/a"}')"
fi
