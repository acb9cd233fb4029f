"""Acceptance 2 of xproxy-milter: a chain of two real Postfix 3.7 instances.

client (127.0.0.66 / 127.0.0.77) -> Postfix A (xproxy-milter inject) -> Postfix B
(xproxy-milter verify, block list 127.0.0.66) -> smtp-sink. Both clients reach B from A's
address, yet B decides on the original one: mail from 127.0.0.66 is refused at B, mail
from 127.0.0.77 arrives. A client's forged X-Original-Source at A is replaced by A's own
header (verified at the sink with xproxy-wire); a client connecting to B directly with
a forged header is refused (on-invalid reject) or loses the header (on-invalid accept)."""

import re

from harness import E2ETestCase, Postfix, SmtpSink, free_port, main, send_mail, wait_until, wire
from milter_util import Milter

FORGED = ("X-Original-Source: v=1; ip=10.9.9.9; port=1; helo=evil; t=1; b=env; kid=k1; "
          "sig=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n")


def body(subject, mid, forged=False):
    return ((FORGED if forged else "") + "Subject: %s\r\nMessage-ID: %s\r\nFrom: <s@sender.example>\r\n\r\nhello\r\n"
            % (subject, mid))


def headers_of(msg):
    return msg.replace("\r\n", "\n").split("\n\n", 1)[0]


def fields(headers, name):
    return re.findall(r"^%s:.*(?:\n[ \t].*)*" % re.escape(name), headers, re.M | re.I)


def milter_cf(m):
    return {"smtpd_milters": m.postfix, "milter_default_action": "tempfail", "non_smtpd_milters": ""}


class MilterChain(E2ETestCase):
    def build(self, verify_extra=(), keep=True):
        self.sink = SmtpSink(self.sandbox, self.procs)
        self.mb = Milter(self.sandbox, self.procs, "milter-b", "verify",
                         ["--block-list", "127.0.0.66/32"] + (["--keep-header"] if keep else []) + list(verify_extra))
        self.pb = Postfix(self.sandbox, self.procs, "pfb", free_port(), relay_port=self.sink.port,
                          main_cf=milter_cf(self.mb))
        self.pb.start()
        self.ma = Milter(self.sandbox, self.procs, "milter-a", "inject", ring=self.mb.ring, unix=True)
        self.pa = Postfix(self.sandbox, self.procs, "pfa", free_port(), relay_port=self.pb.port,
                          main_cf=milter_cf(self.ma))
        self.pa.start()

    def sink_message(self, subject):
        def find():
            for m in self.sink.messages():
                if "Subject: %s" % subject in m:
                    return m
            return None
        return wait_until(find, 30, 0.1, "message %r at the sink" % subject)

    def queued(self, replies):
        return any(t.startswith("250 2.0.0 Ok: queued") for _, t in replies)

    def test_chain_decides_on_original_source(self):
        self.build()
        r77 = send_mail(self.pa.port, source="127.0.0.77", sender="s@sender.example", rcpt="r@rcpt.example",
                        body=body("from77", "<m77@client.example>", forged=True))
        self.assertTrue(self.queued(r77), r77)
        r66 = send_mail(self.pa.port, source="127.0.0.66", sender="s@sender.example", rcpt="r@rcpt.example",
                        body=body("from66", "<m66@client.example>"))
        self.assertTrue(self.queued(r66), r66)  # A has no block list; B refuses it

        msg = self.sink_message("from77")
        hdrs = headers_of(msg)
        found = fields(hdrs, "X-Original-Source")
        self.assertEqual(len(found), 1, hdrs)  # the forgery is gone, A's header kept by B
        self.assertNotIn("10.9.9.9", hdrs)
        rc, out, err = wire(["trace-verify", "--keyring", self.mb.ring, "--sender", "s@sender.example",
                             "--message-id", "<m77@client.example>"], found[0].encode())
        self.assertEqual(rc, 0, out.decode() + err)
        self.assertIn(b"ip=127.0.0.77", out)
        self.assertIn(b"by=milter-a.test", out)
        result = fields(hdrs, "X-Original-Source-Result")
        self.assertEqual(len(result), 1, hdrs)
        self.assertIn("pass ip=127.0.0.77", result[0])
        # Both reached B from A's address: B's smtpd saw 127.0.0.1, its milter the original.
        self.pb.wait_log(r"milter-reject: END-OF-MESSAGE from unknown\[127\.0\.0\.1\]: 5\.7\.1 Original client "
                         r"\[127\.0\.0\.66\] is blocked", timeout=30)
        wait_until(lambda: any("outcome=blocked" in l for l in self.mb.messages()), 10, 0.1, "blocked log line")
        self.assertFalse(any("from66" in m for m in self.sink.messages()))
        a_lines = self.ma.messages()
        self.assertTrue(any("original=127.0.0.77:" in l and "outcome=injected removed=1" in l for l in a_lines),
                        a_lines)
        b_lines = self.mb.messages()
        self.assertTrue(any("client=127.0.0.1:" in l and "original=127.0.0.77:" in l and "outcome=verified" in l
                            for l in b_lines), b_lines)

    def test_direct_forgery_at_b_refused(self):
        self.build()
        r = send_mail(self.pb.port, source="127.0.0.77", sender="s@sender.example", rcpt="r@rcpt.example",
                      body=body("direct", "<md@client.example>", forged=True))
        codes = [c for c, _ in r]
        self.assertIn(550, codes, r)
        self.assertFalse(self.queued(r), r)
        self.assertTrue(any("5.7.1 Original source not verified" in t for _, t in r), r)
        r = send_mail(self.pb.port, source="127.0.0.77", sender="s@sender.example", rcpt="r@rcpt.example",
                      body=body("direct2", "<md2@client.example>"))
        self.assertTrue(any("5.7.1 Original source missing" in t for _, t in r), r)

    def test_direct_forgery_at_b_stripped(self):
        self.build(["--on-invalid", "accept"], keep=False)
        r = send_mail(self.pb.port, source="127.0.0.77", sender="s@sender.example", rcpt="r@rcpt.example",
                      body=body("direct", "<md@client.example>", forged=True))
        self.assertTrue(self.queued(r), r)
        hdrs = headers_of(self.sink_message("direct"))
        self.assertEqual(fields(hdrs, "X-Original-Source"), [], hdrs)
        self.assertNotIn("10.9.9.9", hdrs)
        result = fields(hdrs, "X-Original-Source-Result")
        self.assertEqual(len(result), 1, hdrs)
        self.assertIn("fail (malformed)", result[0])
        # Through A the header is verified and, without --keep-header, stripped at B.
        r = send_mail(self.pa.port, source="127.0.0.77", sender="s@sender.example", rcpt="r@rcpt.example",
                      body=body("viaA", "<ma@client.example>"))
        self.assertTrue(self.queued(r), r)
        hdrs = headers_of(self.sink_message("viaA"))
        self.assertEqual(fields(hdrs, "X-Original-Source"), [], hdrs)
        self.assertIn("pass ip=127.0.0.77", fields(hdrs, "X-Original-Source-Result")[0])


if __name__ == "__main__":
    main()
