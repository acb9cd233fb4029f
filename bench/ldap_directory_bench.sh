#!/usr/bin/env bash
# ldap_directory_bench.sh: xproxy-policyd with its directory in a local slapd (LDAP
# content sync), each figure next to a reference of the same run:
#   initial sync of 100,000 domains and 1,000,000 users   target < 60 s; time and peak
#                         RSS beside the same directory loaded from the directory file
#   LDAP modify -> changed decision, 1,000 changes          target p99 < 1 s
#   lookups during a burst of 10,000 changes               target: p50/p99 as when idle
# Quick run: DOMAINS=1000 (10,000 users). Details and the other knobs: ldap_directory_bench.py.
# Needs root (slapd runs as openldap). Env: XPROXY_BUILD_DIR (a Release build), DOMAINS,
# USERS_PER_DOMAIN, CHANGES, BURST, LOOKUP_RATE, SECONDS.
set -euo pipefail
: "${XPROXY_BUILD_DIR:?set XPROXY_BUILD_DIR}"
export XPROXY_BUILD_DIR
exec /usr/bin/python3 "$(dirname "$0")/ldap_directory_bench.py"
