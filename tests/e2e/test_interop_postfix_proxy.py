"""Interop b): PROXY headers produced by our encoder (xproxy-wire proxy-encode) are
accepted by a real Postfix smtpd with smtpd_upstream_proxy_protocol=haproxy: its log and
the Received header of the relayed message show the encoded client. A broken header is
refused, which proves Postfix really parses what we send."""

from harness import E2ETestCase, Postfix, SmtpSink, free_port, main, send_mail, wait_until, wire


class PostfixProxyInterop(E2ETestCase):
    def start_postfix(self):
        self.sink = SmtpSink(self.sandbox, self.procs)
        self.port = free_port()
        self.pf = Postfix(self.sandbox, self.procs, "pf", self.port, relay_port=self.sink.port,
                          smtpd_opts={"smtpd_upstream_proxy_protocol": "haproxy",
                                      "smtpd_upstream_proxy_timeout": "3s"},
                          main_cf={"mynetworks": "127.0.0.0/8, 192.0.2.0/24, 198.51.100.0/24"})
        self.pf.start()

    def send_with_header(self, version, client, client_port):
        rc, header, err = wire(["proxy-encode", "--version", str(version), "--source", "%s:%d" % (client, client_port),
                                "--destination", "127.0.0.1:%d" % self.port])
        self.assertEqual(rc, 0, err)
        return send_mail(self.port, preamble=header, helo="h%d.example.org" % version)

    def test_v1_and_v2_headers(self):
        self.start_postfix()
        cases = [(1, "192.0.2.71", 40001), (2, "192.0.2.72", 40002), (2, "198.51.100.9", 65535)]
        for i, (version, client, port) in enumerate(cases):
            replies = self.send_with_header(version, client, port)
            self.assertEqual(replies[0][0], 220, replies)
            self.assertTrue(any(r[1].startswith("250 2.0.0 Ok: queued") for r in replies), replies)
            self.pf.wait_log(r"connect from unknown\[%s\]" % client.replace(".", r"\."))
            # The relayed message's Received header names the encoded client.
            wait_until(lambda: any("(unknown [%s])" % client in m for m in self.sink.messages()), 20, 0.1,
                       "Received header naming %s at the sink" % client)

    def test_broken_header_refused(self):
        self.start_postfix()
        rc, header, err = wire(["proxy-encode", "--version", "2", "--source", "192.0.2.80:1000",
                                "--destination", "127.0.0.1:%d" % self.port])
        self.assertEqual(rc, 0, err)
        broken = header[:12] + b"\x31" + header[13:]  # version 3: not a PROXY v2 header
        replies = send_mail(self.port, preamble=broken)
        self.assertNotEqual(replies[0][0], 220, replies)
        self.pf.wait_log(r"warning: haproxy read: .*|lost connection|cannot parse", timeout=10)
        self.assertNotIn("192.0.2.80", self.pf.log())

        v1 = b"PROXY TCP4 192.0.2.81 127.0.0.1 01000 25\r\n"  # leading zero: we never emit this
        rc, out, _ = wire(["proxy-decode"], v1)
        self.assertEqual(rc, 1)


if __name__ == "__main__":
    main()
