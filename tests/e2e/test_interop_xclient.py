"""Interop c): our XCLIENT and XFORWARD commands (xproxy-wire xclient-encode /
xforward-encode), built from the attribute list the server advertised in its EHLO reply,
are accepted by a real Postfix smtpd that authorizes the sender, and by smtp-sink.

What shows the forwarded client:
- Postfix + XCLIENT: the "client=NAME[ADDR]:PORT" log line (with sasl_username for
  LOGIN), the Received header ("from HELO (NAME [ADDR])", "with ESMTPA" after LOGIN), and
  the XFORWARD that Postfix's smtp client sends to the next hop (smtp_send_xforward_command).
- Postfix + XFORWARD: only the log ("orig_client=NAME[ADDR]:PORT, orig_queue_id=ID") and
  the XFORWARD sent to the next hop; the Received header keeps the real peer.
- smtp-sink: its -v log records the commands verbatim; its dump's X-Client-Addr stays the
  TCP peer (smtp-sink answers XCLIENT/XFORWARD with 250 but applies neither).
A HELO long enough to need two XCLIENT commands is accepted too."""

import re

from harness import E2ETestCase, Postfix, SmtpClient, SmtpSink, free_port, main, parse_kv, wait_until, wire

MYNETWORKS = "127.0.0.0/8, 192.0.2.0/24, [2001:db8::]/32"


class XclientInterop(E2ETestCase):
    def encode(self, kind, *args):
        rc, out, err = wire(["%s-encode" % kind] + list(args))
        self.assertEqual(rc, 0, err)
        text = out.decode()
        self.assertTrue(text.endswith("\r\n"), text)
        lines = text.split("\r\n")[:-1]
        for line in lines:
            self.assertTrue(line.startswith(kind.upper() + " "), line)
            self.assertLessEqual(len(line) + 2, 512, "a command line is at most 512 bytes")
        return lines

    def postfix(self, **main_cf):
        self.sink = SmtpSink(self.sandbox, self.procs, verbose=True)
        self.port = free_port()
        cfg = {"mynetworks": MYNETWORKS, "smtpd_client_port_logging": "yes", "smtp_send_xforward_command": "yes"}
        cfg.update(main_cf)
        self.pf = Postfix(self.sandbox, self.procs, "pf", self.port, relay_port=self.sink.port, ipv6=True,
                          main_cf=cfg).start()

    def forward(self, kind, source, want_code, *args, ehlo_after=None):
        """EHLO, the encoded commands (each answered want_code), optionally EHLO again, one
        message. Returns the queue id."""
        c = SmtpClient(self.port, source=source)
        try:
            self.assertEqual(c.ehlo("upstream.example")[0], 250)
            self.assertIn(kind.upper(), c.extensions, "server does not advertise %s" % kind.upper())
            for line in self.encode(kind, *args, "--advertised", c.extensions[kind.upper()]):
                self.assertEqual(c.cmd(line)[0], want_code, line)
            if ehlo_after:
                self.assertEqual(c.ehlo(ehlo_after)[0], 250)
            self.assertEqual(c.cmd("MAIL FROM:<a@example.org>")[0], 250)
            self.assertEqual(c.cmd("RCPT TO:<b@example.net>")[0], 250)
            code, text = c.data("Subject: x\r\n\r\nbody\r\n")
        finally:
            c.close()
        m = re.match(r"250 2\.0\.0 Ok: queued as (\w+)", text)
        self.assertTrue(m, text)
        return m.group(1)

    def relayed(self, qid):
        """The sink's copy of queue id qid."""
        return wait_until(lambda: next((m for m in self.sink.messages() if " id %s\n" % qid in m), None), 20, 0.1,
                          "message %s at the sink" % qid)

    def test_xclient_into_postfix(self):
        self.postfix(smtpd_authorized_xclient_hosts="127.0.0.0/8")
        # No EHLO after XCLIENT: the forwarded HELO and PROTO stay in force.
        qid = self.forward("xclient", "127.0.0.8", 220, "--addr", "192.0.2.66", "--port", "4066", "--helo",
                           "client.example", "--name", "mail.example.org", "--proto", "ESMTP", "--login", "alice")
        self.pf.wait_log(r"%s: client=mail\.example\.org\[192\.0\.2\.66\]:4066, sasl_method=XCLIENT, "
                         r"sasl_username=alice$" % qid)
        msg = self.relayed(qid)
        self.assertIn("Received: from client.example (mail.example.org [192.0.2.66])\n"
                      "\tby pf.test.invalid (Postfix) with ESMTPA id %s" % qid, msg)
        # Postfix tells the next hop, too.
        self.assertIn("XFORWARD NAME=mail.example.org ADDR=192.0.2.66", self.sink.commands("XFORWARD"))
        self.assertIn("XFORWARD PROTO=ESMTP HELO=client.example", self.sink.commands("XFORWARD"))

    def test_xclient_ipv6_into_postfix(self):
        self.postfix(smtpd_authorized_xclient_hosts="127.0.0.0/8")
        qid = self.forward("xclient", "127.0.0.8", 220, "--addr", "2001:db8::66", "--port", "4067", "--helo",
                           "c6.example", ehlo_after="after.example")
        self.pf.wait_log(r"%s: client=unknown\[2001:db8::66\]:4067$" % qid)
        # A new EHLO after XCLIENT replaces the forwarded HELO.
        self.assertIn("Received: from after.example (unknown [IPv6:2001:db8::66])", self.relayed(qid))
        self.assertIn("XFORWARD ADDR=IPv6:2001:db8::66", self.sink.commands("XFORWARD"))

    def test_xclient_applies_to_the_next_ehlo(self):
        # After XCLIENT Postfix judges the forwarded client: 192.0.2.66 is not an authorized
        # XCLIENT host, so the next EHLO reply no longer offers XCLIENT.
        self.postfix(smtpd_authorized_xclient_hosts="127.0.0.0/8")
        c = SmtpClient(self.port, source="127.0.0.8")
        self.addCleanup(c.close)
        c.ehlo("upstream.example")
        self.assertIn("XCLIENT", c.extensions)
        (line,) = self.encode("xclient", "--addr", "192.0.2.66", "--port", "1", "--advertised", c.extensions["XCLIENT"])
        self.assertEqual(c.cmd(line)[0], 220)
        c.ehlo("again.example")
        self.assertNotIn("XCLIENT", c.extensions)

    def test_xclient_split_over_two_commands(self):
        # HELO and NAME near 230 bytes each: with PROTO and ADDR they fill one 512-byte line,
        # so PORT (which Postfix keeps across XCLIENT commands) goes first.
        self.postfix(smtpd_authorized_xclient_hosts="127.0.0.0/8")
        helo = "h" * 220 + ".example"
        name = ".".join(["n" * 45] * 5)  # labels of at most 63 bytes: a valid host name
        c = SmtpClient(self.port, source="127.0.0.8")
        self.addCleanup(c.close)
        c.ehlo("upstream.example")
        lines = self.encode("xclient", "--addr", "192.0.2.67", "--port", "4067", "--helo", helo, "--name", name,
                            "--proto", "ESMTP", "--advertised", c.extensions["XCLIENT"])
        self.assertEqual(len(lines), 2, lines)
        self.assertEqual(lines[0], "XCLIENT PORT=4067")
        for attr in ("ADDR=192.0.2.67", "HELO=" + helo, "NAME=" + name, "PROTO=ESMTP"):
            self.assertIn(attr, lines[1].split(), "goes in the last command")
        self.assertEqual([c.cmd(l)[0] for l in lines], [220, 220])
        self.assertEqual(c.cmd("MAIL FROM:<a@example.org>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<b@example.net>")[0], 250)
        code, text = c.data("Subject: x\r\n\r\nbody\r\n")
        qid = re.match(r"250 2\.0\.0 Ok: queued as (\w+)", text).group(1)
        # Both commands took effect: the port from the first, the rest from the second.
        self.pf.wait_log(r"%s: client=%s\[192\.0\.2\.67\]:4067$" % (qid, re.escape(name)))
        self.assertIn("Received: from %s (%s [192.0.2.67])\n\tby pf.test.invalid (Postfix) with ESMTP id %s"
                      % (helo, name, qid), self.relayed(qid))

    def test_postfix_keeps_and_resets_xclient_attributes(self):
        # What the encoder's split rule relies on, seen with raw commands: every XCLIENT
        # resets HELO, PROTO and LOGIN unless it carries them; NAME and PORT persist; after
        # ADDR the forwarded client must itself be authorized for a further XCLIENT.
        self.postfix(smtpd_authorized_xclient_hosts="127.0.0.0/8")

        def session(commands, want):
            c = SmtpClient(self.port, source="127.0.0.8")
            self.addCleanup(c.close)
            c.ehlo("upstream.example")
            self.assertEqual([c.cmd(l)[0] for l in commands], want, commands)
            c.cmd("MAIL FROM:<a@example.org>")
            c.cmd("RCPT TO:<b@example.net>")
            code, text = c.data("Subject: x\r\n\r\nbody\r\n")
            c.close()
            return re.match(r"250 2\.0\.0 Ok: queued as (\w+)", text).group(1)

        qid = session(["XCLIENT HELO=h.example PROTO=ESMTP LOGIN=alice", "XCLIENT ADDR=192.0.2.68"], [220, 220])
        self.pf.wait_log(r"%s: client=unknown\[192\.0\.2\.68\]:\d+$" % qid)  # no sasl_username
        self.assertIn("Received: from unknown (unknown [192.0.2.68])\n\tby pf.test.invalid (Postfix) with SMTP id",
                      self.relayed(qid))
        qid = session(["XCLIENT NAME=n.example PORT=4069", "XCLIENT ADDR=192.0.2.69"], [220, 220])
        self.pf.wait_log(r"%s: client=n\.example\[192\.0\.2\.69\]:4069$" % qid)
        qid = session(["XCLIENT ADDR=192.0.2.70", "XCLIENT HELO=late.example"], [220, 550])
        self.pf.wait_log(r"%s: client=unknown\[192\.0\.2\.70\]:\d+$" % qid)

    def test_xclient_refused_when_not_authorized(self):
        self.postfix(smtpd_authorized_xclient_hosts="192.0.2.250")
        c = SmtpClient(self.port, source="127.0.0.8")
        self.addCleanup(c.close)
        c.ehlo("upstream.example")
        self.assertNotIn("XCLIENT", c.extensions)
        (line,) = self.encode("xclient", "--addr", "192.0.2.68", "--port", "1", "--advertised", "NAME ADDR PORT")
        code, text = c.cmd(line)
        self.assertEqual(code, 550, text)
        self.assertIn("5.7.0 Error: insufficient authorization", text)
        c.close()
        self.pf.wait_log(r"disconnect from unknown\[127\.0\.0\.8\]:\d+ ehlo=1 xclient=0/1")
        self.assertNotIn("192.0.2.68", self.pf.log())

    def test_xforward_into_postfix(self):
        self.postfix(smtpd_authorized_xforward_hosts="127.0.0.0/8")
        qid = self.forward("xforward", "127.0.0.9", 250, "--addr", "192.0.2.69", "--port", "4069", "--helo",
                           "fwd.example", "--name", "fwd.example.org", "--ident", "ABC123", "--proto", "ESMTP",
                           "--source", "REMOTE")
        # XFORWARD informs logging, not policy: the log has the forwarded client ...
        self.pf.wait_log(r"%s: client=unknown\[127\.0\.0\.9\]:\d+, orig_queue_id=ABC123, "
                         r"orig_client=fwd\.example\.org\[192\.0\.2\.69\]:4069$" % qid)
        # ... the Received header keeps the real peer ...
        self.assertIn("Received: from upstream.example (unknown [127.0.0.9])", self.relayed(qid))
        # ... and Postfix passes the forwarded client on to the next hop.
        xf = self.sink.commands("XFORWARD")
        self.assertIn("XFORWARD NAME=fwd.example.org ADDR=192.0.2.69", xf)
        self.assertIn("XFORWARD PROTO=ESMTP HELO=fwd.example", xf)

    def test_xforward_refused_when_not_authorized(self):
        self.postfix(smtpd_authorized_xforward_hosts="192.0.2.250")
        c = SmtpClient(self.port, source="127.0.0.9")
        self.addCleanup(c.close)
        c.ehlo("upstream.example")
        self.assertNotIn("XFORWARD", c.extensions)
        (line,) = self.encode("xforward", "--addr", "192.0.2.70", "--port", "1", "--advertised", "ADDR PORT")
        self.assertEqual(c.cmd(line)[0], 550)

    def test_into_smtp_sink(self):
        # smtp-sink advertises "XCLIENT NAME HELO" and "XFORWARD NAME ADDR PROTO HELO": the
        # encoder sends only the attributes advertised.
        sink = SmtpSink(self.sandbox, self.procs, name="direct", verbose=True)
        self.port = sink.port
        for kind, addr, source in (("xclient", "192.0.2.70", "127.0.0.70"), ("xforward", "192.0.2.71", "127.0.0.71")):
            c = SmtpClient(sink.port, source=source)
            c.ehlo("upstream.example")
            attrs = c.extensions[kind.upper()].split()
            lines = self.encode(kind, "--addr", addr, "--port", "1234", "--helo", "h.example", "--name", "n.example",
                                "--advertised", c.extensions[kind.upper()])
            for line in lines:
                sent = [kv.split("=")[0] for kv in line.split()[1:]]
                self.assertTrue(set(sent) <= set(attrs), "%s sends only advertised attributes: %s" % (kind, line))
                # smtp-sink answers XCLIENT with 250, not with a new 220 greeting as Postfix does.
                self.assertEqual(c.cmd(line)[0], 250)
            c.cmd("MAIL FROM:<a@example.org>")
            c.cmd("RCPT TO:<b@example.net>")
            self.assertEqual(c.data("Subject: %s\r\n\r\nbody\r\n" % kind)[0], 250)
            c.close()
        msgs = sink.wait_messages(2)
        log = sink.commands()
        self.assertIn("XCLIENT HELO=h.example NAME=n.example", log)
        self.assertIn("XFORWARD PROTO=ESMTP HELO=h.example NAME=n.example ADDR=192.0.2.71", log)
        # The dump names the TCP peer: smtp-sink does not apply XCLIENT / XFORWARD.
        addrs = sorted(re.search(r"^X-Client-Addr: (.*)$", m, re.M).group(1) for m in msgs)
        self.assertEqual(addrs, ["127.0.0.70", "127.0.0.71"])

    def test_decoder_reads_what_the_encoder_writes(self):
        (line,) = self.encode("xclient", "--addr", "2001:db8::66", "--port", "25", "--helo", "a b=c")
        rc, out, err = wire(["smtp-decode"], line.encode() + b"\r\n")
        self.assertEqual(rc, 0, err)
        kv = parse_kv(out)
        self.assertEqual(kv["ADDR"], "IPV6:2001:db8::66")
        self.assertEqual(kv["PORT"], "25")
        self.assertEqual(kv["HELO"], "a b=c")


if __name__ == "__main__":
    main()
