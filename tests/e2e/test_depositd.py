"""xproxy-depositd against real software on loopback (doc/deposit.md): curl and Python
clients deposit messages over HTTPS with tokens of a local identity provider (its keys
fetched by the daemon through OpenID discovery over HTTPS), the daemon injects them into
a real Postfix with XCLIENT, Postfix relays to smtp-sink, and the clients fetch signed
receipts.

    curl / http.client --HTTPS, Bearer--> xproxy-depositd --SMTP+XCLIENT--> Postfix --> smtp-sink
                                              |  JWKS (discovery, HTTPS)
                                              v
                                     identity provider (Python)

1. test_deposit_delivers: curl from 127.0.0.5 deposits, follows the 303 and saves the
   receipt; the message arrives with a signed X-Original-Source that verifies (client
   127.0.0.5, login = the identity); Postfix logs the client 127.0.0.5 and
   sasl_username; the receipt verifies against the message bytes and not against one
   changed byte. ES256 and EdDSA tokens deposit too; another identity gets 404 for the
   receipt; the receipt keys are published.
2. test_token_refusals: expired, wrong audience, wrong issuer, alg none, HS256 keyed with
   the RSA public key, a signature by another key, no token, an unverified e-mail, and
   an unknown kid (exactly one more JWKS fetch, then 401, and no fetch for the next
   one): each 401 with its reason and WWW-Authenticate; nothing reaches Postfix; the
   token never appears in the log.
   test_key_rotation: a key published later is fetched on its first token.
3. test_sender_and_recipient_refusals: From: or the envelope sender someone else: 403
   sender_not_allowed; a recipient not hosted, for an identity that is not a hosted
   user: 403 recipient_not_hosted; Sender: or Resent-From: someone else: 403
   sender_not_allowed; a From: smuggled behind a bare CR, a forged X-Original-Source or
   X-Original-Source-Result: 400 bad_request; a token identity that is not a plain
   address: 401 no_identity; nothing of these reaches Postfix; what the rule allows (a login= address, a hosted
   user relaying, an outside identity writing to a hosted recipient) is delivered.
4. test_tempfail_and_idempotent_retry: Postfix answers 4xx to the final dot: 503 with
   Retry-After, nothing queued; after it recovers the retry with the same
   Idempotency-Key delivers once; a third POST returns the same receipt without a
   connection to Postfix; the key with another message, other recipients or another
   sender is 422.
5. test_limits: 413 for an oversize message, 431 for a huge header, slow clients (half a
   header, no TLS handshake, half a body) timed out with 408 while another client is
   served at once, 429 over the rate limit (an identity counted as one however its
   token spells its case).
6. test_connection_limits: 40 idle sockets from one address leave 4 open and a deposit
   from another address is served at once; with every connection slot held by idle
   sockets a deposit still goes through (the longest idle one is closed); one log line
   per burst."""

import hashlib
import re
import socket
import subprocess
import time

from deposit_helpers import (AUDIENCE, DepositMta, IdentityProvider, SigningKeys, SlowClient, alg_none, b64u,
                             deposit, deposit_directory, field, hs256_with_public_key, https_request, message,
                             raw_exchange, wait_quiet)
from harness import Depositd, E2ETestCase, main, parse_kv, read_text, wait_until, wire
from xproxyd_helpers import TestPki, tool

RECEIPT_PATH = re.compile(r"^/v1/receipts/[A-Za-z0-9_-]{22}$")
MIN_INTERVAL = 2  # --jwks-refresh-min-interval of the tests


class Deposit(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.pki = TestPki(self.sandbox)
        self.cert, self.key = self.pki.issue("depositd", dns=["localhost"], ips=["127.0.0.1"])
        self.idp = IdentityProvider(self.pki)
        self.addCleanup(self.idp.close)
        self.mta = DepositMta(self.sandbox, self.procs, pki=self.pki)
        self.addCleanup(self.mta.close)
        self.sink = self.mta.sink
        self.directory = deposit_directory(self.sandbox)

    def depositd(self, extra=()):
        self.d = Depositd(self.sandbox, self.procs, self.mta.port, self.cert, self.key, self.idp.issuer,
                          self.directory, audience=AUDIENCE, jwks_ca=self.pki.ca,
                          extra=["--jwks-refresh-min-interval", str(MIN_INTERVAL)] + list(extra))
        self.port = self.d.port
        return self.d

    def post(self, token, msg, query="", headers=None, source="127.0.0.1"):
        return deposit(self.port, self.pki.ca, token, msg, query=query, headers=headers, source=source)

    def get(self, path, token=None):
        return https_request(self.port, "GET", path, self.pki.ca, token=token)

    def assert_deposited(self, r):
        self.assertEqual(r.status, 303, r)
        self.assertRegex(r.header("Location"), RECEIPT_PATH)
        return r.header("Location")

    def assert_problem(self, r, status, reason):
        self.assertEqual((r.status, r.reason), (status, reason), r)
        self.assertEqual(r.header("Content-Type").split(";")[0], "application/problem+json", r)
        self.assertEqual(r.json()["status"], status)

    def save(self, name, data):
        return self.sandbox.write(name, data)

    # 1.
    def test_deposit_delivers(self):
        d = self.depositd()
        msg = message("alice@example.com", "bob@example.com", "curl deposit", body="hello from curl\r\n.dot\r\n")
        mid = re.search(rb"Message-ID: (\S+)", msg).group(1).decode()
        path = self.save("curl.eml", msg)
        token = self.idp.token("alice@example.com", kid="rsa")
        receipt_path, head_path = self.sandbox.path("receipt.jws"), self.sandbox.path("curl.headers")
        r = subprocess.run([tool("curl"), "-sS", "--cacert", self.pki.ca, "--interface", "127.0.0.5", "-L",
                            "-o", receipt_path, "-D", head_path, "-w", "%{http_code} %{num_redirects}",
                            "-H", "Authorization: Bearer " + token, "-H", "Content-Type: message/rfc822",
                            "--data-binary", "@" + path, "https://localhost:%d/v1/deposit" % self.port],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual((r.returncode, r.stdout), (0, "200 1"), r.stderr + read_text(head_path))
        heads = read_text(head_path)
        self.assertRegex(heads, r"^HTTP/1\.1 303 ")
        location = re.search(r"^location: (\S+)", heads, re.M | re.I).group(1)
        self.assertRegex(location, RECEIPT_PATH)
        self.assertRegex(heads, r"(?im)^content-type: application/jose\s*$")
        with open(receipt_path, "rb") as f:
            receipt = f.read().strip()

        # At the sink: the message with the signed trace header naming curl's address.
        got = self.sink.wait_messages(1)[0]
        self.assertIn("Subject: curl deposit", got)
        self.assertIn("hello from curl\n.dot", got.replace("\r\n", "\n"))
        trace = field(got, "X-Original-Source")
        self.assertEqual(len(trace), 1, got)
        rc, out, err = wire(["trace-verify", "--keyring", d.ring, "--sender", "alice@example.com", "--message-id",
                             mid], trace[0].encode())
        kv = parse_kv(out)
        self.assertEqual((rc, kv.get("result")), (0, "ok"), out.decode() + err)
        self.assertEqual((kv["ip"], kv["login"], kv["by"], kv["proto"]),
                         ("127.0.0.5", "alice@example.com", d.server_name, "HTTPS"))
        self.assertTrue(kv["tls_version"].startswith("TLSv1."), out)
        rc, out, _ = wire(["trace-verify", "--keyring", d.ring, "--sender", "mallory@example.com", "--message-id",
                           mid], trace[0].encode())
        self.assertEqual(rc, 1, out)
        # Postfix saw curl's address as the client and the identity as the SASL login.
        m = self.mta.pf.wait_log(r"(\w+): client=\S*\[127\.0\.0\.5\]:\d+.*sasl_username=alice@example\.com")
        queue_id = m.group(1)

        # The receipt: the message's bytes, the recipient, Postfix's queue id, our name.
        rc, out, err = wire(["receipt-verify", "--key", d.receipt_pub, "--message", path], receipt)
        kv = parse_kv(out)
        self.assertEqual((rc, kv.get("result")), (0, "ok"), out.decode() + err)
        self.assertEqual(kv["sha256"], b64u(hashlib.sha256(msg).digest()))
        self.assertEqual((kv["rcpt"], kv["queue_id"], kv["iss"], kv["kid"]),
                         ("bob@example.com", queue_id, d.server_name, d.receipt_kid))
        changed = bytearray(msg)
        changed[msg.index(b"hello")] ^= 0x20
        rc, out, _ = wire(["receipt-verify", "--key", d.receipt_pub, "--message",
                           self.save("changed.eml", bytes(changed))], receipt)
        self.assertEqual((rc, parse_kv(out).get("reason")), (1, "wrong_message"), out)

        # The receipt is the depositor's: another identity gets 404, as an unknown ID does.
        self.assertEqual(self.get(location, self.idp.token("alice@example.com")).body.strip(), receipt)
        self.assertEqual(self.get(location, self.idp.token("bob@example.com")).status, 404)
        self.assertEqual(self.get("/v1/receipts/" + "A" * 22, self.idp.token("alice@example.com")).status, 404)
        keys = self.get("/.well-known/dmail/receipt-keys")
        self.assertEqual(keys.status, 200, keys)
        self.assertEqual([k.get("kid") for k in keys.json()["keys"]], [d.receipt_kid])

        # The other algorithms, from other addresses.
        for kid, source in (("ec", "127.0.0.6"), ("ed", "127.0.0.7")):
            r = self.post(self.idp.token("alice@example.com", kid=kid),
                          message("alice@example.com", "bob@example.com", "by " + kid), source=source)
            self.assert_deposited(r)
            self.mta.pf.wait_log(r"client=\S*\[%s\]:\d+.*sasl_username=alice@example\.com" % re.escape(source))
        self.assertEqual(len(self.sink.wait_messages(3)), 3)

    # 2.
    def test_token_refusals(self):
        d = self.depositd()
        wait_until(lambda: self.idp.jwks_fetches() >= 1, 10, what="the daemon's first JWKS fetch")
        mark = self.mta.pf.log_mark()
        idp, who = self.idp, "alice@example.com"
        msg = message(who, "bob@example.com", "refused")
        pub = idp.keys.public_pem("rsa")
        cases = [
            ("expired", idp.token(who, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200,
                                  nbf=int(time.time()) - 7200), "expired"),
            ("wrong audience", idp.token(who, aud="another-service"), "wrong_audience"),
            ("wrong issuer", idp.token(who, iss="https://evil.test"), "wrong_issuer"),
            ("alg none", alg_none(idp.claims(who)), "alg_not_allowed"),
            ("HS256 keyed with the RSA public key", hs256_with_public_key(idp.claims(who), pub), "alg_not_allowed"),
            ("signed by another key", idp.keys.sign_with_other_key("ec", idp.claims(who)), "bad_signature"),
            ("e-mail not verified", idp.token(who, email_verified=False), "unverified_email"),
            ("no token", None, "missing_token"),
        ]
        tokens = []
        for what, token, reason in cases:
            r = self.post(token, msg)
            with self.subTest(what):
                self.assert_problem(r, 401, reason)
                auth = r.header("WWW-Authenticate") or ""
                self.assertTrue(auth.startswith("Bearer "), r)
                if token is not None:
                    self.assertIn('error="invalid_token"', auth)
            if token:
                tokens.append(token)
        # Unknown kid: the daemon fetches the JWK set once more (the refresh interval has
        # passed), still does not know the key: 401; the next one is refused with no fetch.
        ghost = SigningKeys().add("ghost", "ES256")
        ghost_token = ghost.mint("ghost", idp.claims(who))
        tokens.append(ghost_token)
        time.sleep(MIN_INTERVAL + 0.5)
        before = idp.jwks_fetches()
        self.assert_problem(self.post(ghost_token, msg), 401, "unknown_kid")
        self.assertEqual(idp.jwks_fetches(), before + 1)
        self.assert_problem(self.post(ghost_token, msg), 401, "unknown_kid")
        self.assertEqual(idp.jwks_fetches(), before + 1, "a second unknown kid within the interval fetches nothing")
        # Nothing was sent: no connection reached Postfix, nothing at the sink.
        self.assertNotIn("connect from", self.mta.pf.log()[mark:])
        self.assertEqual(self.sink.messages(), [])
        # The same daemon takes a good token (the refusals were the tokens' doing).
        self.assert_deposited(self.post(idp.token(who), message(who, "bob@example.com", "accepted")))
        self.assertEqual(len(self.sink.wait_messages(1)), 1)
        log = d.log()
        for t in tokens:
            self.assertNotIn(t, log)
            signature = t.split(".")[2]
            if signature:
                self.assertNotIn(signature, log)

    def test_key_rotation(self):
        self.depositd()
        wait_until(lambda: self.idp.jwks_fetches() >= 1, 10, what="the daemon's first JWKS fetch")
        self.idp.keys.add("ed2", "EdDSA")
        self.idp.publish(["ed2"])
        time.sleep(MIN_INTERVAL + 0.5)
        before = self.idp.jwks_fetches()
        r = self.post(self.idp.token("alice@example.com", kid="ed2"),
                      message("alice@example.com", "bob@example.com", "rotated"))
        self.assert_deposited(r)
        self.assertEqual(self.idp.jwks_fetches(), before + 1)
        # The withdrawn key is gone with the refresh.
        r = self.post(self.idp.token("alice@example.com", kid="rsa"),
                      message("alice@example.com", "bob@example.com", "withdrawn"))
        self.assert_problem(r, 401, "unknown_kid")
        self.assertEqual(len(self.sink.wait_messages(1)), 1)

    # 3.
    def test_sender_and_recipient_refusals(self):
        self.depositd()
        alice = self.idp.token("alice@example.com")
        dora = self.idp.token("dora@partner.example")
        refused = [
            ("From: someone else", alice, message("bob@example.com", "erin@example.com", "r1"), "",
             "sender_not_allowed"),
            ("envelope sender someone else", alice, message("alice@example.com", "erin@example.com", "r2"),
             "?from=bob%40example.com", "sender_not_allowed"),
            ("outside identity, hosted From:", dora, message("alice@example.com", "bob@example.com", "r3"), "",
             "sender_not_allowed"),
            ("recipient not hosted", dora, message("dora@partner.example", "friend@elsewhere.example", "r4"), "",
             "recipient_not_hosted"),
            ("one of two recipients not hosted", dora, message("dora@partner.example", "bob@example.com", "r5"),
             "?rcpt=bob%40example.com&rcpt=friend%40elsewhere.example", "recipient_not_hosted"),
            ("Sender: someone else", dora, message("dora@partner.example", "bob@example.com", "r6",
                                                   extra_headers=["Sender: alice@example.com"]), "",
             "sender_not_allowed"),
            ("Resent-From: someone else", dora, message("dora@partner.example", "bob@example.com", "r7",
                                                        extra_headers=["Resent-From: Alice <alice@example.com>"]),
             "", "sender_not_allowed"),
        ]
        erin = self.idp.token("erin@example.com")
        malformed = [
            # A bare CR: a second From: the MTA would read as a field of its own.
            ("From: after a bare CR", erin,
             b"From: <erin@example.com>\r\nTo: <bob@example.com>\r\nSubject: hi\rFrom: Alice <alice@example.com>"
             b"\r\nMessage-ID: <cr1@client.test>\r\n\r\nbody\r\n", "bare CR"),
            ("From: in a comment split by bare CRs", erin,
             b"From: (\rFrom: alice@example.com\r)erin@example.com\r\nTo: <bob@example.com>\r\n"
             b"Subject: hi2\r\nMessage-ID: <cr2@client.test>\r\n\r\nbody\r\n", "bare CR"),
            ("a forged trace header", erin, message("erin@example.com", "bob@example.com", "forged", extra_headers=[
                "X-Original-Source: v=1; ip=10.9.9.9; login=alice@example.com"]), "X-Original-Source field"),
            ("a forged trace verdict", erin, message("erin@example.com", "bob@example.com", "forged2", extra_headers=[
                "X-Original-Source-Result: pass"]), "X-Original-Source-Result field"),
        ]
        mark = self.mta.pf.log_mark()
        for what, token, msg, query, reason in refused:
            with self.subTest(what):
                self.assert_problem(self.post(token, msg, query=query), 403, reason)
        for ident in ["<alice@example.com>", "@x.example:alice@example.com", '"alice"@example.com',
                      "alice@example.com.", "alice @example.com"]:
            with self.subTest(ident):
                r = self.post(self.idp.token(ident), message("alice@example.com", "bob@example.com", "id"))
                self.assert_problem(r, 401, "no_identity")
        for what, token, msg, detail in malformed:
            with self.subTest(what):
                r = self.post(token, msg)
                self.assert_problem(r, 400, "bad_request")
                self.assertIn(detail, r.json()["detail"])
        self.assertNotIn("connect from", self.mta.pf.log()[mark:])
        allowed = [
            ("a login= address", alice, message("sales@example.com", "bob@example.com", "a1"), ""),
            ("a hosted user relays", alice, message("alice@example.com", "friend@elsewhere.example", "a2"), ""),
            ("outside identity to a hosted recipient", dora, message("dora@partner.example", "bob@example.com",
                                                                     "a3"), ""),
            ("recipients from the query", alice, message("alice@example.com", "bob@example.com", "a4"),
             "?rcpt=erin%40example.com"),
        ]
        for what, token, msg, query in allowed:
            with self.subTest(what):
                self.assert_deposited(self.post(token, msg, query=query))
        got = self.sink.wait_messages(4)
        self.assertTrue(wait_quiet(lambda: len(self.sink.messages()) > 4, 1.0))
        subjects = sorted(re.search(r"^Subject: (\S+)", m, re.M).group(1) for m in got)
        self.assertEqual(subjects, ["a1", "a2", "a3", "a4"])
        a4 = next(m for m in got if "Subject: a4" in m)
        self.assertRegex(a4, r"X-Rcpt-Args: <?erin@example\.com>?")
        self.assertNotIn("bob@example.com>", re.search(r"^X-Rcpt-Args:.*$", a4, re.M).group(0))

    # 4.
    def test_tempfail_and_idempotent_retry(self):
        self.depositd()
        token = self.idp.token("alice@example.com")
        msg = message("alice@example.com", "bob@example.com", "retried")
        key = {"Idempotency-Key": "retry-7f3a-0001"}
        self.mta.policy.defer = True
        r = self.post(token, msg, headers=key, source="127.0.0.8")
        self.assert_problem(r, 503, "mta_tempfail")
        self.assertRegex(r.header("Retry-After") or "", r"^\d+$", r)
        self.mta.pf.wait_log(r"reject: END-OF-MESSAGE from \S*\[127\.0\.0\.8\]:\d+: 450 4\.7\.1")
        self.assertEqual(self.mta.queued(), [])
        self.assertEqual(self.sink.messages(), [])
        # Postfix recovers: the retry delivers.
        self.mta.policy.defer = False
        r = self.post(token, msg, headers=key, source="127.0.0.8")
        location = self.assert_deposited(r)
        self.assertEqual(len(self.sink.wait_messages(1)), 1)
        first = self.get(location, token)
        self.assertEqual(first.status, 200, first)
        # A third POST: the same receipt, and Postfix is not even asked.
        mark = self.mta.pf.log_mark()
        r = self.post(token, msg, headers=key, source="127.0.0.8")
        self.assertEqual(self.assert_deposited(r), location)
        self.assertEqual(self.get(location, token).body, first.body)
        # The key with another message is refused.
        other = message("alice@example.com", "bob@example.com", "not the same")
        self.assert_problem(self.post(token, other, headers=key), 422, "idempotency_key_reused")
        # The same message with the key but other recipients, or another sender: refused too.
        self.assert_problem(self.post(token, msg, query="?rcpt=erin%40example.com", headers=key), 422,
                            "idempotency_key_reused")
        self.assert_problem(self.post(token, msg, query="?from=sales%40example.com", headers=key), 422,
                            "idempotency_key_reused")
        self.assertTrue(wait_quiet(lambda: len(self.sink.messages()) > 1, 1.5), "delivered more than once")
        self.assertNotIn("connect from", self.mta.pf.log()[mark:])
        self.assertEqual(self.mta.queued(), [])

    # 5.
    def test_limits(self):
        d = self.depositd(["--max-message-size", "65536", "--rate-limit", "3", "--header-timeout", "3",
                           "--body-timeout", "3"])
        ca = self.pki.ca

        def request(token, body, extra=b"", length=None):
            head = ("POST /v1/deposit HTTP/1.1\r\nHost: localhost:%d\r\nAuthorization: Bearer %s\r\n"
                    "Content-Type: message/rfc822\r\nContent-Length: %d\r\n" % (
                        self.port, token, len(body) if length is None else length)).encode()
            return head + extra + b"\r\n" + body

        # Oversize message: 413 (the limit counts the message's bytes).
        carol = self.idp.token("carol@example.com")
        big = message("carol@example.com", "bob@example.com", "big", body="x" * 76 + "\r\n") + b"y" * 70000
        r, _ = raw_exchange(self.port, ca, request(carol, big))
        self.assertIsNotNone(r, "no answer to an oversize message")
        self.assert_problem(r, 413, "too_large")
        # A huge header field: 431.
        r, _ = raw_exchange(self.port, ca, request(carol, b"x", extra=b"X-Filler: " + b"a" * 100000 + b"\r\n"))
        self.assertIsNotNone(r, "no answer to a huge header")
        self.assert_problem(r, 431, "header_too_large")

        # Slow clients: half a header, no TLS handshake at all, half a body. Meanwhile
        # another client is served at once; then each slow one is timed out.
        erin = self.idp.token("erin@example.com")
        t0 = time.monotonic()
        slow = {
            "half a header": SlowClient(self.port, ca, b"POST /v1/deposit HTTP/1.1\r\nHost: localhost\r\nAuthor"),
            "no handshake": SlowClient(self.port, ca, b"", handshake=False),
            "half a body": SlowClient(self.port, ca, request(erin, b"From: <erin@example.com>\r\n", length=5000)),
        }
        for c in slow.values():
            self.addCleanup(c.close)
        r = self.post(erin, message("erin@example.com", "bob@example.com", "while others stall"))
        served = time.monotonic() - t0
        self.assert_deposited(r)
        self.assertTrue(all(c.result is None for c in slow.values()), "served only after a slow client left")
        self.assertLess(served, 3.0)
        for what, c in slow.items():
            with self.subTest(what):
                resp, secs = c.wait_closed(15)
                self.assertGreaterEqual(secs, 2.5, "%s: closed before its timeout" % what)
                self.assertLess(secs, 10.0)
                if what != "no handshake":
                    self.assertIsNotNone(resp, "%s: closed without an answer" % what)
                    self.assert_problem(resp, 408, "timeout")

        # The rate limit: 3 deposits per identity per minute, the 4th is 429; others go on.
        # One identity however its token spells it.
        dave = self.idp.token("dave@example.com")
        for i, spelled in enumerate(["dave@example.com", "DAVE@example.com", "Dave@Example.COM"]):
            self.assert_deposited(self.post(self.idp.token(spelled),
                                            message("dave@example.com", "bob@example.com", "rate%d" % i)))
        r = self.post(dave, message("dave@example.com", "bob@example.com", "rate3"))
        self.assert_problem(r, 429, "rate_limited")
        self.assertRegex(r.header("Retry-After") or "", r"^\d+$", r)
        self.assert_deposited(self.post(self.idp.token("alice@example.com"),
                                        message("alice@example.com", "bob@example.com", "another identity")))
        got = self.sink.wait_messages(5)
        self.assertTrue(wait_quiet(lambda: len(self.sink.messages()) > 5, 1.0))
        self.assertFalse(any(re.search(r"^Subject: (big|rate3)\b", m, re.M) for m in got))
        # Each breach has its log line.
        log = d.log()
        for word in ("too_large", "header_too_large", "timeout", "rate_limited"):
            self.assertIn(word, log)

    # 6.
    def test_connection_limits(self):
        d = self.depositd(["--max-connections", "12", "--max-connections-per-client", "4"])
        socks = []

        def idle(source, n):
            opened = []
            for _ in range(n):
                s = socket.create_connection(("127.0.0.1", self.port), timeout=5, source_address=(source, 0))
                self.addCleanup(s.close)
                opened.append(s)
            socks.extend(opened)
            return opened

        def closed_by_server(s):
            s.settimeout(0.3)
            try:
                return s.recv(1) == b""
            except socket.timeout:
                return False
            except OSError:
                return True

        # One address opens many idle sockets: only 4 stay open, another address deposits.
        flood = idle("127.0.0.2", 40)
        t0 = time.monotonic()
        self.assert_deposited(self.post(self.idp.token("alice@example.com"),
                                        message("alice@example.com", "bob@example.com", "beside a flood"),
                                        source="127.0.0.9"))
        self.assertLess(time.monotonic() - t0, 3.0)
        self.assertEqual(sum(not closed_by_server(s) for s in flood), 4)
        # Every slot taken by idle sockets of three addresses: a deposit evicts the oldest.
        idle("127.0.0.3", 4)
        idle("127.0.0.4", 4)
        self.assert_deposited(self.post(self.idp.token("erin@example.com"),
                                        message("erin@example.com", "bob@example.com", "when full"),
                                        source="127.0.0.9"))
        self.assertTrue(closed_by_server(flood[0]) or any(closed_by_server(s) for s in flood[:4]))
        log = d.log()
        self.assertEqual(log.count("limit=max-connections-per-client max=4"), 1, "one log line per burst")
        self.assertIn("limit_end limit=max-connections-per-client refused=36", log)
        self.assertIn("action=evict", log)
        self.assertEqual(len(self.sink.wait_messages(2)), 2)


if __name__ == "__main__":
    main()
