#!/usr/bin/env bash
# milter_bench.sh: Postfix throughput without a milter, with xproxy-milter (inject mode,
# unix socket and TCP), with bench/milter_floor (libmilter's own floor: a filter that only
# inserts a header) and with opendkim signing, measured in one run (bench/milter_bench.py).
# Env: XPROXY_BUILD_DIR (required), MESSAGES (500), SESSIONS (20), ROUNDS (3).
set -euo pipefail
: "${XPROXY_BUILD_DIR:?set XPROXY_BUILD_DIR}"
export XPROXY_SOURCE_DIR=${XPROXY_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
exec python3 "$(dirname "$0")/milter_bench.py"
