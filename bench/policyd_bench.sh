#!/usr/bin/env bash
# policyd_bench.sh: xproxy-policyd side by side with postfwd (Debian's postfwd2 1.35) in
# one run, under the same load generator (bench/policyd_load.cpp): 100 persistent TCP
# connections on loopback sending a realistic request mix (bench/policyd_mix.py: Postfix
# 3.7's 29-attribute requests, 80 % DUNNO, 15 % rejects, 5 % FILTER).
#   throughput: closed loop, as fast as replies come back        (target >= 50,000 req/s)
#   latency:    open loop at 10,000 req/s, evenly paced,          (target p99 < 1 ms)
#               latency from each send() to its reply
#   latency:    open loop at 1,000 req/s (a rate postfwd sustains, for a fair p99 ratio)
# xproxy-policyd runs the vdomains, deposit and risk policies on a one-domain directory;
# postfwd runs three rules that give the same answer to every request of the mix (the
# generator's actions= counts show it). Both log nothing (--log off / --perfmon) for the
# comparison; a second xproxy-policyd also writes its one line per decision (--log stderr
# into a file, through the asynchronous log writer) to show what logging costs.
# postfwd's request cache is off (-c 0): with it each request also goes to postfwd's
# cache daemon, which made it several times slower here, and xproxy-policyd has no cache.
# The generator shares the 2 cores with the servers; other processes' load is printed as
# the load average before and after: CPU hogs running beside the bench push the p99 into
# milliseconds for both servers (the generator's lag_ columns then grow too).
# Env: XPROXY_BUILD_DIR, SECONDS_EACH (5).
set -euo pipefail
B=${XPROXY_BUILD_DIR:?set XPROXY_BUILD_DIR}
SRC=$(cd "$(dirname "$0")/.." && pwd)
T=${SECONDS_EACH:-5}
LOAD=$B/bench/policyd_load
tmp=$(mktemp -d)
chmod 711 "$tmp"  # postfwd's children run as nobody and read the rule file
pids=()
postfwd_master=
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if [ -n "$postfwd_master" ]; then  # it daemonizes: stop it by the pid it wrote
    kill "$postfwd_master" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$postfwd_master" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
field() { sed -n "s/.* $2=\([0-9.]*\).*/\1/p" "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

python3 "$SRC/bench/policyd_mix.py" "$SRC/tests/e2e/data/policy_postfix37_capture.txt" > "$tmp/mix"
printf 'domain example.com\nuser alice@example.com\n' > "$tmp/dir"
printf 'class high transport=smtp-high:\nnetwork 192.0.2.0/24 class=high\n' > "$tmp/risk"
cat > "$tmp/rules" <<'EOF'
id=DEPOSIT; protocol_state==RCPT; sender_domain==example.com; sasl_username!~^alice@example\.com$; action=550 5.7.1 Authentication required to send as <$$sender>
id=VDOMAINS; protocol_state==RCPT; recipient_domain==example.com; recipient!~^alice@example\.com$; action=550 5.1.1 User unknown in virtual domain
id=RISK; protocol_state==RCPT; client_address==192.0.2.0/24; action=FILTER smtp-high:
EOF
chmod 644 "$tmp/rules"

P1=$(free_port)
"$B/policyd/xproxy-policyd" --listen "inet:127.0.0.1:$P1" --allow-peers 127.0.0.1/32 --log off --threads 2 \
  --policy vdomains,deposit,risk --directory "$tmp/dir" --risk-map "$tmp/risk" &
pids+=($!)
wait_port "$P1"
P3=$(free_port)
"$B/policyd/xproxy-policyd" --listen "inet:127.0.0.1:$P3" --allow-peers 127.0.0.1/32 --log stderr --threads 2 \
  --policy vdomains,deposit,risk --directory "$tmp/dir" --risk-map "$tmp/risk" 2>"$tmp/policyd.log" &
pids+=($!)
wait_port "$P3"

P2=
if command -v postfwd2 >/dev/null; then
  # postfwd2 always daemonizes (--nodaemon is its stdin test mode). Its default group
  # "nobody" does not exist on Debian, its default pid file and cache socket live in
  # /var/tmp: give it nogroup and private paths. 100 persistent connections need 100
  # preforked children (Net::Server wants max_spare_servers below max_servers).
  mkdir -m 777 "$tmp/postfwd"
  P2=$(free_port)
  postfwd2 --user nobody --group nogroup --pidfile "$tmp/postfwd/master.pid" \
    --cache_socket "unix::$tmp/postfwd/cache.sock" -f "$tmp/rules" --interface 127.0.0.1 --port "$P2" \
    --perfmon -c 0 --min_servers 105 --max_servers 120 \
    >"$tmp/postfwd.log" 2>&1 || { cat "$tmp/postfwd.log"; P2=; }
  for _ in $(seq 50); do [ -s "$tmp/postfwd/master.pid" ] && break; sleep 0.1; done
  postfwd_master=$(cat "$tmp/postfwd/master.pid" 2>/dev/null || true)
  if [ -n "$P2" ] && wait_port "$P2"; then
    for _ in $(seq 100); do  # until its children are forked
      n=$(pgrep -c -f '^ postfwd2::policy::child' -u nobody || true)
      [ "${n:-0}" -ge 105 ] && break; sleep 0.1
    done
  else
    echo "postfwd did not start:"; cat "$tmp/postfwd.log"; P2=
  fi
else
  echo "postfwd2 not installed (scripts/bootstrap installs it): no reference"
fi

run() {  # run NAME PORT OUT [RATE]; a pause first lets the previous server's processes settle
  sleep 2
  local load
  load=$(cut -d' ' -f1 /proc/loadavg)
  "$LOAD" "$2" 100 "$T" "$tmp/mix" ${4:-} > "$3" || true
  echo "$1 (load $load): $(cat "$3")"
}
echo "machine: $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== throughput, 100 persistent connections, closed loop, ${T}s"
run xproxy-policyd "$P1" "$tmp/a"
[ -n "$P2" ] && run postfwd "$P2" "$tmp/b"
echo "== latency at 10,000 requests/s, open loop, ${T}s"
run xproxy-policyd "$P1" "$tmp/c" 10000
[ -n "$P2" ] && run postfwd "$P2" "$tmp/d" 10000
echo "== latency at 1,000 requests/s, open loop, ${T}s"
run xproxy-policyd "$P1" "$tmp/e" 1000
[ -n "$P2" ] && run postfwd "$P2" "$tmp/f" 1000
echo "== xproxy-policyd logging one line per decision (stderr into a file)"
run "xproxy-policyd logging, closed loop" "$P3" "$tmp/g"
run "xproxy-policyd logging, 10,000 req/s" "$P3" "$tmp/h" 10000
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

rate=$(field "$tmp/a" rate)
p99=$(field "$tmp/c" p99_us)
echo "xproxy-policyd: $rate req/s (target 50000: x$(ratio "$rate" 50000)); at 10k req/s p50 $(field "$tmp/c" p50_us) us," \
  "p99 $p99 us, p99.9 $(field "$tmp/c" p999_us) us (target p99 1000 us: x$(ratio "$p99" 1000))"
lag=$(field "$tmp/c" lag_p99_us)
if awk -v l="$lag" 'BEGIN{exit !(l > 250)}'; then
  echo "warning: the generator itself sent 1 % of its requests ${lag} us or more late at 10k req/s:" \
    "other processes held the CPUs, so that p99 measures the machine more than the server"
fi
echo "with one log line per decision: $(field "$tmp/g" rate) req/s, p99 at 10k req/s $(field "$tmp/h" p99_us) us" \
  "($(grep -c 'event=decision' "$tmp/policyd.log") lines logged," \
  "$(sed -n 's/.*event=log_dropped lines=\([0-9]*\).*/\1/p' "$tmp/policyd.log" | awk '{s+=$1} END{print s+0}') dropped)"
if [ -n "$P2" ]; then
  echo "throughput ratio xproxy-policyd / postfwd: $(ratio "$rate" "$(field "$tmp/b" rate)")"
  echo "p99 ratio postfwd / xproxy-policyd at 10k req/s: $(ratio "$(field "$tmp/d" p99_us)" "$p99")" \
    "(postfwd unsent=$(field "$tmp/d" unsent), lag_p99_us=$(field "$tmp/d" lag_p99_us))"
  echo "p99 ratio postfwd / xproxy-policyd at 1k req/s: $(ratio "$(field "$tmp/f" p99_us)" "$(field "$tmp/e" p99_us)")"
fi
