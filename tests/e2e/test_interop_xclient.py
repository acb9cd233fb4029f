"""Interop c): our XCLIENT and XFORWARD commands (xproxy-wire xclient-encode /
xforward-encode) are accepted by a real Postfix smtpd that authorizes the sender, and by
smtp-sink; the forwarded client shows in Postfix's log, in the Received header and in
smtp-sink's dump. A HELO long enough to need two commands is accepted too."""

from harness import (E2ETestCase, Postfix, SmtpSink, free_port, main, parse_kv, smtp_session, wait_until,
                     wire)


class XclientInterop(E2ETestCase):
    def commands(self, kind, *args):
        rc, out, err = wire(["%s-encode" % kind] + list(args))
        self.assertEqual(rc, 0, err)
        lines = out.decode().split("\r\n")
        self.assertEqual(lines[-1], "")
        return lines[:-1]

    def session(self, port, forward):
        cmds = ["EHLO upstream.example"] + forward + ["MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>",
                                                      "DATA", "Subject: x\r\n\r\nbody\r\n.\r\n", "QUIT"]
        # After XCLIENT the server greets again (220) and wants a new EHLO.
        if forward and forward[0].startswith("XCLIENT"):
            cmds = cmds[:1 + len(forward)] + ["EHLO client.example"] + cmds[1 + len(forward):]
        return smtp_session(port, cmds)

    def postfix(self, **main_cf):
        self.sink = SmtpSink(self.sandbox, self.procs)
        self.port = free_port()
        cfg = {"mynetworks": "127.0.0.0/8, 192.0.2.0/24, [2001:db8::]/32"}
        cfg.update(main_cf)
        self.pf = Postfix(self.sandbox, self.procs, "pf", self.port, relay_port=self.sink.port, main_cf=cfg).start()

    def test_xclient_into_postfix(self):
        self.postfix(smtpd_authorized_xclient_hosts="127.0.0.0/8")
        lines = self.commands("xclient", "--addr", "192.0.2.66", "--port", "4066", "--helo", "client.example",
                              "--name", "mail.example.org",
                              "--advertised", "NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT")
        replies = self.session(self.port, lines)
        self.assertEqual(replies[2][0], 220, replies)  # XCLIENT accepted: new greeting
        self.assertTrue(any(t.startswith("250 2.0.0 Ok: queued") for _, t in replies), replies)
        self.pf.wait_log(r"client=mail\.example\.org\[192\.0\.2\.66\]")
        wait_until(lambda: any("from client.example (mail.example.org [192.0.2.66])" in m
                               for m in self.sink.messages()), 20, 0.1, "Received header at the sink")

    def test_xclient_split_over_two_commands(self):
        self.postfix(smtpd_authorized_xclient_hosts="127.0.0.0/8")
        helo = "h" * 240 + ".example"
        lines = self.commands("xclient", "--addr", "192.0.2.67", "--port", "4067", "--helo", helo,
                              "--login", "l" * 250)
        self.assertEqual(len(lines), 2)
        replies = self.session(self.port, lines)
        self.assertEqual([c for c, _ in replies[2:4]], [220, 220], replies)
        self.pf.wait_log(r"client=unknown\[192\.0\.2\.67\]")

    def test_xclient_refused_when_not_authorized(self):
        self.postfix(smtpd_authorized_xclient_hosts="192.0.2.250")
        lines = self.commands("xclient", "--addr", "192.0.2.68", "--port", "1")
        replies = self.session(self.port, lines)
        self.assertEqual(replies[2][0], 550, replies)

    def test_xforward_into_postfix(self):
        self.postfix(smtpd_authorized_xforward_hosts="127.0.0.0/8")
        lines = self.commands("xforward", "--addr", "192.0.2.69", "--port", "4069", "--helo", "fwd.example",
                              "--name", "fwd.example.org", "--ident", "ABC123")
        replies = self.session(self.port, lines)
        self.assertEqual(replies[2][0], 250, replies)
        self.assertTrue(any(t.startswith("250 2.0.0 Ok: queued") for _, t in replies), replies)
        # XFORWARD only informs logging: Postfix logs the forwarded client and queue id.
        self.pf.wait_log(r"client=unknown\[127\.0\.0\.1\], orig_queue_id=ABC123, "
                         r"orig_client=fwd\.example\.org\[192\.0\.2\.69\]")
        wait_until(lambda: self.sink.messages(), 20, 0.1, "message at the sink")

    def test_into_smtp_sink(self):
        # smtp-sink advertises "XCLIENT NAME HELO" and "XFORWARD NAME ADDR PROTO HELO": the
        # encoder sends only those attributes, built from the EHLO reply it got.
        sink = SmtpSink(self.sandbox, self.procs, name="direct", verbose=True)
        ehlo = smtp_session(sink.port, ["EHLO upstream.example", "QUIT"])[1][1]
        kw = {l[4:].split()[0]: l[4:] for l in ehlo.splitlines() if len(l) > 4}
        for kind, addr in (("xclient", "192.0.2.70"), ("xforward", "192.0.2.71")):
            lines = self.commands(kind, "--addr", addr, "--port", "1234", "--helo", "h.example", "--name",
                                  "n.example", "--advertised", kw[kind.upper()])
            replies = self.session(sink.port, lines)
            self.assertTrue(all(c in (220, 250, 354, 221) for c, _ in replies), replies)
        log = wait_until(lambda: "XFORWARD" in sink.log_text() and sink.log_text(), 10, 0.1, "smtp-sink log")
        self.assertIn("XCLIENT HELO=h.example NAME=n.example", log)
        self.assertNotIn("XCLIENT HELO=h.example NAME=n.example ADDR", log)  # ADDR not advertised
        self.assertIn("XFORWARD PROTO=ESMTP HELO=h.example NAME=n.example ADDR=192.0.2.71", log)

    def test_decoder_reads_what_the_encoder_writes(self):
        lines = self.commands("xclient", "--addr", "2001:db8::66", "--port", "25", "--helo", "a b=c")
        rc, out, _ = wire(["smtp-decode"], lines[0].encode() + b"\r\n")
        self.assertEqual(rc, 0)
        kv = parse_kv(out)
        self.assertEqual(kv["ADDR"], "IPV6:2001:db8::66")
        self.assertEqual(kv["HELO"], "a b=c")


if __name__ == "__main__":
    main()
