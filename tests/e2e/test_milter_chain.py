"""Acceptance 2 of xproxy-milter: a chain of two real Postfix 3.7 instances.

client (127.0.0.66 / 127.0.0.77) -> Postfix A (xproxy-milter inject) -> Postfix B
(xproxy-milter verify, block list 127.0.0.66) -> smtp-sink. Both clients reach B from A's
address, yet B decides on the original one: mail from 127.0.0.66 is refused at B, mail
from 127.0.0.77 arrives. A client's forged X-Original-Source at A is replaced by A's own
header (verified at the sink with xproxy-wire) and its forged X-Original-Source-Result is
removed; a client connecting to B directly with a forged header is refused (on-invalid
reject) or loses the header and its forged result (on-invalid accept). A bounce made by A
(null sender) is signed by A's milter through non_smtpd_milters and verified by B; an
unsigned one is deferred by B, not refused."""

import re

from harness import E2ETestCase, Postfix, SmtpSink, free_port, main, send_mail, wait_until, wire
from milter_util import Milter

# A forged header and a forged verdict for it: neither may reach the sink.
FORGED = ("X-Original-Source: v=1; ip=10.9.9.9; port=1; helo=evil; t=1; b=env; kid=k1; "
          "sig=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n"
          "X-Original-Source-Result: pass ip=10.9.9.9; kid=k1; signer=milter-a.test; by=milter-b.test\r\n")


def body(subject, mid, forged=False):
    return ((FORGED if forged else "") + "Subject: %s\r\nMessage-ID: %s\r\nFrom: <s@sender.example>\r\n\r\nhello\r\n"
            % (subject, mid))


def headers_of(msg):
    return msg.replace("\r\n", "\n").split("\n\n", 1)[0]


def fields(headers, name):
    return re.findall(r"^%s:.*(?:\n[ \t].*)*" % re.escape(name), headers, re.M | re.I)


def milter_cf(m):
    return {"smtpd_milters": m.postfix, "milter_default_action": "tempfail", "non_smtpd_milters": ""}


def inject_hop_cf(m, sign_bounces=True):
    """The documented inject hop: the milter sees SMTP mail and, through cleanup, local
    mail and the bounces this hop makes itself."""
    cf = milter_cf(m)
    if sign_bounces:
        cf.update({"non_smtpd_milters": m.postfix, "internal_mail_filter_classes": "bounce"})
    return cf


# B refuses r@bad.example: A accepts the message, B's 550 makes A bounce it.
REFUSE_BAD = {"smtpd_recipient_restrictions": "check_recipient_access inline:{ {r@bad.example = 550 5.1.1 no such "
                                              "user} }, permit_mynetworks, reject_unauth_destination"}


class MilterChain(E2ETestCase):
    def build(self, verify_extra=(), keep=True, inject_cf=milter_cf, b_cf=None):
        self.sink = SmtpSink(self.sandbox, self.procs)
        self.mb = Milter(self.sandbox, self.procs, "milter-b", "verify",
                         ["--block-list", "127.0.0.66/32"] + (["--keep-header"] if keep else []) + list(verify_extra))
        self.pb = Postfix(self.sandbox, self.procs, "pfb", free_port(), relay_port=self.sink.port,
                          main_cf=dict(milter_cf(self.mb), **(b_cf or {})))
        self.pb.start()
        # A's socket as the man page gives it: in the queue directory, named relative to it.
        self.ma = Milter(self.sandbox, self.procs, "milter-a", "inject", ring=self.mb.ring,
                         unix=(self.sandbox.mkdir("pfa", "spool"), "xproxy/milter.sock"))
        self.pa = Postfix(self.sandbox, self.procs, "pfa", free_port(), relay_port=self.pb.port,
                          main_cf=inject_cf(self.ma))
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

    def test_bounce_from_inject_hop_is_signed_and_verified(self):
        # A accepts mail for an undeliverable recipient and bounces it; the DSN (null
        # sender) leaves A through cleanup's milter, signed as mail made on A itself
        # (Postfix passes localhost / 127.0.0.1, port 0, to non_smtpd_milters), and B
        # verifies it and passes it on.
        self.build(inject_cf=inject_hop_cf, b_cf=REFUSE_BAD)
        r = send_mail(self.pa.port, source="127.0.0.77", sender="s@sender.example", rcpt="r@bad.example",
                      body=body("doomed", "<doomed@client.example>"))
        self.assertTrue(self.queued(r), r)

        def dsn():
            for m in self.sink.messages():
                if "Undelivered Mail Returned to Sender" in m:
                    return m
            return None
        msg = wait_until(dsn, 60, 0.2, "the DSN at the sink")
        hdrs = headers_of(msg)
        self.assertRegex(hdrs, r"(?m)^X-Mail-Args: <>$")  # the null sender
        found = fields(hdrs, "X-Original-Source")
        self.assertEqual(len(found), 1, hdrs)
        mid = re.search(r"^Message-I[dD]:\s*(\S+)", hdrs, re.M | re.I).group(1)
        rc, out, err = wire(["trace-verify", "--keyring", self.mb.ring, "--sender", "", "--message-id", mid],
                            found[0].encode())
        self.assertEqual(rc, 0, out.decode() + err)
        self.assertIn(b"ip=127.0.0.1", out)
        self.assertIn(b"by=milter-a.test", out)
        self.assertIn("pass ip=127.0.0.1", fields(hdrs, "X-Original-Source-Result")[0])
        self.assertTrue(any("outcome=verified" in l and 'sender="<>"' in l for l in self.mb.messages()),
                        self.mb.messages())

    def test_unsigned_bounce_waits_instead_of_being_lost(self):
        # An inject hop that does not sign its bounces (no non_smtpd_milters): B defers the
        # DSN (451) instead of refusing it, so it stays in A's queue until A is fixed.
        self.build(inject_cf=lambda m: inject_hop_cf(m, sign_bounces=False), b_cf=REFUSE_BAD)
        r = send_mail(self.pa.port, source="127.0.0.77", sender="s@sender.example", rcpt="r@bad.example",
                      body=body("doomed2", "<doomed2@client.example>"))
        self.assertTrue(self.queued(r), r)
        self.pa.wait_log(r"to=<s@sender\.example>.*status=deferred .*451 4\.7\.1 Original source missing",
                         timeout=60)
        wait_until(lambda: any("outcome=missing" in l and "action=tempfail null_sender=1" in l
                               for l in self.mb.messages()), 10, 0.1, "missing line")
        self.assertNotRegex(self.pa.log(), r"to=<s@sender\.example>.*status=bounced")

if __name__ == "__main__":
    main()
