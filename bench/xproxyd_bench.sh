#!/usr/bin/env bash
# xproxyd_bench.sh: xproxyd throughput and memory next to their references, in one run.
#   cut-through relay   >= 0.90 x smtp-source -> smtp-sink directly (HAProxy as a plain TCP
#                       relay in the same run shows what any relay hop costs on the machine)
#   fast path           >= 3 x a Postfix store-and-forward hop (doc/design.md, "The fast path")
#   idle session        <= 64 KiB; resident size also shown at 5,000 sessions
# for 2 KiB and 100 KiB messages. Needs root (Postfix, smtp-sink -u nobody).
# Env: XPROXY_BUILD_DIR, SESSIONS, MESSAGES_SMALL, MESSAGES_LARGE (see xproxyd_bench.py).
set -euo pipefail
: "${XPROXY_BUILD_DIR:?set XPROXY_BUILD_DIR}"
export XPROXY_BUILD_DIR
exec /usr/bin/python3 "$(dirname "$0")/xproxyd_bench.py"
