"""The shim scenario of doc/design.md with a real, unmodified Postfix as the legacy gateway behind HAProxy.

Postfix's access table rejects client 127.0.0.66. Without the shim (HAProxy forwarding
plain TCP) every client is 127.0.0.1 to Postfix, so 127.0.0.66 is logged as 127.0.0.1 and
its mail is accepted. With libxproxy-preload.so injected into smtpd (HAProxy sending
send-proxy-v2, then send-proxy) 127.0.0.66 is logged as itself and rejected, and
127.0.0.77 is accepted and logged as itself, down to the Received header at the sink."""


from harness import E2ETestCase, HAProxy, Postfix, SmtpSink, binary, free_port, main, read_text, queued, send_mail, wait_until


class LegacyPostfixBehindHAProxy(E2ETestCase):
    def legacy(self, with_shim):
        self.sink = SmtpSink(self.sandbox, self.procs)
        self.port = free_port()
        access = self.sandbox.write("access.cidr", "127.0.0.66/32 REJECT blocked by the legacy gateway\n")
        self.shim_log = self.sandbox.path("shim.log")
        self.sandbox.logs.append(self.shim_log)
        kwargs = {}
        if with_shim:
            kwargs = dict(preload=binary("preload/libxproxy-preload.so"),
                          preload_env={"XPROXY_TRUSTED": "127.0.0.1/32", "XPROXY_PORTS": str(self.port),
                                       "XPROXY_LOG": "file:" + self.shim_log,
                                       # debug: one line per connection (info logs a summary)
                                       "XPROXY_LOG_LEVEL": "debug"})
        self.pf = Postfix(self.sandbox, self.procs, "legacy", self.port, relay_port=self.sink.port,
                          main_cf={"smtpd_client_restrictions": "check_client_access cidr:" + access}, **kwargs)
        self.pf.start()

    def mail_from(self, port, client):
        return send_mail(port, source=client, helo="client-%s.example" % client.split(".")[-1])

    def test_without_shim_everyone_is_the_proxy(self):
        self.legacy(with_shim=False)
        hp = HAProxy(self.sandbox, self.procs, self.port, mode=None)
        replies = self.mail_from(hp.port, "127.0.0.66")
        self.assertTrue(any(r[1].startswith("250 2.0.0 Ok: queued") for r in replies), replies)
        self.pf.wait_log(r"[0-9A-F]+: client=unknown\[127\.0\.0\.1\]")
        self.assertNotIn("127.0.0.66", self.pf.log())

    def check_with_shim(self, mode):
        self.legacy(with_shim=True)
        hp = HAProxy(self.sandbox, self.procs, self.port, mode=mode)
        replies = self.mail_from(hp.port, "127.0.0.66")
        codes = [c for c, _ in replies]
        self.assertIn(554, codes, replies)
        self.assertFalse(any(r[1].startswith("250 2.0.0 Ok: queued") for r in replies), replies)
        self.pf.wait_log(r"connect from unknown\[127\.0\.0\.66\]")
        self.pf.wait_log(r"reject: RCPT from unknown\[127\.0\.0\.66\]: 554 5\.7\.1")

        replies = self.mail_from(hp.port, "127.0.0.77")
        self.assertTrue(any(r[1].startswith("250 2.0.0 Ok: queued") for r in replies), replies)
        self.pf.wait_log(r"[0-9A-F]+: client=unknown\[127\.0\.0\.77\]")
        wait_until(lambda: any("(unknown [127.0.0.77])" in m for m in self.sink.messages()), 20, 0.1,
                   "Received header naming 127.0.0.77 at the sink")
        self.assertIn("event=proxied", read_text(self.shim_log))
        # HAProxy's readiness probe aside, Postfix never saw the proxy as a mail client.
        self.assertNotRegex(self.pf.log(), r"client=unknown\[127\.0\.0\.1\]")

    def test_shim_with_send_proxy_v2(self):
        self.check_with_shim("send-proxy-v2")

    def test_shim_with_send_proxy_v1(self):
        self.check_with_shim("send-proxy")

    def test_untrusted_spoofer_is_seen_as_itself(self):
        # A client that talks to Postfix directly (not through HAProxy) and sends a PROXY
        # header naming 127.0.0.99 is not trusted: Postfix sees it as itself and the header
        # as a bogus command.
        self.legacy(with_shim=True)
        header = b"PROXY TCP4 127.0.0.99 127.0.0.1 1234 25\r\n"
        replies = send_mail(self.port, source="127.0.0.55", preamble=header)
        self.pf.wait_log(r"connect from unknown\[127\.0\.0\.55\]")
        self.pf.wait_log(r"improper command pipelining after CONNECT from unknown\[127\.0\.0\.55\]: PROXY TCP4")
        self.assertIsNotNone(queued(replies), replies)  # the spoofer's own mail, under its own name
        self.pf.wait_log(r"client=unknown\[127\.0\.0\.55\]")
        self.assertNotRegex(self.pf.log(), r"(from|client=)unknown\[127\.0\.0\.99\]")


if __name__ == "__main__":
    main()
