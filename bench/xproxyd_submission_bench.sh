#!/usr/bin/env bash
# xproxyd_submission_bench.sh: mail clients submitting over STARTTLS with AUTH PLAIN
# (checked by Dovecot) to Postfix directly, and through xproxyd's submission mode in front
# of the same Postfix (XCLIENT ADDR= LOGIN=), in one run:
#   via xproxyd        >= 0.85 x direct, with a new connection per message and with 10
#                      messages per connection
# messages accepted per second by CLIENTS concurrent clients, both paths in every round,
# medians; also the servers' and the clients' CPU time per message (Postfix with every
# process it forks, Dovecot, xproxyd), and how much of the machine the clients took.
# When xproxyd cannot be run, the direct figures are printed alone and the script says why.
# Needs root (Postfix, Dovecot: dovecot-core, smtp-sink -u nobody).
# Env: XPROXY_BUILD_DIR, CLIENTS, MESSAGES_SINGLE, MESSAGES_MULTI, PER_CONN, ROUNDS, SIZE,
# USERS, MODES, PATHS, XPROXYD_ARGS; MODE=strace: system calls per message instead of
# rates (see xproxyd_submission_bench.py).
set -euo pipefail
: "${XPROXY_BUILD_DIR:?set XPROXY_BUILD_DIR}"
export XPROXY_BUILD_DIR
exec /usr/bin/python3 "$(dirname "$0")/xproxyd_submission_bench.py"
