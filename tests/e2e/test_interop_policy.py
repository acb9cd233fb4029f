"""Interop d): Postfix's own example policy request (SMTPD_POLICY_README) and requests
captured from a live Postfix 3.7 parse correctly with our parser (xproxy-wire
policy-parse). The live capture runs every time: Postfix with check_policy_service
pointing at a capture server, one message from 127.0.0.66."""

import os

from harness import (SOURCE_DIR, CaptureServer, E2ETestCase, Postfix, SmtpSink, free_port, main, parse_kv,
                     send_mail, wait_until, wire)

DATA = os.path.join(SOURCE_DIR, "tests", "e2e", "data")


def requests(out):
    reqs, cur = [], {}
    for line in out.decode().splitlines():
        if line == "---":
            reqs.append(cur)
            cur = {}
        elif "=" in line:
            k, v = line.split("=", 1)
            cur[k] = v
    return reqs


class PolicyInterop(E2ETestCase):
    def test_readme_example(self):
        with open(os.path.join(DATA, "policy_example_readme.txt"), "rb") as f:
            rc, out, err = wire(["policy-parse"], f.read())
        self.assertEqual(rc, 0, err + out.decode())
        (r,) = requests(out)
        self.assertEqual(r["request"], "smtpd_access_policy")
        self.assertEqual(r["client_address"], "1.2.3.4")
        self.assertEqual(r["ccert_issuer"], "Wietse+20Venema")
        self.assertEqual(r["server_port"], "54321")

    def test_stored_postfix37_capture(self):
        with open(os.path.join(DATA, "policy_postfix37_capture.txt"), "rb") as f:
            rc, out, err = wire(["policy-parse"], f.read())
        self.assertEqual(rc, 0, err)
        (r,) = requests(out)
        self.assertEqual(len(r), 29)
        self.assertEqual(r["client_address"], "127.0.0.66")

    def test_live_capture(self):
        cap = CaptureServer(respond=lambda i, data: b"action=DUNNO\n\n" * data.count(b"\n\n") if data.endswith(
            b"\n\n") else None)
        self.addCleanup(cap.close)
        sink = SmtpSink(self.sandbox, self.procs)
        port = free_port()
        pf = Postfix(self.sandbox, self.procs, "pf", port, relay_port=sink.port, main_cf={
            "smtpd_recipient_restrictions": "check_policy_service inet:127.0.0.1:%d, permit_mynetworks, "
                                            "reject_unauth_destination" % cap.port}).start()
        replies = send_mail(port, source="127.0.0.66", sender="alice@example.org", rcpt="bob@example.net",
                            helo="client66.example")
        self.assertTrue(any(t.startswith("250 2.0.0 Ok: queued") for _, t in replies), replies)
        raw = wait_until(lambda: next((s for s in cap.sessions if s.endswith(b"\n\n")), None), 10, 0.05,
                         "policy request")
        if os.environ.get("XPROXY_SAVE_CAPTURE"):
            with open(os.path.join(DATA, "policy_postfix37_capture.txt"), "wb") as f:
                f.write(raw)
        rc, out, err = wire(["policy-parse"], raw)
        self.assertEqual(rc, 0, err)
        (r,) = requests(out)
        self.assertEqual(r["request"], "smtpd_access_policy")
        self.assertEqual(r["protocol_state"], "RCPT")
        self.assertEqual(r["client_address"], "127.0.0.66")
        self.assertEqual(r["sender"], "alice@example.org")
        self.assertEqual(r["recipient"], "bob@example.net")
        self.assertEqual(r["helo_name"], "client66.example")
        self.assertEqual(len(r), 29, sorted(r))
        # Half a request is reported, not silently accepted.
        rc, out, _ = wire(["policy-parse"], raw[:len(raw) // 2])
        self.assertEqual(rc, 1)
        self.assertIn(b"error=input ends inside a request", out)


if __name__ == "__main__":
    main()
