#!/usr/bin/env python3
"""xproxy-depositd's HTTPS side against a real MTA (Postfix with XCLIENT, relaying to
smtp-sink) and real
tokens (PyJWT, ES256): a deposit is delivered with the signed trace header and answered
303 with a receipt that verifies with the published key; the refusals of doc/deposit.md
(401 with WWW-Authenticate, 403, 413 from Content-Length, 415, 429 with Retry-After);
Idempotency-Key replay and reuse; a request that stalls gets 408."""
import base64
import hashlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import unittest

import jwt

import harness
from deposit_helpers import es256_idp_and_receipt_keys, openssl

ISSUER = "https://idp.test"
AUDIENCE = "xproxy-deposit"
DIRECTORY = """domain example.com
user bob@example.com
user alice@example.com alias=a.smith login=alice@idp.test
"""


def message(sender="ext@other.example", to="bob@example.com", msgid="<m1@other.example>", body="Hello.\r\n"):
    head = "From: Ext <%s>\r\nTo: %s\r\nSubject: test\r\n" % (sender, to)
    if msgid:
        head += "Message-ID: %s\r\n" % msgid
    return (head + "\r\n" + body).encode()


class DepositdServer(harness.E2ETestCase):

    def setUp(self):
        super().setUp()
        sb = self.sandbox
        d = sb.mkdir("keys", mode=0o700)
        self.idp_key, self.jwks, self.receipt_key, _ = es256_idp_and_receipt_keys(sb, d)
        self.cert, self.key = os.path.join(d, "server.crt"), os.path.join(d, "server.key")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                "-subj", "/CN=deposit.test", "-addext", "subjectAltName=DNS:deposit.test,IP:127.0.0.1",
                "-keyout", self.key, "-out", self.cert)
        os.chmod(self.key, 0o600)
        self.keyring = sb.write("keys/keyring", "k1 hex:%s\n" % ("ab" * 32), mode=0o600)
        self.directory = sb.write("directory", DIRECTORY)
        self.sink = harness.SmtpSink(sb, self.procs)
        self.mta_port = harness.free_port()
        self.pf = harness.Postfix(sb, self.procs, "pf", self.mta_port, relay_port=self.sink.port,
                                  main_cf={"smtpd_authorized_xclient_hosts": "127.0.0.0/8"}).start()

    def start(self, *extra):
        self.port = harness.free_port()
        self.log = self.sandbox.path("depositd.log")
        self.sandbox.logs.append(self.log)
        argv = [harness.binary("depositd/xproxy-depositd"), "--listen", "inet:127.0.0.1:%d" % self.port,
                "--tls-cert", self.cert, "--tls-key", self.key, "--issuer", ISSUER, "--audience", AUDIENCE,
                "--jwks-file", self.jwks, "--mta", "inet:127.0.0.1:%d" % self.mta_port,
                "--keyring", self.keyring, "--server-name", "deposit.test", "--receipt-key", self.receipt_key,
                "--receipt-kid", "r1", "--directory", self.directory, "--log", "stderr", "--log-level", "debug"]
        argv += list(extra)
        with open(self.log, "wb") as out:
            self.procs.start("xproxy-depositd", argv, stdout=out)
        harness.wait_for_port("127.0.0.1", self.port)

    def token(self, email="ext@other.example", **over):
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u1", "email": email, "email_verified": True,
                  "iat": now, "exp": now + 600}
        claims.update(over)
        return jwt.encode(claims, open(self.idp_key).read(), algorithm="ES256", headers={"kid": "idp1"})

    def request(self, method, path, body=None, token=None, headers=None, conn=None):
        ctx = ssl.create_default_context(cafile=self.cert)
        c = conn or http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=20)
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        if body is not None and "Content-Type" not in h:
            h["Content-Type"] = "message/rfc822"
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        return r, data

    def deposit(self, body, token=None, query="", headers=None):
        return self.request("POST", "/v1/deposit" + query, body, token or self.token(), headers)

    def test_deposit_is_delivered_with_trace_header_and_a_receipt_that_verifies(self):
        self.start()
        msg = message()
        r, data = self.deposit(msg)
        self.assertEqual(r.status, 303, data)
        location = r.getheader("Location")
        self.assertRegex(location, r"^/v1/receipts/[A-Za-z0-9_-]{22}$")
        body = json.loads(data)
        self.assertEqual(body["receipt"], location)
        [delivered] = self.sink.wait_messages(1)
        self.assertIn("X-Original-Source: v=1;", delivered)
        self.assertIn("login=ext@other.example", delivered.replace("\n\t", " ").replace("\r", ""))
        self.assertIn("Hello.", delivered)
        # the receipt, for this identity only, signed with the published key
        r, receipt = self.request("GET", location, token=self.token())
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("Content-Type"), "application/jose")
        r, _ = self.request("GET", location, token=self.token("other@other.example"))
        self.assertEqual(r.status, 404)
        r, keys = self.request("GET", "/.well-known/dmail/receipt-keys")
        self.assertEqual(r.status, 200)
        [k] = json.loads(keys)["keys"]
        self.assertEqual((k["kty"], k["crv"], k["kid"]), ("OKP", "Ed25519", "r1"))
        self.assertNotIn("d", k)
        claims = jwt.decode(receipt, jwt.PyJWK(k).key, algorithms=["EdDSA"])
        self.assertEqual(claims["iss"], "deposit.test")
        self.assertEqual(claims["rcpt"], ["bob@example.com"])
        digest = base64.urlsafe_b64encode(hashlib.sha256(msg).digest()).rstrip(b"=").decode()
        self.assertEqual(claims["sha256"], digest)
        self.assertEqual(claims["queue_id"], body["queue_id"])
        log = harness.read_text(self.log)
        self.assertRegex(log, r"event=deposit client=127\.0\.0\.1:\d+ identity=\"?ext@other.example\"? status=303")
        self.assertNotIn(self.token()[:40], log)

    def test_refusals_say_why(self):
        metrics_port = harness.free_port()
        self.start("--rate-limit", "3", "--max-message-size", "100000", "--metrics", "inet:127.0.0.1:%d" % metrics_port)
        cases = [
            ("no token", dict(token="-"), 401, "missing_token"),
            ("wrong audience", dict(token=self.token(aud="someone-else")), 401, "wrong_audience"),
            ("expired", dict(token=self.token(exp=int(time.time()) - 3600)), 401, "expired"),
        ]
        for name, kw, status, reason in cases:
            tok = kw["token"]
            r, data = self.request("POST", "/v1/deposit", message(), None if tok == "-" else tok)
            self.assertEqual(r.status, status, name)
            self.assertEqual(json.loads(data)["reason"], reason, name)
            self.assertTrue(r.getheader("WWW-Authenticate").startswith('Bearer realm="xproxy"'), name)
        # each of these counts against alice's rate (3 a minute)
        tok = self.token("alice@idp.test")
        r, data = self.deposit(message(sender="boss@other.example"), tok)
        self.assertEqual((r.status, json.loads(data)["reason"]), (403, "sender_not_allowed"))
        r, data = self.deposit(message(sender="a.smith@example.com", to="x@elsewhere.example"), tok,
                               headers={"Content-Type": "text/plain"})
        self.assertEqual((r.status, json.loads(data)["reason"]), (415, "unsupported_media_type"))
        r, data = self.deposit(message(sender="a.smith@example.com", to="x@elsewhere.example"), tok)
        self.assertEqual(r.status, 303, data)  # a hosted user may relay
        r, data = self.deposit(message(sender="a.smith@example.com"), tok)
        self.assertEqual((r.status, json.loads(data)["reason"]), (429, "rate_limited"))
        self.assertGreaterEqual(int(r.getheader("Retry-After")), 1)
        # an outsider may only write to hosted domains
        r, data = self.deposit(message(to="x@elsewhere.example"))
        self.assertEqual((r.status, json.loads(data)["reason"]), (403, "recipient_not_hosted"))
        r, data = self.deposit(message(), query="?rcpt=nobody%40example.com")
        self.assertEqual((r.status, json.loads(data)["reason"]), (403, "recipient_refused"))
        r, data = self.deposit(message(body="x" * 200000))
        self.assertEqual((r.status, json.loads(data)["reason"]), (413, "too_large"))
        r, data = self.deposit(b"no header here\r\n\r\n", self.token("ext2@other.example"))
        self.assertEqual((r.status, json.loads(data)["reason"]), (400, "bad_request"))
        r, data = self.request("GET", "/v1/nothing")
        self.assertEqual(r.status, 404)
        r, data = self.request("GET", "/v1/deposit")
        self.assertEqual((r.status, r.getheader("Allow")), (405, "POST"))
        self.assertEqual(len(self.sink.wait_messages(1)), 1)
        m = http.client.HTTPConnection("127.0.0.1", metrics_port, timeout=10)
        m.request("GET", "/metrics")
        text = m.getresponse().read().decode()
        self.assertIn('xproxy_depositd_deposits_total{result="accepted"} 1\n', text)
        self.assertIn('xproxy_depositd_deposits_total{result="refused"} 11\n', text)
        self.assertIn('xproxy_depositd_token_refusals_total{reason="expired"} 1\n', text)
        self.assertIn('xproxy_depositd_token_refusals_total{reason="missing_token"} 1\n', text)
        self.assertIn("xproxy_depositd_jwks_loads_total 1\n", text)

    def test_idempotency_key_replays_and_refuses_reuse(self):
        self.start()
        h = {"Idempotency-Key": "retry-1"}
        r1, d1 = self.deposit(message(), headers=h)
        self.assertEqual(r1.status, 303, d1)
        r2, d2 = self.deposit(message(), headers=h)
        self.assertEqual(r2.status, 303, d2)
        self.assertEqual(r2.getheader("Location"), r1.getheader("Location"))
        r3, d3 = self.deposit(message(body="Other.\r\n"), headers=h)
        self.assertEqual((r3.status, json.loads(d3)["reason"]), (422, "idempotency_key_reused"))
        time.sleep(1)
        self.assertEqual(len(self.sink.messages()), 1, "one delivery for one key")

    def client_cert(self, name, ca=None):
        """A client certificate signed by `ca` (a (cert, key) pair) or self-signed; its
        paths and SHA-256 fingerprint."""
        d = self.sandbox.path("keys")
        crt, key = os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")
        if ca is None:
            openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                    "-subj", "/CN=" + name, "-keyout", key, "-out", crt,
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign")
        else:
            csr = os.path.join(d, name + ".csr")
            openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-subj", "/CN=" + name, "-keyout", key, "-out", csr)
            openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial", "-days", "2",
                    "-out", crt)
        der = subprocess.run(["openssl", "x509", "-in", crt, "-outform", "DER"], check=True,
                             capture_output=True).stdout
        return crt, key, hashlib.sha256(der).hexdigest()

    def test_a_mapped_client_certificate_is_an_identity(self):
        ca = self.client_cert("client-ca")
        crt, key, fp = self.client_cert("bob-device", ca=ca[:2])
        other_crt, other_key, _ = self.client_cert("stranger", ca=ca[:2])
        rogue = self.client_cert("rogue-ca")
        rogue_crt, rogue_key, _ = self.client_cert("rogue-device", ca=rogue[:2])
        self.sandbox.write("directory", DIRECTORY.replace("user bob@example.com", "user bob@example.com cert=" + fp))
        self.start("--client-ca", ca[0])

        def with_cert(c, k, body, token=None):
            ctx = ssl.create_default_context(cafile=self.cert)
            ctx.load_cert_chain(c, k)
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=20)
            return self.request("POST", "/v1/deposit", body, token, conn=conn)

        r, data = with_cert(crt, key, message(sender="bob@example.com", to="x@elsewhere.example"))
        self.assertEqual(r.status, 303, data)
        [delivered] = self.sink.wait_messages(1)
        unfolded = delivered.replace("\n\t", " ").replace("\r", "")
        self.assertIn("login=bob@example.com", unfolded)
        self.assertIn(fp, unfolded.lower().replace(":", ""), "the certificate's fingerprint in tls=")
        # a certificate of the CA that no user has: no identity
        r, data = with_cert(other_crt, other_key, message(sender="bob@example.com"))
        self.assertEqual((r.status, json.loads(data)["reason"]), (401, "missing_token"))
        # a token still wins over a certificate
        r, data = with_cert(crt, key, message(sender="bob@example.com"), token=self.token())
        self.assertEqual((r.status, json.loads(data)["reason"]), (403, "sender_not_allowed"))
        # a certificate of another CA: no TLS session at all
        with self.assertRaises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            with_cert(rogue_crt, rogue_key, message(sender="bob@example.com"))
        # without any certificate the token path works as before
        r, data = self.deposit(message())
        self.assertEqual(r.status, 303, data)

    def test_sighup_reloads_the_receipt_key_and_keeps_a_broken_key_ring_out(self):
        self.start()
        _, before = self.request("GET", "/.well-known/dmail/receipt-keys")
        openssl("genpkey", "-algorithm", "ED25519", "-out", self.receipt_key + ".new")
        os.chmod(self.receipt_key + ".new", 0o600)
        os.replace(self.receipt_key + ".new", self.receipt_key)
        with open(self.keyring, "w") as f:
            f.write("broken line\n")
        proc = self.procs.entries[-1].popen
        proc.send_signal(signal.SIGHUP)
        harness.wait_for_log(self.log, r"event=reload result=failed")
        self.assertIn("--keyring", harness.read_text(self.log))
        _, after = self.request("GET", "/.well-known/dmail/receipt-keys")
        self.assertNotEqual(json.loads(before)["keys"][0]["x"], json.loads(after)["keys"][0]["x"])
        # the key ring in force stays: deposits are still signed and delivered
        r, data = self.deposit(message())
        self.assertEqual(r.status, 303, data)
        [delivered] = self.sink.wait_messages(1)
        self.assertIn("kid=k1", delivered.replace("\n\t", " "))

    def test_oversized_header_and_target(self):
        self.start()
        r, data = self.request("GET", "/.well-known/dmail/receipt-keys", headers={"X-Big": "x" * 20000})
        self.assertEqual((r.status, json.loads(data)["reason"]), (431, "header_too_large"))
        r, data = self.request("GET", "/v1/receipts/" + "a" * 9000)
        self.assertEqual((r.status, json.loads(data)["reason"]), (414, "uri_too_long"))

    def test_a_stalled_request_gets_408(self):
        self.start("--header-timeout", "2")
        ctx = ssl.create_default_context(cafile=self.cert)
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"POST /v1/deposit HTTP/1.1\r\nHost: x\r\n")
                started = time.monotonic()
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                self.assertTrue(data.startswith(b"HTTP/1.1 408"), data[:100])
                self.assertLess(time.monotonic() - started, 6)


if __name__ == "__main__":
    harness.main()
