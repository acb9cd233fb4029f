"""xproxyd with TLS on both sides, and XPROXYFROM between two xproxyd hops.

An outer xproxyd relays to an inner one with tls=required and encoding xproxyfrom; the
inner one offers STARTTLS with a certificate from its configuration, trusts the outer one
and re-emits the source as XFORWARD to smtp-sink. swaks --tls talks to the inner one
directly. A downstream that offers no STARTTLS is refused when TLS is required."""

import os
import subprocess

from harness import E2ETestCase, SmtpClient, SmtpSink, binary, main, swaks
from xproxyd_helpers import FakeDownstream, Xproxyd


class XproxydTls(E2ETestCase):
    def cert(self):
        crt, key = self.sandbox.path("tls.crt"), self.sandbox.path("tls.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=xproxyd.test.invalid", "-keyout", key, "-out", crt],
                       check=True, capture_output=True)
        os.chmod(key, 0o600)
        return crt, key

    def test_starttls_both_sides_and_xproxyfrom_hop(self):
        crt, key = self.cert()
        sink = SmtpSink(self.sandbox, self.procs, verbose=True)
        inner = Xproxyd(self.sandbox, self.procs, ["s destinations=127.0.0.1:%d encoding=xforward" % sink.port],
                        extra=["--tls-cert", crt, "--tls-key", key], name="inner")
        outer = Xproxyd(self.sandbox, self.procs,
                        ["i destinations=127.0.0.1:%d encoding=xproxyfrom tls=required" % inner.port], name="outer")
        # A client the outer hop does not trust: its source is its own address.
        c = SmtpClient(outer.port, source="127.0.0.66")
        c.ehlo("client-66.example")
        self.assertNotIn("STARTTLS", c.extensions)  # the outer hop has no certificate
        self.assertEqual(c.cmd("MAIL FROM:<s@example.org>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<r@example.net>")[0], 250)
        self.assertEqual(c.data("Subject: tls\r\n\r\nover TLS\r\n")[0], 250)
        c.close()
        self.assertEqual(len(sink.wait_messages(1)), 1)
        outer.wait_log(r"event=downstream_open .* encoding=xproxyfrom tls=yes")
        inner.wait_log(r"event=tls sid=\w+ version=TLSv1\.[23]")
        inner.wait_log(r"event=source sid=\w+ command=XPROXYFROM client=127\.0\.0\.66:\d+ helo=\"client-66\.example\"")
        xf = " ".join(sink.commands("XFORWARD"))
        self.assertIn("ADDR=127.0.0.66", xf)
        self.assertIn("HELO=client-66.example", xf)

        # swaks with STARTTLS straight to the inner hop.
        rc, out = swaks(inner.port, extra=["--tls"])
        self.assertEqual(rc, 0, out)
        self.assertIn("TLS started", out)
        self.assertEqual(len(sink.wait_messages(2)), 2)

    def test_tls_required_but_not_offered(self):
        plain = FakeDownstream()
        self.addCleanup(plain.close)
        xp = Xproxyd(self.sandbox, self.procs, ["p destinations=127.0.0.1:%d encoding=none tls=required" % plain.port])
        c = SmtpClient(xp.port)
        c.ehlo()
        code, text = c.cmd("MAIL FROM:<s@example.org>")
        self.assertEqual(code, 250, text)  # no destination: the 4xx comes at DATA
        self.assertEqual(c.cmd("RCPT TO:<r@example.net>")[0], 250)
        code, text = c.data("Subject: t\r\n\r\nx\r\n")
        self.assertEqual(code, 451, text)
        c.close()
        xp.wait_log(r"event=downstream_failed .*STARTTLS not offered and tls=required")
        self.assertEqual(plain.messages, [])

    def test_key_file_readable_by_others_is_a_configuration_error(self):
        crt, key = self.cert()
        os.chmod(key, 0o644)
        r = subprocess.run([binary("proxy/xproxyd"), "--check-config", "--downstream", "d destinations=127.0.0.1:25",
                            "--tls-cert", crt, "--tls-key", key], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("mode 0600", r.stderr)
        os.chmod(key, 0o600)
        r = subprocess.run([binary("proxy/xproxyd"), "--check-config", "--downstream", "d destinations=127.0.0.1:25",
                            "--tls-cert", crt, "--tls-key", key], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    main()
