"""The pieces the submission tests and benchmark stand on: Dovecot's auth service
(harness.Dovecot) and the "home" Postfix (xproxyd_helpers.HomePostfix).

- A mail client on the home Postfix's submission listener gets STARTTLS, no AUTH before
  it, then AUTH PLAIN checked by Dovecot: the right password relays to the sink, a wrong
  one gets 535, no AUTH gets no relay.
- The same over implicit TLS (the smtps listener).
- On the plain listener, XCLIENT from 127.0.0.1 with LOGIN= authenticates the session
  (sasl_method=XCLIENT, the forwarded address and port in the log); without LOGIN= the
  session may not relay.
- Dovecot stopped by PID leaves none of its processes behind."""

import re
import smtplib
import socket

from harness import Dovecot, E2ETestCase, SmtpClient, SmtpSink, children_of, main, pid_alive
from xproxyd_helpers import HomePostfix

USERS = {"alice@example.com": "alice-secret", "bob@example.com": "bob-secret"}
MESSAGE = "From: alice@example.com\r\nTo: friend@other.example\r\nSubject: hi\r\n\r\nhello\r\n"


class SubmissionFixtures(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.dovecot = Dovecot(self.sandbox, self.procs, USERS)
        self.sink = SmtpSink(self.sandbox, self.procs)
        self.home = HomePostfix(self.sandbox, self.procs, self.sink.port, self.dovecot, submission=True, smtps=True)

    def test_submission_with_starttls_and_auth(self):
        with smtplib.SMTP("127.0.0.1", self.home.submission_port, timeout=15) as s:
            s.ehlo("client.example")
            self.assertTrue(s.has_extn("starttls"))
            self.assertFalse(s.has_extn("auth"), "AUTH only after STARTTLS")
            with self.assertRaises(smtplib.SMTPRecipientsRefused):  # no AUTH: no relay
                s.starttls(context=self.home.client_context())
                s.ehlo("client.example")
                s.sendmail("alice@example.com", ["friend@other.example"], MESSAGE)
        with smtplib.SMTP("127.0.0.1", self.home.submission_port, timeout=15) as s:
            s.starttls(context=self.home.client_context())
            s.ehlo("client.example")
            self.assertIn("PLAIN", s.esmtp_features["auth"].upper())
            with self.assertRaises(smtplib.SMTPAuthenticationError) as e:
                s.login("alice@example.com", "wrong")
            self.assertEqual(e.exception.smtp_code, 535)
        with smtplib.SMTP("127.0.0.1", self.home.submission_port, timeout=15) as s:
            s.starttls(context=self.home.client_context())
            s.ehlo("client.example")
            s.user, s.password = "alice@example.com", "alice-secret"
            code, _ = s.auth("PLAIN", s.auth_plain)
            self.assertEqual(code, 235)
            s.sendmail("alice@example.com", ["friend@other.example"], MESSAGE)
        self.home.wait_log(r"postfix/submission/smtpd\[\d+\]: \w+: client=unknown\[127\.0\.0\.1\]:\d+, "
                           r"sasl_method=PLAIN, sasl_username=alice@example\.com")
        self.assertEqual(len(self.sink.wait_messages(1)), 1)

    def test_smtps_with_implicit_tls(self):
        with smtplib.SMTP_SSL("127.0.0.1", self.home.smtps_port, timeout=15,
                              context=self.home.client_context()) as s:
            s.ehlo("client.example")
            s.login("bob@example.com", "bob-secret")
            s.sendmail("bob@example.com", ["friend@other.example"], MESSAGE)
        self.home.wait_log(r"postfix/smtps/smtpd\[\d+\]: \w+: client=.*sasl_username=bob@example\.com")
        self.sink.wait_messages(1)

    def xclient_session(self, xclient):
        c = SmtpClient(self.home.port, source="127.0.0.1")
        try:
            self.assertEqual(c.ehlo("xproxyd.test.invalid")[0], 250)
            self.assertIn("XCLIENT", c.extensions)
            self.assertEqual(c.cmd(xclient)[0], 220)
            self.assertEqual(c.ehlo("laptop.example")[0], 250)
            self.assertEqual(c.cmd("MAIL FROM:<alice@example.com>")[0], 250)
            code, text = c.cmd("RCPT TO:<friend@other.example>")
            if code != 250:
                return code, text
            return c.data(MESSAGE)
        finally:
            c.close()

    def test_xclient_login_authenticates(self):
        code, text = self.xclient_session("XCLIENT ADDR=192.0.2.44 PORT=50123 NAME=[UNAVAILABLE] "
                                          "LOGIN=alice@example.com")
        self.assertEqual(code, 250, text)
        qid = re.search(r"queued as (\w+)", text).group(1)
        self.home.wait_log(qid + r": client=unknown\[192\.0\.2\.44\]:50123, sasl_method=XCLIENT, "
                           r"sasl_username=alice@example\.com")
        msgs = self.sink.wait_messages(1)
        self.assertIn("192.0.2.44", msgs[0])
        # IPv6 clients too.
        code, text = self.xclient_session("XCLIENT ADDR=IPV6:2001:db8::44 LOGIN=alice@example.com")
        self.assertEqual(code, 250, text)
        self.home.wait_log(r"client=\S*\[2001:db8::44\].*sasl_username=alice@example\.com")

    def test_xclient_without_login_does_not_relay(self):
        code, text = self.xclient_session("XCLIENT ADDR=192.0.2.45")
        self.assertEqual(code, 554, text)
        self.assertIn("Relay access denied", text)

    def test_dovecot_stops_with_its_children(self):
        family = children_of(self.dovecot.proc.pid)
        self.assertGreaterEqual(len(family), 2, "dovecot's log, config and auth processes")
        self.dovecot.stop()
        self.assertEqual([p for p in family if pid_alive(p)], [])
        self.assertFalse(pid_alive(self.dovecot.proc.pid))
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", self.dovecot.auth_port), timeout=2).close()


if __name__ == "__main__":
    main()
