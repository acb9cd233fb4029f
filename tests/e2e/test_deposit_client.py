#!/usr/bin/env python3
"""xproxy-deposit, the deposit client command, against real parts on loopback: NSD serving
the _dmail._tcp SRV records of example.test (unsigned) and signed.test (DNSSEC-signed at
set-up with ldns), xproxy-depositd with a token of the test's own identity provider
(PyJWT, ES256), Postfix with XCLIENT relaying to smtp-sink. The command finds the endpoint
through SRV, deposits, verifies the receipt with the server's published key (or a given
one), writes it out (xproxy-wire verifies it against the message), and a rerun with the
same Idempotency-Key gets the same receipt without a second delivery. Refused, with their
exit codes and nothing delivered: an SRV target outside the domain without DNSSEC (69), a
domain without SRV (69), a target whose certificate is for another name (75), a token for
another audience (77: not sent; with --allow-any-audience sent, and the server's 401), a
token file readable by others (78). The token's audience is the deposit service's origin
(https://mx.example.test:PORT, the daemon's --audience): a hostile domain whose SRV names
its own server (with a valid certificate for its name) gets no connection, let alone the
token; only --allow-any-audience hands it over, as the stand-in server shows. A signed
zone's outside target is used only with the trust anchor. nsd and ldnsutils come from
scripts/bootstrap."""
import json
import os
import socket
import ssl
import subprocess
import threading
import time

import jwt

import harness
from deposit_helpers import es256_idp_and_receipt_keys, openssl
from xproxyd_helpers import Nsd

ISSUER = "https://idp.test"
DIRECTORY = """domain example.test
user bob@example.test
domain hosted.example.test
user carol@hosted.example.test
domain signed.test
user dave@signed.test
"""

ZONE = """$ORIGIN example.test.
$TTL 300
@                   IN SOA ns1 hostmaster 1 3600 600 86400 60
@                   IN NS  ns1
ns1                 IN A   127.0.0.1
mx                  IN A   127.0.0.1
badcert             IN A   127.0.0.1
_dmail._tcp         IN SRV 0 0 {port} mx.example.test.
; a target outside hosted.example.test, in an unsigned zone
_dmail._tcp.hosted  IN SRV 0 0 {port} mx.example.test.
; a target in the domain whose certificate is for another name
_dmail._tcp.wrongname IN SRV 0 0 {port} badcert.wrongname.example.test.
badcert.wrongname   IN A   127.0.0.1
; a domain that points its deposit service at its own server (in the domain: no DNSSEC needed)
_dmail._tcp.hostile IN SRV 0 0 {hostile_port} evil.hostile.example.test.
evil.hostile        IN A   127.0.0.1
"""

SIGNED_ZONE = """$ORIGIN signed.test.
$TTL 300
@            IN SOA ns1.example.test. hostmaster 1 3600 600 86400 60
@            IN NS  ns1.example.test.
_dmail._tcp  IN SRV 0 0 {port} mx.example.test.
"""


class TokenCatcher:
    """A stand-in deposit server with a valid certificate for its own name: it records
    every request's header block (where a captured Authorization field shows) and
    answers 401."""

    def __init__(self, cert, key, port):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.connections = 0
        self.heads = []
        self.done = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.done:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            try:
                conn.settimeout(5)
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = tls.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    self.heads.append(data.split(b"\r\n\r\n")[0].decode("latin-1"))
                    body = b'{"status":401,"reason":"unauthorized"}'
                    tls.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/problem+json\r\n"
                                b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    def close(self):
        self.done = True
        self.thread.join(5)
        self.sock.close()


def message(to="bob@example.test", body="Hello by SRV.\r\n"):
    return ("From: Ext <ext@other.example>\r\nTo: %s\r\nSubject: deposit client\r\n"
            "Message-ID: <%d@other.example>\r\n\r\n%s" % (to, time.time_ns(), body)).encode()


class DepositClient(harness.E2ETestCase):

    def setUp(self):
        super().setUp()
        sb = self.sandbox
        d = sb.mkdir("keys", mode=0o700)
        self.idp_key, jwks, receipt_key, self.receipt_pub = es256_idp_and_receipt_keys(sb, d)
        # The server's certificate names the SRV target (mx.example.test) only.
        self.ca = os.path.join(d, "server.crt")
        server_key = os.path.join(d, "server.key")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                "-subj", "/CN=mx.example.test", "-addext", "subjectAltName=DNS:mx.example.test",
                "-keyout", server_key, "-out", self.ca)
        os.chmod(server_key, 0o600)
        # A hostile domain's own server, its certificate valid for its own name.
        self.hostile_crt = os.path.join(d, "hostile.crt")
        self.hostile_key = os.path.join(d, "hostile.key")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                "-subj", "/CN=evil.hostile.example.test", "-addext", "subjectAltName=DNS:evil.hostile.example.test",
                "-keyout", self.hostile_key, "-out", self.hostile_crt)
        self.both_cas = sb.write("keys/both-cas.crt", harness.read_text(self.ca) + harness.read_text(self.hostile_crt))
        self.hostile_port = harness.free_port()
        keyring = sb.write("keys/keyring", "k1 hex:%s\n" % ("cd" * 32), mode=0o600)
        directory = sb.write("directory", DIRECTORY)
        self.sink = harness.SmtpSink(sb, self.procs)
        mta_port = harness.free_port()
        harness.Postfix(sb, self.procs, "pf", mta_port, relay_port=self.sink.port,
                        main_cf={"smtpd_authorized_xclient_hosts": "127.0.0.0/8"}).start()
        self.port = harness.free_port()
        # The token's audience is the deposit service's own origin (doc/deposit.md "Tokens").
        self.audience = "https://mx.example.test:%d" % self.port
        self.log = sb.path("depositd.log")
        sb.logs.append(self.log)
        argv = [harness.binary("depositd/xproxy-depositd"), "--listen", "inet:127.0.0.1:%d" % self.port,
                "--tls-cert", self.ca, "--tls-key", server_key, "--issuer", ISSUER, "--audience", self.audience,
                "--jwks-file", jwks, "--mta", "inet:127.0.0.1:%d" % mta_port, "--keyring", keyring,
                "--server-name", "mx.example.test", "--receipt-key", receipt_key, "--receipt-kid", "r1",
                "--directory", directory, "--log", "stderr", "--log-level", "debug"]
        self.depositd_argv = argv
        with open(self.log, "wb") as out:
            self.procs.start("xproxy-depositd", argv, stdout=out)
        self.nsd = Nsd(sb, self.procs, {"example.test": ZONE.format(port=self.port, hostile_port=self.hostile_port)},
                       signed={"signed.test": SIGNED_ZONE.format(port=self.port)})
        harness.wait_for_port("127.0.0.1", self.port)
        self.token_file = self.write_token(self.token())

    def token(self, **over):
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": self.audience, "sub": "u1", "email": "ext@other.example", "email_verified": True,
                  "iat": now, "exp": now + 600}
        claims.update(over)
        return jwt.encode(claims, harness.read_text(self.idp_key), algorithm="ES256", headers={"kid": "idp1"})

    def write_token(self, token, name="token", mode=0o600):
        return self.sandbox.write("keys/" + name, token + "\n", mode=mode)

    def deposit(self, to, msg, *extra, token_file=None, trust_anchor=False, ca=None):
        path = self.sandbox.write("msg-%d.eml" % time.time_ns(), msg.decode())
        argv = [harness.binary("tools/xproxy-deposit"), "--token-file", token_file or self.token_file, "--to", to,
                "--dns-server", "127.0.0.1@%d" % self.nsd.port, "--dns-option", "local-zone: test. transparent",
                "--ca-file", ca or self.ca, "--timeout", "20"] + list(extra)
        if trust_anchor:
            argv += ["--trust-anchor", self.nsd.anchors["signed.test"]]
        p = subprocess.run(argv + [path], capture_output=True, text=True, timeout=90)
        # The token never appears in what the command says.
        self.assertNotIn(self.token()[:30], p.stdout + p.stderr)
        return p, path

    def test_deposits_via_srv_and_verifies_the_receipt(self):
        msg = message()
        out = self.sandbox.path("receipt.jws")
        p, path = self.deposit("bob@example.test", msg, "--receipt-out", out, "--idempotency-key", "run-1")
        self.assertEqual(p.returncode, 0, p.stderr)
        fields = dict(kv.split("=", 1) for kv in p.stdout.split())
        self.assertEqual(fields["result"], "delivered")
        self.assertEqual(fields["receipt"], "verified")
        self.assertTrue(fields["queue_id"])
        [delivered] = self.sink.wait_messages(1)
        self.assertIn("Hello by SRV.", delivered)
        self.assertIn("X-Original-Source: v=1;", delivered)
        # The receipt written out verifies against the message, and not against another.
        receipt = harness.read_text(out).strip()
        v = subprocess.run([harness.binary("tools/xproxy-wire"), "receipt-verify", "--key", self.receipt_pub,
                            "--message", path, receipt], capture_output=True, text=True)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn("queue_id=%s\n" % fields["queue_id"], v.stdout)
        self.assertIn("rcpt=bob@example.test\n", v.stdout)
        other = self.sandbox.write("other.eml", msg.decode().replace("SRV", "SRW"))
        v = subprocess.run([harness.binary("tools/xproxy-wire"), "receipt-verify", "--key", self.receipt_pub,
                            "--message", other, receipt], capture_output=True, text=True)
        self.assertEqual(v.returncode, 1, v.stdout)
        # The same run again (same key, same message, the given public key): the first
        # deposit's receipt, no second delivery.
        p2, _ = self.deposit("bob@example.test", msg, "--idempotency-key", "run-1", "--receipt-key", self.receipt_pub)
        self.assertEqual(p2.returncode, 0, p2.stderr)
        self.assertIn("queue_id=%s " % fields["queue_id"], p2.stdout)
        time.sleep(1)
        self.assertEqual(len(self.sink.messages()), 1)
        # A receipt signed by another key is refused (exit 70), though delivered.
        other_key = os.path.join(self.sandbox.path("keys"), "other.key")
        openssl("genpkey", "-algorithm", "ED25519", "-out", other_key)
        other_pub = other_key + ".pub"
        openssl("pkey", "-in", other_key, "-pubout", "-out", other_pub)
        p3, _ = self.deposit("bob@example.test", message(body="third\r\n"), "--receipt-key", other_pub)
        self.assertEqual(p3.returncode, 70, p3.stderr)
        self.assertIn("receipt=failed", p3.stdout)
        self.assertIn("receipt does not verify", p3.stderr)
        self.sink.wait_messages(2)

    def test_refusals_deliver_nothing(self):
        # An SRV target outside the recipient's domain, the answer not DNSSEC-secure.
        p, _ = self.deposit("carol@hosted.example.test", message("carol@hosted.example.test"))
        self.assertEqual(p.returncode, 69, p.stderr)
        self.assertIn("mx.example.test is outside hosted.example.test", p.stderr)
        self.assertIn("not DNSSEC-secure", p.stderr)
        # No SRV record at all.
        p, _ = self.deposit("bob@nosrv.example.test", message("bob@nosrv.example.test"))
        self.assertEqual(p.returncode, 69, p.stderr)
        self.assertIn("no SRV record _dmail._tcp.nosrv.example.test", p.stderr)
        # A target in the domain whose server's certificate is for another name (the token
        # is for that target, so that the connection is tried).
        badcert = self.write_token(self.token(aud="https://badcert.wrongname.example.test:%d" % self.port),
                                   "badcert-token")
        p, _ = self.deposit("bob@wrongname.example.test", message("bob@wrongname.example.test"),
                            token_file=badcert)
        self.assertEqual(p.returncode, 75, p.stderr)
        self.assertIn("server certificate not accepted: hostname mismatch", p.stderr)
        self.assertIn("--idempotency-key", p.stderr)
        # A token for another audience: not sent (77, naming the audience it would need);
        # sent anyway with --allow-any-audience, the server refuses it (401 wrong_audience).
        mark = len(harness.read_text(self.log))
        bad = self.write_token(self.token(aud="https://other.example.test"), "bad-token")
        p, _ = self.deposit("bob@example.test", message(), token_file=bad)
        self.assertEqual(p.returncode, 77, p.stderr)
        self.assertIn("the token is not for this deposit service", p.stderr)
        self.assertIn('needs the audience "%s"' % self.audience, p.stderr)
        self.assertNotIn("POST", harness.read_text(self.log)[mark:])
        p, _ = self.deposit("bob@example.test", message(), "--allow-any-audience", token_file=bad)
        self.assertEqual(p.returncode, 77, p.stderr)
        self.assertIn("answered 401 (wrong_audience", p.stderr)
        # A token file others may read: refused before anything is asked.
        loose = self.write_token(self.token(), "loose-token", mode=0o644)
        p, _ = self.deposit("bob@example.test", message(), token_file=loose)
        self.assertEqual(p.returncode, 78, p.stderr)
        time.sleep(1)
        self.assertEqual(self.sink.messages(), [])
        self.assertNotIn("status=303", harness.read_text(self.log))

    def test_hostile_domain_does_not_get_the_token(self):
        catcher = TokenCatcher(self.hostile_crt, self.hostile_key, self.hostile_port)
        self.addCleanup(catcher.close)
        token = harness.read_text(self.token_file).strip()
        # The recipient's domain names its own server: the token is for mx.example.test,
        # so the command refuses before it connects.
        p, _ = self.deposit("mallory@hostile.example.test", message("mallory@hostile.example.test"),
                            ca=self.both_cas)
        self.assertEqual(p.returncode, 77, p.stderr)
        self.assertIn('needs the audience "https://evil.hostile.example.test:%d"' % self.hostile_port, p.stderr)
        self.assertIn('its audience is "%s"' % self.audience, p.stderr)
        time.sleep(0.5)
        self.assertEqual(catcher.connections, 0)
        self.assertEqual(catcher.heads, [])
        # The old behaviour, --allow-any-audience: the stand-in captures the token (what
        # the binding prevents), and could replay it at mx.example.test until it expires.
        p, _ = self.deposit("mallory@hostile.example.test", message("mallory@hostile.example.test"),
                            "--allow-any-audience", ca=self.both_cas)
        self.assertEqual(p.returncode, 77, p.stderr)
        self.assertIn("answered 401", p.stderr)
        self.assertTrue(catcher.heads)
        self.assertIn("Authorization: Bearer " + token, catcher.heads[0])
        self.assertEqual(self.sink.messages(), [])

    def test_check_config_warns_of_an_audience_that_is_not_the_servers_origin(self):
        ok = subprocess.run(self.depositd_argv + ["--check-config"], capture_output=True, text=True, timeout=30)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertNotIn("warning", ok.stderr)
        argv = list(self.depositd_argv)
        argv[argv.index("--audience") + 1] = "xproxy-deposit"
        bare = subprocess.run(argv + ["--check-config"], capture_output=True, text=True, timeout=30)
        self.assertEqual(bare.returncode, 0, bare.stderr)  # a warning, not an error
        self.assertIn("warning: --audience xproxy-deposit is not an https URL naming --server-name mx.example.test",
                      bare.stderr)

    def test_outside_target_of_a_signed_zone_needs_the_trust_anchor(self):
        p, _ = self.deposit("dave@signed.test", message("dave@signed.test"))
        self.assertEqual(p.returncode, 69, p.stderr)
        self.assertIn("not DNSSEC-secure", p.stderr)
        self.assertEqual(self.sink.messages(), [])
        p, _ = self.deposit("dave@signed.test", message("dave@signed.test"), trust_anchor=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("receipt=verified", p.stdout)
        self.sink.wait_messages(1)


if __name__ == "__main__":
    harness.main()
