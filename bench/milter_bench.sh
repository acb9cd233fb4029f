#!/usr/bin/env bash
# milter_bench.sh: Postfix throughput without a milter, with xproxy-milter (inject mode,
# unix socket and TCP), with bench/milter_floor (libmilter's own floor: a filter that only
# inserts a header) and with opendkim signing, measured in one run (bench/milter_bench.py):
# end to end (smtp-source until the last message reached the discarding smtp-sink Postfix
# relays to), queue drained between measurements, order of configurations rotated every
# round, medians and ratios to Postfix without a milter measured in the same run.
# Env: XPROXY_BUILD_DIR (required), MESSAGES (500), SESSIONS (20), ROUNDS (3),
# ORDER (rotate | shuffle), SEED (for shuffle; printed).
set -euo pipefail
: "${XPROXY_BUILD_DIR:?set XPROXY_BUILD_DIR}"
export XPROXY_SOURCE_DIR=${XPROXY_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
exec python3 "$(dirname "$0")/milter_bench.py"
