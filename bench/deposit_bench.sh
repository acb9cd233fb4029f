#!/usr/bin/env bash
# deposit_bench.sh: 2 KiB messages deposited over HTTPS into xproxy-depositd (keep-alive
# TLS, a Bearer token per request, a signed receipt per message, cut-through into Postfix
# with XCLIENT) against the same messages submitted over SMTP with STARTTLS + AUTH PLAIN
# (Dovecot) to the same Postfix, in one run:
#   deposits/s >= 1.0 x SMTP submissions/s, CLIENTS concurrent clients each on one
#   kept-alive connection (Python http.client / smtplib, forked)
# medians of ROUNDS rounds, both paths in every round; the servers' and the clients' CPU
# time per message and the clients' share of the machine; and the JWT verify cost per
# request (bench/jose_bench BM_Validate, when built).
# Needs root (Postfix, Dovecot: dovecot-core, smtp-sink -u nobody), python3-jwt and
# python3-cryptography.
# Env: XPROXY_BUILD_DIR, CLIENTS, MESSAGES, ROUNDS, SIZE, USERS, PATHS, DEPOSITD_ARGS
# (see deposit_bench.py).
set -euo pipefail
: "${XPROXY_BUILD_DIR:?set XPROXY_BUILD_DIR}"
export XPROXY_BUILD_DIR
exec /usr/bin/python3 "$(dirname "$0")/deposit_bench.py"
