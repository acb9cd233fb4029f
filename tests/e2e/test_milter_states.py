"""xproxy-milter's directory states behind a real Postfix 3.7 (smtpd_milters, inject mode,
--policy vdomains): each recipient state answers its code at RCPT, and a held mailbox's
message is accepted and parked, whole, in Postfix's hold queue (smfi_quarantine), with
the reason in the milter's log line; mail to active recipients alone is delivered."""

import json
import subprocess

from harness import E2ETestCase, Postfix, SmtpSink, free_port, main, queued, send_mail, smtp_session, wait_until
from milter_util import Milter

DIRECTORY = """domain example.com
user alice@example.com
user off@example.com state=disabled
user full@example.com state=overquota
user held@example.com state=hold
user idle@example.com state=inactive
domain frozen.example state=hold
user fay@frozen.example state=disabled
user ann@frozen.example
"""


class MilterStates(E2ETestCase):
    def setUp(self):
        super().setUp()
        directory = self.sandbox.write("directory", DIRECTORY)
        self.sink = SmtpSink(self.sandbox, self.procs)
        self.m = Milter(self.sandbox, self.procs, "milter", "inject", ["--policy", "vdomains", "--directory", directory])
        self.port = free_port()
        self.pf = Postfix(self.sandbox, self.procs, "pf", self.port, relay_port=self.sink.port,
                          main_cf={"smtpd_milters": self.m.postfix, "milter_default_action": "tempfail",
                                   "non_smtpd_milters": ""})
        self.pf.start()

    def held(self):
        """{queue id: entry} of the messages in Postfix's hold queue (postqueue -j)."""
        r = subprocess.run(["postqueue", "-c", self.pf.conf, "-j"], capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        entries = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
        return {e["queue_id"]: e for e in entries if e["queue_name"] == "hold"}

    def test_states_at_rcpt_and_hold_queue(self):
        rows = [("alice@example.com", 250, None), ("off@example.com", 550, "5.2.1"),
                ("full@example.com", 452, "4.2.2"), ("idle@example.com", 450, "4.2.1"),
                ("nobody@frozen.example", 550, "5.1.1"), ("held@example.com", 250, None),
                # a user's refusal wins over the domain's hold; an active user is held by it
                ("fay@frozen.example", 550, "5.2.1"), ("ann@frozen.example", 250, None)]
        for rcpt, want, status in rows:
            with self.subTest(rcpt):
                replies = send_mail(self.port, source="127.0.0.66", sender="a@sender.example", rcpt=rcpt)
                code, text = replies[3]  # greeting, EHLO, MAIL, RCPT
                self.assertEqual(code, want, replies)
                if status:
                    self.assertTrue(text.startswith("%d %s <%s>: Recipient address rejected: " % (want, status, rcpt)),
                                    text)
        # One held recipient holds the whole message, the active one's copy included.
        both = smtp_session(self.port, ["EHLO client.example.org", "MAIL FROM:<s@sender.example>",
                                        "RCPT TO:<alice@example.com>", "RCPT TO:<held@example.com>", "DATA",
                                        "Subject: both\r\n\r\nhello\r\n.\r\n", "QUIT"], source="127.0.0.66")
        both_id = queued(both)
        self.assertTrue(both_id, both)
        held = wait_until(lambda: len(self.held()) == 3 and self.held(), 20, 0.2, "three held messages")
        self.assertEqual(sorted(r["address"] for r in held[both_id]["recipients"]),
                         ["alice@example.com", "held@example.com"])
        # Postfix logs the hold (not the milter's reason); the milter's line says why.
        self.pf.wait_log(r"%s: milter-hold: END-OF-MESSAGE from .*: milter triggers HOLD action; "
                         r"from=<s@sender\.example>" % both_id)
        self.pf.wait_log(r"milter-hold: END-OF-MESSAGE from .* to=<ann@frozen\.example>")
        # alice's own message went out; nothing held did.
        wait_until(lambda: len(self.sink.messages()) == 1, 20, 0.1, "alice's message at the sink")
        self.assertFalse(any("Subject: both" in m for m in self.sink.messages()))
        lines = wait_until(lambda: len([l for l in self.m.messages() if " hold=" in l]) == 3 and self.m.messages(),
                           10, 0.1, "three hold log lines")
        self.assertTrue(any("queue_id=%s " % both_id in l and l.endswith("hold=vdomains:user_hold") for l in lines),
                        lines)
        self.assertTrue(any(l.endswith("hold=vdomains:domain_hold") for l in lines), lines)


if __name__ == "__main__":
    main()
