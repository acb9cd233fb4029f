"""Interop b): PROXY headers produced by our encoder (xproxy-wire proxy-encode) are
accepted by a real Postfix smtpd with smtpd_upstream_proxy_protocol=haproxy: its log
(with smtpd_client_port_logging) shows the encoded client address and port, and the
Received header of the relayed message at smtp-sink names the encoded client. IPv6 clients
need inet_protocols=all even when Postfix listens on 127.0.0.1 only. A LOCAL header makes
Postfix use the real peer. Broken headers are refused with Postfix's own diagnostics,
which proves Postfix really parses what we send."""

import re

from harness import E2ETestCase, Postfix, SmtpSink, free_port, main, queued, send_mail, wait_until, wire

MYNETWORKS = "127.0.0.0/8, 192.0.2.0/24, 198.51.100.0/24, [2001:db8::]/32"


class PostfixProxyInterop(E2ETestCase):
    def start_postfix(self, ipv6=True):
        self.sink = SmtpSink(self.sandbox, self.procs)
        self.port = free_port()
        self.pf = Postfix(self.sandbox, self.procs, "pf", self.port, relay_port=self.sink.port, ipv6=ipv6,
                          smtpd_opts={"smtpd_upstream_proxy_protocol": "haproxy",
                                      "smtpd_upstream_proxy_timeout": "3s"},
                          main_cf={"mynetworks": MYNETWORKS, "smtpd_client_port_logging": "yes"})
        self.pf.start()

    def encode(self, *args):
        rc, header, err = wire(["proxy-encode"] + list(args))
        self.assertEqual(rc, 0, err)
        return header

    def header(self, version, client, client_port, dest="127.0.0.1"):
        fmt = "[%s]:%d" if ":" in client else "%s:%d"
        dfmt = "[%s]:%d" if ":" in dest else "%s:%d"
        return self.encode("--version", str(version), "--source", fmt % (client, client_port),
                           "--destination", dfmt % (dest, self.port))

    def assert_seen_as(self, replies, logged, port, received):
        """Postfix accepted the mail and logged/recorded the client as `logged`:port."""
        self.assertEqual(replies[0][0], 220, replies)
        qid = queued(replies)
        self.assertIsNotNone(qid, replies)
        addr = re.escape("unknown[%s]:%d" % (logged, port))
        self.pf.wait_log(r"smtpd\[\d+\]: connect from %s$" % addr)
        self.pf.wait_log(r"smtpd\[\d+\]: %s: client=%s$" % (qid, addr))
        msgs = wait_until(lambda: [m for m in self.sink.messages() if " id %s\n" % qid in m], 20, 0.1,
                          "message %s at the sink" % qid)
        self.assertIn("(unknown [%s])" % received, msgs[0], "the Received header must name the encoded client")

    def test_v1_and_v2_ipv4(self):
        self.start_postfix()
        cases = [(1, "192.0.2.71", 40001), (2, "192.0.2.72", 40002), (2, "198.51.100.9", 65535),
                 (1, "198.51.100.10", 1)]
        for version, client, port in cases:
            replies = send_mail(self.port, preamble=self.header(version, client, port), helo="h%d.example" % version)
            self.assert_seen_as(replies, client, port, client)

    def test_v1_and_v2_ipv6(self):
        self.start_postfix(ipv6=True)
        for version, client, port in [(1, "2001:db8::71", 4071), (2, "2001:db8::72", 4072)]:
            replies = send_mail(self.port, preamble=self.header(version, client, port, dest="2001:db8::1"))
            self.assert_seen_as(replies, client, port, "IPv6:" + client)
        # An IPv4-mapped IPv6 source is logged as the IPv4 address.
        replies = send_mail(self.port, preamble=self.header(2, "::ffff:192.0.2.73", 4073, dest="2001:db8::1"))
        self.assert_seen_as(replies, "192.0.2.73", 4073, "192.0.2.73")

    def test_ipv6_needs_inet_protocols_all(self):
        # inet_protocols=ipv4: Postfix refuses IPv6 clients in PROXY headers.
        self.start_postfix(ipv6=False)
        v2 = self.header(2, "2001:db8::74", 4074, dest="2001:db8::1")
        replies = send_mail(self.port, preamble=v2)
        self.assertEqual(replies[0][0], 421, replies)
        self.pf.wait_log(r"warning: haproxy read: Postfix IPv6 support is disabled")
        v1 = self.header(1, "2001:db8::75", 4075, dest="2001:db8::1")
        self.assertTrue(v1.startswith(b"PROXY TCP6 2001:db8::75 2001:db8::1 4075 "), v1)
        replies = send_mail(self.port, preamble=v1)
        self.assertEqual(replies[0][0], 421, replies)
        self.pf.wait_log(r"warning: haproxy read: bad or missing protocol type: PROXY TCP6 2001:db8::75")
        self.assertNotIn("2001:db8::7", "".join(self.sink.messages()))

    def test_local_command_uses_the_real_peer(self):
        self.start_postfix()
        local = self.encode("--version", "2", "--local")
        self.assertEqual(local[12], 0x20, local)  # version 2 | LOCAL
        replies = send_mail(self.port, preamble=local, source="127.0.0.9")
        self.assertEqual(replies[0][0], 220, replies)
        qid = queued(replies)
        self.assertIsNotNone(qid, replies)
        self.pf.wait_log(r"%s: client=unknown\[127\.0\.0\.9\]:\d+$" % qid)

    def test_broken_headers_refused(self):
        self.start_postfix()
        good = self.header(2, "192.0.2.80", 1000)
        bad_version = good[:12] + b"\x31" + good[13:]        # version 3 | PROXY
        bad_signature = b"\r\n\r\n\x00\r\nQUIT\r" + good[12:]  # last signature byte changed
        cases = [
            ("v2 version 3", bad_version, r"haproxy read: unrecognized protocol version"),
            ("v2 bad signature", bad_signature, r"haproxy read: unrecognized protocol header"),
            ("garbage", b"GARBAGE\r\n", r"haproxy read: short protocol header: GARBAGE"),
            ("v1 port with leading zero", b"PROXY TCP4 192.0.2.81 127.0.0.1 01000 25\r\n",
             r"haproxy read: bad or missing client port: PROXY TCP4 192\.0\.2\.81"),
            ("v1 address out of range", b"PROXY TCP4 192.0.2.256 127.0.0.1 1000 25\r\n",
             r"haproxy read: bad or missing client address: PROXY TCP4 192\.0\.2\.256"),
        ]
        for name, raw, want_log in cases:
            with self.subTest(name):
                mark = self.pf.log_mark()
                replies = send_mail(self.port, preamble=raw)
                self.assertEqual(replies[0][0], 421, replies)
                self.pf.wait_log(r"smtpd\[\d+\]: warning: " + want_log, start=mark)
                # Our decoder refuses the same bytes.
                rc, out, _ = wire(["proxy-decode"], raw)
                self.assertEqual(rc, 1, out)
                self.assertIn(b"error=", out)
        self.assertNotRegex(self.pf.log(), r"connect from unknown\[192\.0\.2\.")
        self.assertEqual(self.sink.messages(), [])


if __name__ == "__main__":
    main()
