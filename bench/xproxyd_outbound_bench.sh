#!/usr/bin/env bash
# xproxyd_outbound_bench.sh: Postfix delivering through xproxyd's outbound mode (relayhost
# = xproxyd, MX hosts found in the DNS, egress pools) next to the same Postfix delivering
# directly to the same MX hosts, in one run:
#   outbound relay      >= 0.90 x direct delivery at 2 KiB and 100 KiB
# timed from the release of N held messages until the last one reached the discarding MX
# sinks, both paths in every round, medians; also xproxyd's CPU time per message, its MX
# cache hit rate and the messages relayed per egress pool member (after SIGHUP).
# Needs root (Postfix, smtp-sink -u nobody) and nsd.
# Env: XPROXY_BUILD_DIR, SIZES, MESSAGES_SMALL, MESSAGES_LARGE, ROUNDS, SESSIONS, DOMAINS,
# XPROXYD_ARGS (see xproxyd_outbound_bench.py).
set -euo pipefail
: "${XPROXY_BUILD_DIR:?set XPROXY_BUILD_DIR}"
export XPROXY_BUILD_DIR
exec /usr/bin/python3 "$(dirname "$0")/xproxyd_outbound_bench.py"
