"""Interop d): Postfix's own example policy request (SMTPD_POLICY_README) and requests
captured from a live Postfix 3.7 parse correctly with our parser (xproxy-wire
policy-parse: name=value per known attribute, "---" after each request). The live
capture runs every time: a private Postfix with check_policy_service (before
permit_mynetworks) pointing at a capture server that answers action=DUNNO, mail sent by
swaks and by a raw client from 127.0.0.66. Every value the parser prints is checked
against an independent reading of the raw bytes."""

import os

from harness import (SOURCE_DIR, E2ETestCase, Postfix, SmtpClient, SmtpSink, free_port, main, policy_responder,
                     split_requests, swaks, wire)

DATA = os.path.join(SOURCE_DIR, "tests", "e2e", "data")

# The 29 attributes Postfix 3.7.11 sends with every smtpd_access_policy request.
POSTFIX37_ATTRIBUTES = {
    "request", "protocol_state", "protocol_name", "client_address", "client_name", "client_port",
    "reverse_client_name", "server_address", "server_port", "helo_name", "sender", "recipient",
    "recipient_count", "queue_id", "instance", "size", "etrn_domain", "stress", "sasl_method", "sasl_username",
    "sasl_sender", "ccert_subject", "ccert_issuer", "ccert_fingerprint", "ccert_pubkey_fingerprint",
    "encryption_protocol", "encryption_cipher", "encryption_keysize", "policy_context",
}


def parsed_requests(out):
    """policy-parse output -> list of {name: value}, one per request."""
    reqs, cur = [], {}
    for line in out.decode().splitlines():
        if line == "---":
            reqs.append(cur)
            cur = {}
        elif "=" in line:
            k, v = line.split("=", 1)
            cur[k] = v
    if cur:
        reqs.append(cur)
    return reqs


class PolicyInterop(E2ETestCase):
    def parse(self, raw):
        rc, out, err = wire(["policy-parse"], raw)
        self.assertEqual(rc, 0, "policy-parse failed: %s%s" % (out.decode(), err))
        reqs = parsed_requests(out)
        # Independent oracle: what the raw bytes say, attribute by attribute.
        raw_reqs = split_requests(raw)
        self.assertEqual(len(reqs), len(raw_reqs), out)
        for got, want in zip(reqs, raw_reqs):
            for k, v in got.items():
                self.assertIn(k, want, "parser invented attribute %s" % k)
                self.assertEqual(v, want[k], "attribute %s" % k)
        return reqs, raw_reqs

    def test_readme_example(self):
        with open(os.path.join(DATA, "policy_example_readme.txt"), "rb") as f:
            (r,), _ = self.parse(f.read())
        self.assertEqual(r["request"], "smtpd_access_policy")
        self.assertEqual(r["protocol_state"], "RCPT")
        self.assertEqual(r["client_address"], "1.2.3.4")
        self.assertEqual(r["client_port"], "1234")
        self.assertEqual(r["helo_name"], "some.domain.tld")
        self.assertEqual(r["sasl_username"], "you")
        self.assertEqual(r["ccert_issuer"], "Wietse+20Venema")  # no xtext decoding here
        self.assertEqual(r["server_port"], "54321")
        self.assertEqual(r["policy_context"], "submission")

    def test_stored_postfix37_capture(self):
        with open(os.path.join(DATA, "policy_postfix37_capture.txt"), "rb") as f:
            (r,), (raw,) = self.parse(f.read())
        self.assertEqual(set(raw), POSTFIX37_ATTRIBUTES)
        self.assertEqual(set(r), POSTFIX37_ATTRIBUTES, "every Postfix 3.7 attribute is known to the parser")
        self.assertEqual(r["client_address"], "127.0.0.66")
        self.assertEqual(r["protocol_state"], "RCPT")

    def test_live_capture(self):
        cap = self.capture(respond=policy_responder("DUNNO"))
        sink = SmtpSink(self.sandbox, self.procs)
        port = free_port()
        Postfix(self.sandbox, self.procs, "pf", port, relay_port=sink.port, main_cf={
            "smtpd_recipient_restrictions": "check_policy_service inet:127.0.0.1:%d, permit_mynetworks, "
                                            "reject_unauth_destination" % cap.port}).start()
        # swaks, two recipients: two requests on one policy connection, each answered once.
        rc, transcript = swaks(port, source="127.0.0.66", sender="alice@example.org",
                               rcpt="bob@example.net,carol@example.net", helo="client66.example")
        self.assertEqual(rc, 0, transcript)
        self.assertIn("250 2.0.0 Ok: queued", transcript)
        raw = cap.wait_session(lambda b: b.count(b"\n\n") >= 2, what="two policy requests")
        if os.environ.get("XPROXY_SAVE_CAPTURE"):
            with open(os.path.join(DATA, "policy_postfix37_capture.txt"), "wb") as f:
                f.write(raw[:raw.index(b"\n\n") + 2])
        reqs, raw_reqs = self.parse(raw)
        self.assertEqual([r.get("recipient") for r in reqs], ["bob@example.net", "carol@example.net"])
        for r, raw_r in zip(reqs, raw_reqs):
            self.assertEqual(set(raw_r), POSTFIX37_ATTRIBUTES)
            self.assertEqual(set(r), POSTFIX37_ATTRIBUTES)
            self.assertEqual(r["request"], "smtpd_access_policy")
            self.assertEqual(r["protocol_state"], "RCPT")
            self.assertEqual(r["protocol_name"], "ESMTP")
            self.assertEqual(r["client_address"], "127.0.0.66")
            self.assertEqual(r["server_address"], "127.0.0.1")
            self.assertEqual(r["server_port"], str(port))
            self.assertEqual(r["sender"], "alice@example.org")
            self.assertEqual(r["helo_name"], "client66.example")

        # A raw client whose source port we know.
        c = SmtpClient(port, source="127.0.0.66")
        self.addCleanup(c.close)
        c.ehlo("raw66.example")
        c.cmd("MAIL FROM:<dave@example.org>")
        self.assertEqual(c.cmd("RCPT TO:<erin@example.net>")[0], 250)
        raw = cap.wait_session(lambda b: b"erin@example.net" in b, what="the raw client's policy request")
        (r,), _ = self.parse(raw[raw.rindex(b"request=smtpd_access_policy"):])
        self.assertEqual(r["client_port"], str(c.local[1]))
        self.assertEqual(r["helo_name"], "raw66.example")
        self.assertEqual(r["recipient"], "erin@example.net")

        # Half a request is reported, not silently accepted.
        rc, out, _ = wire(["policy-parse"], raw[:len(raw) // 2])
        self.assertEqual(rc, 1, out)
        self.assertIn(b"error=", out)


if __name__ == "__main__":
    main()
