"""The trace header's binding to the envelope sender survives a real Postfix hop that
re-spells the sender.

client -> Postfix A (xproxy-milter inject) -> Postfix B (xproxy-milter verify,
--keep-header) -> smtp-sink. The client's MAIL FROM is `<"alice"@Sender.Example>` or
carries a source route; A's milter signs what the client sent, Postfix A relays with
its own spelling (`alice@Sender.Example`, no route), and B's milter verifies against that
spelling: the header passes because both sides bind the canonical address
(doc/wire-formats.md, "Canonical address"). A header verified against another mailbox
still reports wrong_binding."""

import re

from harness import E2ETestCase, Postfix, SmtpSink, free_port, main, queued, send_mail, wait_until, wire
from milter_util import Milter


def fields(msg, name):
    headers = msg.replace("\r\n", "\n").split("\n\n", 1)[0]
    return re.findall(r"^%s:.*(?:\n[ \t].*)*" % re.escape(name), headers, re.M | re.I)


def milter_cf(m):
    return {"smtpd_milters": m.postfix, "milter_default_action": "tempfail", "non_smtpd_milters": ""}


class TraceBindingThroughPostfix(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.sink = SmtpSink(self.sandbox, self.procs)
        self.mb = Milter(self.sandbox, self.procs, "milter-b", "verify", ["--keep-header"])
        self.pb = Postfix(self.sandbox, self.procs, "pfb", free_port(), relay_port=self.sink.port,
                          main_cf=milter_cf(self.mb))
        self.pb.start()
        self.ma = Milter(self.sandbox, self.procs, "milter-a", "inject", ring=self.mb.ring, unix=True)
        self.pa = Postfix(self.sandbox, self.procs, "pfa", free_port(), relay_port=self.pb.port,
                          main_cf=milter_cf(self.ma))
        self.pa.start()

    def relay(self, sender, subject):
        body = "Subject: %s\r\nMessage-ID: <%s@client.example>\r\n\r\nhello\r\n" % (subject, subject)
        replies = send_mail(self.pa.port, source="127.0.0.77", sender=sender, rcpt="r@rcpt.example", body=body)
        self.assertTrue(queued(replies), replies)
        def arrived_or_refused():
            if "milter-reject" in self.pb.log():
                return "refused"
            return next((m for m in self.sink.messages() if "Subject: %s" % subject in m), None)
        msg = wait_until(arrived_or_refused, 30, 0.1, "message %r at the sink" % subject)
        self.assertNotEqual(msg, "refused", "B refused the message: %s" % self.mb.messages())
        return msg

    def test_respelled_sender_still_verifies(self):
        for sender, subject in [('"alice"@Sender.Example', "quoted"), ("@relay.example:alice@sender.example", "routed"),
                                ("alice@sender.example.", "dotted")]:
            msg = self.relay(sender, subject)
            result = fields(msg, "X-Original-Source-Result")
            self.assertEqual(len(result), 1, msg)
            self.assertIn("pass ip=127.0.0.77", result[0], "%s: %s" % (sender, msg))
            # Postfix relayed with its own spelling, not the client's (what B's milter saw).
            mail_args = re.search(r"^X-Mail-Args: (.*)$", msg, re.M).group(1)
            self.assertNotIn('"', mail_args)
            self.assertNotIn("@relay.example:", mail_args)
            trace = fields(msg, "X-Original-Source")
            self.assertEqual(len(trace), 1, msg)
            mid = "<%s@client.example>" % subject
            rc, out, err = wire(["trace-verify", "--keyring", self.mb.ring, "--sender", "alice@sender.example",
                                 "--message-id", mid], trace[0].encode())
            self.assertEqual(rc, 0, out.decode() + err)
            rc, out, _ = wire(["trace-verify", "--keyring", self.mb.ring, "--sender", "bob@sender.example",
                               "--message-id", mid], trace[0].encode())
            self.assertEqual((rc, out.split(b"\n")[0]), (1, b"result=wrong_binding"))


if __name__ == "__main__":
    main()
