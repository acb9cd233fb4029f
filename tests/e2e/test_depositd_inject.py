"""The deposit daemon's SMTP injection (depositd/smtp_injector.cpp, doc/deposit.md
"Injection") into a real Postfix, driven by tests/depositd_inject_driver: Postfix sees the
HTTPS client's address as the SMTP client and the identity as its SASL login (its log's
client= and sasl_username=, its Received header), the next hop (smtp-sink) gets the
message with the trace header first and its lines intact; Postfix's refusals come back
as they are: a DEFER at RCPT is a temporary failure and nothing is delivered, a
header_checks REJECT at the final dot a permanent one, and an smtpd that does not
authorize us for XCLIENT a temporary one (we would otherwise be taken for the client)."""

import re
import subprocess
import time

from harness import Dovecot, E2ETestCase, Postfix, SmtpSink, binary, free_port, main, parse_kv

# 192.0.2.0/24 (the deposited messages' clients) may relay, as an authenticated
# submission client would: these tests are about what Postfix sees, not its relay rules.
MYNETWORKS = "127.0.0.0/8, 192.0.2.0/24"
TRACE = ("X-Original-Source: v=1; ip=192.0.2.7; port=40123; proto=HTTPS;\r\n"
         " login=alice@example.org; by=deposit.test; t=1790000000\r\n")
# LF line ends, a line that starts with a dot, an 8-bit byte, no final line end.
MESSAGE = (b"From: alice@example.org\nTo: bob@example.net\nSubject: deposit test\n\n"
           b".hidden line\ncaf\xc3\xa9\nlast line")


class DepositInject(E2ETestCase):
    def start(self, recipient_restrictions=None, header_checks=None, xclient_hosts="127.0.0.0/8", sasl=False):
        self.sink = SmtpSink(self.sandbox, self.procs, verbose=True)
        self.port = free_port()
        cfg = {"mynetworks": MYNETWORKS, "smtpd_client_port_logging": "yes",
               "smtpd_authorized_xclient_hosts": xclient_hosts}
        if sasl:
            # As a site would run it: relaying is for authenticated clients only, and
            # XCLIENT LOGIN counts as authenticated once Postfix's SASL is enabled.
            dovecot = Dovecot(self.sandbox, self.procs)
            cfg.update({"mynetworks": "127.0.0.0/8", "smtpd_sasl_auth_enable": "yes", "smtpd_sasl_type": "dovecot",
                        "smtpd_sasl_path": dovecot.sasl_path})
            recipient_restrictions = "permit_sasl_authenticated, reject_unauth_destination"
        if recipient_restrictions:
            cfg["smtpd_recipient_restrictions"] = recipient_restrictions
        if header_checks:
            cfg["header_checks"] = "regexp:" + self.sandbox.write("header_checks", header_checks)
        self.pf = Postfix(self.sandbox, self.procs, "pf", self.port, relay_port=self.sink.port, main_cf=cfg).start()

    def inject(self, *rcpts, message=MESSAGE, extra=()):
        msg = self.sandbox.path("message.eml")
        with open(msg, "wb") as f:
            f.write(message)
        trace = self.sandbox.write("trace.txt", TRACE)
        argv = [binary("tests/depositd_inject_driver"), "--mta", "inet:127.0.0.1:%d" % self.port,
                "--client", "192.0.2.7", "--port", "40123", "--login", "alice@example.org",
                "--from", "alice@example.org", "--message", msg, "--trace-header", trace,
                "--helo-name", "deposit.test"] + list(extra)
        for r in rcpts:
            argv += ["--rcpt", r]
        p = subprocess.run(argv, capture_output=True, timeout=60)
        self.assertIn(p.returncode, (0, 1, 2), p.stderr)
        return parse_kv(p.stdout)

    def test_accepted_with_client_and_login(self):
        self.start(sasl=True)
        r = self.inject("bob@example.net", "carol@example.net")
        self.assertEqual(r["outcome"], "accepted", r)
        self.assertEqual((r["code"], r["enhanced"], r["stage"]), ("250", "2.0.0", "dot"))
        qid = r["queue_id"]
        self.assertRegex(qid, r"^[0-9A-Za-z]+$")
        self.pf.wait_log(r"%s: client=unknown\[192\.0\.2\.7\]:40123, sasl_method=XCLIENT, "
                         r"sasl_username=alice@example\.org$" % qid)
        self.pf.wait_log(r"%s: from=<alice@example\.org>, size=\d+, nrcpt=2" % qid)
        (msg,) = self.sink.wait_messages(1)
        # Postfix's Received names the client and the authenticated protocol; our trace
        # header follows it, before the message's own first line.
        self.assertRegex(msg, r"Received: from \[192\.0\.2\.7\] \(unknown \[192\.0\.2\.7\]\)\n"
                              r"\tby pf\.test\.invalid \(Postfix\) with ESMTPA id %s" % qid)
        head = msg[msg.index("X-Original-Source:"):]
        self.assertTrue(head.startswith(TRACE.replace("\r\n", "\n") + "From: alice@example.org\n"), head[:300])
        # Dot-stuffing undone by Postfix, the 8-bit line and the unterminated last line intact.
        self.assertIn("\n\n.hidden line\ncafé\nlast line\n", msg)
        self.assertEqual([c.split(" ORCPT=")[0] for c in self.sink.commands("RCPT")],
                         ["RCPT TO:<bob@example.net>", "RCPT TO:<carol@example.net>"])
        self.assertIn("BODY=8BITMIME", self.sink.commands("MAIL")[0])

    def test_relay_needs_the_login(self):
        # The same Postfix without a login for the client: relaying is refused (by the
        # default smtpd_relay_restrictions' defer_unauth_destination: 454, temporary).
        self.start(sasl=True)
        r = self.inject("bob@example.net", extra=("--login", ""))
        self.assertEqual((r["outcome"], r["stage"], r["code"]), ("tempfail", "rcpt", "454"), r)
        self.assertIn("Relay access denied", r["text"])
        self.pf.wait_log(r"reject: RCPT from unknown\[192\.0\.2\.7\]:40123: \d+ .*Relay access denied")

    def test_defer_at_rcpt_is_temporary_and_all_or_nothing(self):
        self.start(recipient_restrictions="check_recipient_access inline:{later@example.net=DEFER}, "
                                          "permit_mynetworks, reject_unauth_destination")
        r = self.inject("bob@example.net", "later@example.net")
        self.assertEqual(r["outcome"], "tempfail", r)
        self.assertEqual((r["stage"], r["code"]), ("rcpt", "450"), r)
        self.assertEqual(r["enhanced"][:2], "4.")
        self.assertIn("<later@example.net>: Recipient address rejected", r["text"])
        self.assertEqual(r["queue_id"], "")
        # Postfix judged the deposited client, not us; and the accepted recipient got nothing.
        self.pf.wait_log(r"(NOQUEUE|\w+): reject: RCPT from unknown\[192\.0\.2\.7\]:40123: 450 .*"
                         r"to=<later@example\.net> proto=ESMTP helo=<\[192\.0\.2\.7\]>")
        self.pf.wait_log(r"disconnect from unknown\[192\.0\.2\.7\]:40123 .*rset=1")
        time.sleep(1.0)
        self.assertEqual(self.sink.messages(), [])
        self.assertNotRegex(self.pf.log(), r"nrcpt=")

    def test_reject_at_final_dot_is_permanent(self):
        self.start(header_checks="/^Subject: deposit test/ REJECT content not wanted here\n")
        r = self.inject("bob@example.net")
        self.assertEqual(r["outcome"], "permfail", r)
        self.assertEqual((r["stage"], r["code"], r["enhanced"]), ("dot", "550", "5.7.1"), r)
        self.assertIn("content not wanted here", r["text"])
        self.assertEqual(self.sink.messages(), [])

    def test_xclient_not_authorized_is_temporary(self):
        self.start(xclient_hosts="")
        r = self.inject("bob@example.net")
        self.assertEqual(r["outcome"], "tempfail", r)
        self.assertEqual((r["stage"], r["code"]), ("xclient", "0"), r)
        self.assertIn("smtpd_authorized_xclient_hosts", r["text"])
        self.assertNotRegex(self.pf.log(), r"client=localhost|client=unknown\[127\.0\.0\.1\]")


if __name__ == "__main__":
    main()
