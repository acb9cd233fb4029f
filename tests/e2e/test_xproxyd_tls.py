"""xproxyd with TLS on both sides, and XPROXYFROM between two xproxyd hops.

An outer xproxyd relays to an inner one with tls=verify and encoding xproxyfrom; the
inner one offers STARTTLS with a certificate from a test CA, trusts the outer one and
re-emits the source as XFORWARD to smtp-sink. swaks --tls talks to the inner one directly.

Downstream TLS is checked against scripted servers: a certificate for another name, from
another CA, or without the destination's address is refused; SNI carries tls-name=;
TLS 1.1 is refused even where the system's OpenSSL policy would allow it; plain text sent
after the 220 to STARTTLS (an on-path attacker's forged replies) drops the connection
instead of passing for the downstream's protected replies; REQUIRETLS goes only to a
verified downstream. On the front side, commands pipelined after STARTTLS are discarded,
and a source named in plain text before STARTTLS is forgotten by the handshake."""

import os
import socket
import ssl
import subprocess

from harness import E2ETestCase, SmtpClient, SmtpSink, binary, main, read_reply, swaks
from xproxyd_helpers import FakeDownstream, TestPki, Xproxyd

# Replies an attacker on the path appends, in plain text, to the downstream's 220 to
# STARTTLS: for EHLO, MAIL, RCPT, DATA and the final dot.
FORGED = (b"250 fake.test\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n"
          b"250 2.0.0 Ok: queued as FORGED\r\n")

# An OpenSSL configuration as lax as it gets: TLS 1.0 and weak ciphers allowed. xproxyd
# must hold its own TLS 1.2 minimum under it.
LAX_OPENSSL_CONF = """openssl_conf = init
[init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = sys
[sys]
MinProtocol = TLSv1
CipherString = DEFAULT:@SECLEVEL=0
"""


class XproxydTls(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.pki = TestPki(self.sandbox)

    def fake(self, **kw):
        f = FakeDownstream(**kw)
        self.addCleanup(f.close)
        return f

    def mail(self, port, body="Subject: t\r\n\r\nx\r\n"):
        """One transaction from a client xproxyd does not trust: the reply to DATA or the dot."""
        c = SmtpClient(port, source="127.0.0.66")
        try:
            c.ehlo("client.example")
            self.assertEqual(c.cmd("MAIL FROM:<s@example.org>")[0], 250)
            self.assertEqual(c.cmd("RCPT TO:<r@example.net>")[0], 250)
            return c.data(body)
        finally:
            c.close()

    def test_starttls_both_sides_and_xproxyfrom_hop(self):
        crt, key = self.pki.issue("inner", dns=["xproxyd.test.invalid"])
        sink = SmtpSink(self.sandbox, self.procs, verbose=True)
        inner = Xproxyd(self.sandbox, self.procs, ["s destinations=127.0.0.1:%d encoding=xforward" % sink.port],
                        extra=["--tls-cert", crt, "--tls-key", key], name="inner")
        outer = Xproxyd(self.sandbox, self.procs,
                        ["i destinations=127.0.0.1:%d encoding=xproxyfrom tls=verify tls-name=xproxyd.test.invalid "
                         "tls-ca=%s" % (inner.port, self.pki.ca)], name="outer")
        # A client the outer hop does not trust: its source is its own address.
        c = SmtpClient(outer.port, source="127.0.0.66")
        c.ehlo("client-66.example")
        self.assertNotIn("STARTTLS", c.extensions)  # the outer hop has no certificate
        self.assertEqual(c.cmd("MAIL FROM:<s@example.org>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<r@example.net>")[0], 250)
        self.assertEqual(c.data("Subject: tls\r\n\r\nover TLS\r\n")[0], 250)
        c.close()
        self.assertEqual(len(sink.wait_messages(1)), 1)
        outer.wait_log(r"event=downstream_open .* encoding=xproxyfrom tls=yes verified=yes")
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

    def test_tls_encrypt_but_not_offered(self):
        plain = self.fake()
        xp = Xproxyd(self.sandbox, self.procs, ["p destinations=127.0.0.1:%d encoding=none tls=encrypt" % plain.port])
        code, text = self.mail(xp.port)  # no destination at MAIL: the 4xx comes at DATA
        self.assertEqual(code, 451, text)
        xp.wait_log(r"event=downstream_failed .*STARTTLS not offered and tls=encrypt")
        self.assertEqual(plain.messages, [])

    def test_plain_text_after_the_220_to_starttls_is_never_read_as_a_reply(self):
        crt, key = self.pki.issue("local", ips=["127.0.0.1"])
        for mode in ("verify tls-ca=" + self.pki.ca, "encrypt", "may"):
            with self.subTest(tls=mode):
                evil = self.fake(tls=self.pki.server_context(crt, key), after_220=FORGED,
                                 after_tls="554 5.7.1 Refused after TLS")
                xp = Xproxyd(self.sandbox, self.procs,
                             ["d destinations=127.0.0.1:%d encoding=none tls=%s" % (evil.port, mode)],
                             name="xproxyd-" + mode.split()[0])
                code, text = self.mail(xp.port)
                self.assertEqual(code, 451, text)  # never the forged 250
                self.assertNotIn("FORGED", text)
                xp.wait_log(r"event=downstream_failed .*plain text after the 220 to STARTTLS \(\d+ bytes\)")
                self.assertEqual(evil.messages, [])
                self.assertEqual(evil.tls_versions, [])  # dropped before any handshake

    def test_downstream_certificate_must_match_the_destination(self):
        good_crt, good_key = self.pki.issue("mx", dns=["mx.test.invalid"])
        other_crt, other_key = self.pki.issue("other", dns=["other.test.invalid"], ips=["127.0.0.2"])
        rogue = TestPki(self.sandbox, name="rogue-ca")
        rogue_crt, rogue_key = rogue.issue("rogue", dns=["mx.test.invalid"], ips=["127.0.0.1"])
        ca = self.pki.ca
        cases = [  # (certificate, downstream options, want delivered, log)
            ((other_crt, other_key), "tls=verify tls-name=mx.test.invalid tls-ca=" + ca, False, "hostname mismatch"),
            ((good_crt, good_key), "tls=verify tls-ca=" + ca, False, "IP address mismatch"),  # name, no 127.0.0.1
            ((rogue_crt, rogue_key), "tls=verify tls-name=mx.test.invalid tls-ca=" + ca, False,
             "unable to get local issuer certificate"),
            ((rogue_crt, rogue_key), "tls=verify tls-name=mx.test.invalid", False,  # system store: no test CA
             "unable to get local issuer certificate"),
            ((good_crt, good_key), "tls=verify tls-name=mx.test.invalid tls-ca=" + ca, True, None),
        ]
        for i, ((crt, key), opts, delivered, why) in enumerate(cases):
            with self.subTest(opts=opts, cert=os.path.basename(crt)):
                fake = self.fake(tls=self.pki.server_context(crt, key))
                xp = Xproxyd(self.sandbox, self.procs, ["d destinations=127.0.0.1:%d encoding=none %s"
                                                        % (fake.port, opts)], name="xproxyd-%d" % i)
                code, text = self.mail(xp.port)
                if delivered:
                    self.assertEqual(code, 250, text)
                    self.assertEqual(len(fake.messages), 1)
                    xp.wait_log(r"event=downstream_open .* tls=yes verified=yes")
                else:
                    self.assertEqual(code, 451, text)
                    self.assertEqual(fake.messages, [])
                    xp.wait_log(r"event=downstream_failed .*TLS handshake: .*%s" % why)
                # SNI carries the configured name; an address is never sent as SNI.
                self.assertEqual({n for n in fake.sni if n}, {"mx.test.invalid"} if "tls-name" in opts else set())

    def test_certificate_for_the_destination_address(self):
        crt, key = self.pki.issue("ip", ips=["127.0.0.1"])
        fake = self.fake(tls=self.pki.server_context(crt, key))
        xp = Xproxyd(self.sandbox, self.procs, ["d destinations=127.0.0.1:%d encoding=none tls=verify"
                                                % fake.port], extra=["--tls-ca", self.pki.ca])
        code, text = self.mail(xp.port)
        self.assertEqual(code, 250, text)
        self.assertEqual(len(fake.messages), 1)
        self.assertEqual([n for n in fake.sni if n], [])

    def test_tls_1_1_is_refused_on_both_sides(self):
        lax = self.sandbox.write("lax-openssl.cnf", LAX_OPENSSL_CONF)
        env = dict(os.environ, OPENSSL_CONF=lax)
        crt, key = self.pki.issue("old", ips=["127.0.0.1"])
        v11 = (ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_1)
        old = self.fake(tls=self.pki.server_context(crt, key, versions=v11))
        xp = Xproxyd(self.sandbox, self.procs, ["d destinations=127.0.0.1:%d encoding=none tls=encrypt" % old.port],
                     extra=["--tls-cert", crt, "--tls-key", key], env=env)
        code, text = self.mail(xp.port)
        self.assertEqual(code, 451, text)
        self.assertEqual(old.messages, [])
        self.assertEqual(old.tls_versions, [])
        xp.wait_log(r"event=downstream_failed .*TLS handshake")

        # The front side: a client that speaks TLS 1.1 at most gets no session.
        c = SmtpClient(xp.port)
        c.ehlo()
        self.assertIn("STARTTLS", c.extensions)
        self.assertEqual(c.cmd("STARTTLS")[0], 220)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        with self.assertRaises((ssl.SSLError, OSError)):
            ctx.wrap_socket(c.sock).close()
        c.sock.close()
        xp.wait_log(r"event=tls_failed")

    def test_commands_pipelined_after_starttls_are_discarded(self):
        crt, key = self.pki.issue("front", dns=["xproxyd.test.invalid"])
        fake = self.fake()
        xp = Xproxyd(self.sandbox, self.procs, ["d destinations=127.0.0.1:%d encoding=none" % fake.port],
                     extra=["--tls-cert", crt, "--tls-key", key])
        c = SmtpClient(xp.port)
        c.ehlo()
        # An attacker on the path appends a command to the client's STARTTLS.
        injected = "MAIL FROM:<attacker@example.org>\r\n"
        c.send("STARTTLS\r\n" + injected)
        self.assertEqual(c.reply()[0], 220)
        ctx = ssl.create_default_context(cafile=self.pki.ca)
        s = ctx.wrap_socket(c.sock, server_hostname="xproxyd.test.invalid")
        f = s.makefile("rb")
        s.sendall(b"EHLO client.example\r\n")
        code, text = read_reply(f)
        self.assertEqual(code, 250, text)
        self.assertIn("xproxyd.test.invalid", text.splitlines()[0])  # the EHLO reply, not MAIL's
        s.sendall(b"RCPT TO:<r@example.net>\r\n")
        self.assertEqual(read_reply(f)[0], 503)  # the injected MAIL never happened
        s.sendall(b"QUIT\r\n")
        read_reply(f)
        s.close()
        xp.wait_log(r"event=starttls_pipelining sid=\w+ discarded=%d" % len(injected))
        self.assertFalse([cmd for cmd in fake.commands if "attacker" in cmd])

    def test_source_named_before_starttls_is_forgotten(self):
        # RFC 3207 4.2: an on-path attacker between a trusted upstream and xproxyd inserts
        # XCLIENT (or XPROXYFROM) before the upstream's STARTTLS. After the handshake the
        # source is the TCP peer again, whatever was said in plain text.
        crt, key = self.pki.issue("front2", dns=["xproxyd.test.invalid"])
        fake = self.fake(ehlo=("PIPELINING", "XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT"))
        xp = Xproxyd(self.sandbox, self.procs, ["d destinations=127.0.0.1:%d encoding=xclient" % fake.port],
                     trusted="127.0.0.0/8", extra=["--tls-cert", crt, "--tls-key", key])
        for injected in ("XCLIENT ADDR=203.0.113.66 PORT=4242 LOGIN=admin",
                         "XPROXYFROM SID=Q1 IP=203.0.113.66 PORT=4242 LOGIN=admin"):
            with self.subTest(injected=injected.split()[0]):
                before = len(fake.commands)
                c = SmtpClient(xp.port, source="127.0.0.5")
                c.ehlo("upstream.example")
                self.assertIn(c.cmd(injected)[0], (220, 250))
                if injected.startswith("XCLIENT"):
                    c.ehlo("upstream.example")
                self.assertEqual(c.cmd("STARTTLS")[0], 220)
                ctx = ssl.create_default_context(cafile=self.pki.ca)
                s = ctx.wrap_socket(c.sock, server_hostname="xproxyd.test.invalid")
                f = s.makefile("rb")
                for line, want in (("EHLO upstream.example", 250), ("MAIL FROM:<s@example.org>", 250),
                                   ("RCPT TO:<r@example.net>", 250), ("DATA", 354),
                                   ("Subject: t\r\n\r\nx\r\n.", 250), ("QUIT", 221)):
                    s.sendall(line.encode() + b"\r\n")
                    code, text = read_reply(f)
                    self.assertEqual(code, want, (line, text))
                s.close()
                sent = [cmd for cmd in fake.commands[before:] if cmd.startswith("XCLIENT")]
                self.assertTrue(sent, fake.commands[before:])
                self.assertIn("ADDR=127.0.0.5", sent[-1])
                self.assertNotIn("203.0.113.66", "\n".join(fake.commands[before:]))
                self.assertNotIn("admin", "\n".join(fake.commands[before:]))
        self.assertEqual(len(fake.messages), 2)
        self.assertNotRegex(xp.log(), r"event=relayed .*client=203\.0\.113\.66")

    def test_front_side_refuses_renegotiation(self):
        # TLS 1.2 renegotiation only lets a client make xproxyd redo handshakes (CPU) on a
        # session it already holds; xproxyd refuses it and the session ends. (OpenSSL 3
        # refuses a client's renegotiation by default; this holds xproxyd to it.)
        crt, key = self.pki.issue("reneg", dns=["xproxyd.test.invalid"])
        fake = self.fake()
        xp = Xproxyd(self.sandbox, self.procs, ["d destinations=127.0.0.1:%d encoding=none" % fake.port],
                     extra=["--tls-cert", crt, "--tls-key", key])
        p = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % xp.port, "-starttls", "smtp",
                              "-tls1_2", "-CAfile", self.pki.ca, "-crlf"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        lines = []
        try:
            for line in p.stdout:  # the session summary ends with the verify result
                lines.append(line.decode("utf-8", "replace"))
                if lines[-1].lstrip().startswith("Verify return code"):
                    break
            self.assertEqual(lines[-1].split(":")[1].split()[0], "0", "".join(lines))
            # s_client: "R" renegotiates; then a NOOP must not be answered.
            try:
                p.stdin.write(b"R\nNOOP\n")
                p.stdin.flush()
            except BrokenPipeError:
                pass
            answered = False
            for line in p.stdout:
                lines.append(line.decode("utf-8", "replace"))
                # NOOP's reply; s_client also prints the last line of the EHLO reply
                # ("250 XPROXYFROM"), which answers nothing.
                if lines[-1].startswith("250 2.0.0"):
                    answered = True
                    break
        finally:
            try:
                p.stdin.close()
            except BrokenPipeError:
                pass
            p.kill()
            p.wait()
        self.assertFalse(answered, "".join(lines))
        xp.wait_log(r"event=disconnect sid=\w+ reason=\"read error\"")

    def test_requiretls_goes_only_to_a_verified_downstream(self):
        crt, key = self.pki.issue("rt", dns=["xproxyd.test.invalid"], ips=["127.0.0.1"])
        for mode, want in (("encrypt", 550), ("verify tls-ca=" + self.pki.ca, 250)):
            with self.subTest(tls=mode):
                fake = self.fake(tls=self.pki.server_context(crt, key),
                                 ehlo=("PIPELINING", "SIZE 100000000", "8BITMIME", "REQUIRETLS"))
                xp = Xproxyd(self.sandbox, self.procs,
                             ["d destinations=127.0.0.1:%d encoding=none tls=%s" % (fake.port, mode)],
                             extra=["--tls-cert", crt, "--tls-key", key], name="xproxyd-" + mode.split()[0])
                c = SmtpClient(xp.port)
                c.ehlo()
                self.assertEqual(c.cmd("STARTTLS")[0], 220)
                s = ssl.create_default_context(cafile=self.pki.ca).wrap_socket(
                    c.sock, server_hostname="xproxyd.test.invalid")
                f = s.makefile("rb")
                s.sendall(b"EHLO client.example\r\n")
                self.assertIn("REQUIRETLS", read_reply(f)[1])
                s.sendall(b"MAIL FROM:<s@example.org> REQUIRETLS\r\n")
                code, text = read_reply(f)
                self.assertEqual(code, want, text)
                if want == 550:  # RFC 8689: an unauthenticated next hop never gets it
                    self.assertTrue(text.startswith("550 5.7.30"), text)
                s.close()

    def test_tls_configuration_errors(self):
        crt, key = self.pki.issue("cfg", dns=["xproxyd.test.invalid"])
        os.chmod(key, 0o644)

        def check(*args):
            return subprocess.run([binary("xproxyd/xproxyd"), "--check-config"] + list(args),
                                  capture_output=True, text=True)
        r = check("--downstream", "d destinations=127.0.0.1:25", "--tls-cert", crt, "--tls-key", key)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("mode 0600", r.stderr)
        os.chmod(key, 0o600)
        r = check("--downstream", "d destinations=127.0.0.1:25", "--tls-cert", crt, "--tls-key", key)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for spec, want in [
                ("d destinations=127.0.0.1:25 tls=required", "tls=required is gone"),
                ("d destinations=127.0.0.1:25 encoding=xclient tls=may tls-ca=" + self.pki.ca,
                 "tls-ca= needs tls=verify"),
                ("d destinations=127.0.0.1:25 tls-name=mx.example", "tls-name= needs TLS"),
                ("d destinations=127.0.0.1:25 tls=verify tls-name=*.example", "bad value"),
                ("d destinations=127.0.0.1:25 encoding=xclient tls=verify tls-ca=/nonexistent", "downstream d")]:
            with self.subTest(spec=spec):
                r = check("--downstream", spec)
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertIn(want, r.stderr)

    def test_proxy_header_configurations_an_attacker_could_rewrite_are_refused(self):
        # A PROXY header goes before STARTTLS: TLS cannot protect it. Refused: PROXY with
        # TLS but no signature (the default off this machine), unsigned PROXY off this
        # machine without proxy-unsigned=yes, a key file others may read or too short.
        def check(*specs):
            argv = [binary("xproxyd/xproxyd"), "--check-config"]
            for spec in specs:
                argv += ["--downstream", spec]
            return subprocess.run(argv, capture_output=True, text=True)
        key = self.sandbox.write("hmac.key", "k" * 32 + "\n", mode=0o600)
        loose = self.sandbox.write("loose.key", "k" * 32, mode=0o640)
        short = self.sandbox.write("short.key", "k" * 15 + "\n", mode=0o600)
        for spec, want in [
                ("d destinations=192.0.2.1:25", "write encoding=proxy-v2 hmac-key-file=PATH"),
                ("d destinations=192.0.2.1:25 encoding=proxy-v1", "is sent before STARTTLS"),
                ("d destinations=192.0.2.1:25 encoding=proxy-v2 tls=none", "proxy-unsigned=yes only on a segment"),
                ("d destinations=127.0.0.1:25 encoding=proxy-v2 tls=verify", "or tls=none"),
                ("d destinations=127.0.0.1:25 encoding=proxy-v1 hmac-key-file=" + key, "need encoding=proxy-v2"),
                ("d destinations=192.0.2.1:25 hmac-key-file=" + loose, "mode 0600 or tighter (has 0640"),
                ("d destinations=192.0.2.1:25 hmac-key-file=" + short, "fewer than 16 bytes"),
                ("d destinations=192.0.2.1:25 hmac-key-file=/nonexistent", "cannot open /nonexistent")]:
            with self.subTest(spec=spec):
                r = check(spec)
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertIn(want, r.stderr)
                self.assertNotIn("k" * 15, r.stdout + r.stderr)  # never the key
        r = check("d destinations=192.0.2.1:25 hmac-key-file=%s hmac-key-id=3" % key,
                  "u destinations=192.0.2.2:25 encoding=proxy-v1 tls=none proxy-unsigned=yes",
                  "l destinations=127.0.0.1:25")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("downstream d: encoding=proxy-v2 signed tls=verify", r.stdout)
        self.assertIn("downstream u: encoding=proxy-v1 tls=none", r.stdout)
        self.assertNotIn("k" * 15, r.stdout + r.stderr)


if __name__ == "__main__":
    main()
