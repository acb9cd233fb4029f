"""Authenticated deposit (doc/design.md) through a real Postfix with Dovecot as its SASL
backend: a sender in a hosted domain is accepted only from a client authenticated as that
sender; another user claiming the sender, and an unauthenticated client, get 5.7.1."""

from harness import (Dovecot, E2ETestCase, Postfix, SmtpSink, binary, free_port, main, swaks, wait_for_log,
                     wait_for_port, wait_until)

DIRECTORY = """domain example.com state=active services=smtp,submission
user alice@example.com
user bob@example.com
"""


class Deposit(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.dovecot = Dovecot(self.sandbox, self.procs, {"alice@example.com": "alice-secret",
                                                          "bob@example.com": "bob-secret"})
        self.pd_port = free_port()
        directory = self.sandbox.write("directory.txt", DIRECTORY)
        self.pd_log = self.sandbox.path("policyd.log")
        self.sandbox.logs.append(self.pd_log)
        with open(self.pd_log, "wb") as out:
            self.procs.start("policyd", [binary("policyd/xproxy-policyd"), "--listen",
                                         "inet:127.0.0.1:%d" % self.pd_port, "--allow-peers", "127.0.0.1/32",
                                         "--log", "stderr", "--policy", "deposit", "--directory", directory],
                             stdout=out)
        wait_for_port("127.0.0.1", self.pd_port)
        self.sink = SmtpSink(self.sandbox, self.procs)
        self.port = free_port()
        policy = "check_policy_service { inet:127.0.0.1:%d, default_action=DUNNO }" % self.pd_port
        self.pf = Postfix(self.sandbox, self.procs, "pf", self.port, relay_port=self.sink.port, main_cf={
            "mynetworks": "127.0.0.1/32",
            "smtpd_sasl_type": "dovecot",
            "smtpd_sasl_path": self.dovecot.sasl_path,
            "smtpd_sasl_auth_enable": "yes",
            "smtpd_sasl_security_options": "noanonymous",
            "smtpd_tls_auth_only": "no",
            # Relay control lives in the recipient restrictions, after the policy service.
            "smtpd_relay_restrictions": "",
            "smtpd_recipient_restrictions": policy + ", permit_sasl_authenticated, permit_mynetworks, "
                                                     "reject_unauth_destination",
        }).start()

    def send(self, sender, user=None, password=None):
        extra = ["--auth", "PLAIN", "--auth-user", user, "--auth-password", password] if user else []
        return swaks(self.port, source="127.0.0.66", sender=sender, rcpt="friend@other.example", extra=extra)

    def test_deposit(self):
        rc, out = self.send("alice@example.com", "alice@example.com", "alice-secret")
        self.assertIn("235 2.7.0 Authentication successful", out)
        self.assertIn("250 2.0.0 Ok: queued", out)
        wait_until(lambda: self.sink.messages(), 20, 0.1, "alice's message at the sink")

        rc, out = self.send("alice@example.com", "bob@example.com", "bob-secret")
        self.assertIn("235 2.7.0 Authentication successful", out)
        self.assertRegex(out, r"<\*\* 550 5\.7\.1 ")
        self.assertNotIn("Ok: queued", out)

        rc, out = self.send("alice@example.com")
        self.assertRegex(out, r"<\*\* 550 5\.7\.1 ")
        self.assertNotIn("Ok: queued", out)

        rc, out = self.send("alice@example.com", "alice@example.com", "wrong")
        self.assertIn("535 5.7.8", out)

        wait_for_log(self.pd_log, r"policy=deposit", 10)  # written by the daemon's log thread
        self.assertEqual(len(self.sink.messages()), 1)


if __name__ == "__main__":
    main()
