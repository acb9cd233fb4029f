#!/usr/bin/env python3
"""policyd_mix.py: writes the request mix of bench/policyd_bench.sh to stdout.

Every request is Postfix 3.7's full 29-attribute request (the capture in
tests/e2e/data/policy_postfix37_capture.txt) with the attributes a gateway sees change
from session to session: client address and port, HELO, sender, recipient, SASL login,
protocol state, queue id and instance. One cycle of 20 requests, in the proportions of
an inbound gateway with some submission traffic:
  10 RCPT to a domain not hosted here                  -> DUNNO
   3 RCPT to an existing user of the hosted domain      -> DUNNO
   2 RCPT to an unknown user of the hosted domain       -> 550 5.1.1 (vdomains)
   1 RCPT from a client in the high-risk network        -> FILTER smtp-high: (risk)
   1 RCPT with a hosted sender, not authenticated       -> 550 5.7.1 (deposit)
   1 RCPT with a hosted sender, authenticated as it     -> DUNNO
   2 DATA                                               -> DUNNO
The bench's directory (example.com with user alice) and risk map (192.0.2.0/24 -> high)
and its postfwd rule set give these answers; the load generator counts the replies by
action so the two servers can be seen to agree.
Usage: policyd_mix.py CAPTURE_FILE
"""

import sys


def parse(text):
    out = []
    for line in text.splitlines():
        if line:
            name, _, value = line.partition("=")
            out.append([name, value])
    return out


def render(attrs):
    return "".join("%s=%s\n" % (n, v) for n, v in attrs) + "\n"


def main():
    base = parse(open(sys.argv[1]).read())
    rows = (
        [dict(recipient="rcpt%d@example.net" % i) for i in range(10)]
        + [dict(recipient="alice@example.com")] * 3
        + [dict(recipient="nobody%d@example.com" % i) for i in range(2)]
        + [dict(client_address="192.0.2.10", recipient="bob@example.net")]
        + [dict(sender="alice@example.com", recipient="bob@example.net")]
        + [dict(sender="alice@example.com", sasl_username="alice@example.com", sasl_method="PLAIN",
                recipient="bob@example.net", server_port="587")]
        + [dict(protocol_state="DATA", recipient="", recipient_count="1")] * 2
    )
    for i, row in enumerate(rows):
        attrs = [list(a) for a in base]
        values = dict(client_port=str(40000 + i), helo_name="client%d.example" % i,
                      queue_id="" if row.get("protocol_state") != "DATA" else "4Xq%05dZ" % i,
                      instance="4fa8.6b033b8f.%x.0" % (0x2245b + i))
        values.update(row)
        for a in attrs:
            if a[0] in values:
                a[1] = values[a[0]]
        sys.stdout.write(render(attrs))


if __name__ == "__main__":
    main()
