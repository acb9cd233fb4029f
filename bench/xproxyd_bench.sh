#!/usr/bin/env bash
# xproxyd_bench.sh: xproxyd throughput and memory next to their references, in one run.
#   cut-through relay   >= 0.90 x smtp-source -> smtp-sink directly at 100 KiB and 1 MiB;
#                       against HAProxy as a plain TCP relay (mode tcp) in the same run:
#                       >= 1.5 x at 2 KiB, >= 1.0 x at 100 KiB and 1 MiB
#   fast path           >= 3 x a Postfix store-and-forward hop (doc/design.md, "The fast path")
#   idle session        <= 64 KiB; resident size also shown at 5,000 sessions
# for 2 KiB, 100 KiB and 1 MiB messages, timed until the last message reached a discarding
# smtp-sink, paths interleaved with their order rotated per round, medians.
# Each throughput run also prints the CPU time xproxyd and HAProxy spent per message in
# the same runs (the fairer figure where client, relay and sink share few cores).
# MODE=callgrind / MODE=strace: instructions / system calls per message of both relays
# for a fixed load instead (no throughput rounds).
# Needs root (Postfix, smtp-sink -u nobody).
# Env: XPROXY_BUILD_DIR, SESSIONS, MESSAGES_SMALL, MESSAGES_LARGE, MESSAGES_HUGE, ROUNDS,
# XPROXYD_ARGS, PATHS, SIZES, IDLE, MODE, COUNT_MESSAGES_* (see xproxyd_bench.py).
set -euo pipefail
: "${XPROXY_BUILD_DIR:?set XPROXY_BUILD_DIR}"
export XPROXY_BUILD_DIR
exec /usr/bin/python3 "$(dirname "$0")/xproxyd_bench.py"
