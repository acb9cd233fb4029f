"""The pieces the deposit daemon's tests and benchmark stand on (deposit_helpers.py),
checked without the daemon, so that a failure of test_depositd.py is the daemon's:

- The identity provider serves its discovery document and JWK Set over HTTPS with a
  certificate for localhost that verifies against the test CA; PyJWT's own JWKS client
  finds each key there and accepts the RS256, ES256 and EdDSA tokens minted for it; the
  requests are counted per path; after publish() the old key is gone from the set.
- The forged tokens are what their names say: PyJWT refuses the expired one, the wrong
  audience and issuer, the unsigned one and the one signed by another key; the HS256
  token's MAC is the HMAC-SHA256 of its signing input keyed with the RSA public PEM.
- The MTA: a session on its plain listener with XCLIENT ADDR= LOGIN= from 127.0.0.1 is
  logged as the forwarded client with sasl_username and relayed to the sink; with the
  policy's defer on, the final dot gets a 4xx and nothing is queued or delivered; off
  again, the next message goes through at once (no reload); with the sink stopped, an
  accepted message shows in the queue listing the tests use."""

import hashlib
import hmac
import json
import ssl
import urllib.request

import jwt

from deposit_helpers import (AUDIENCE, DepositMta, IdentityProvider, alg_none, b64u, hs256_with_public_key, message)
from harness import E2ETestCase, SmtpClient, main, wait_until
from xproxyd_helpers import TestPki


class DepositFixtures(E2ETestCase):
    def test_identity_provider_and_tokens(self):
        pki = TestPki(self.sandbox)
        idp = IdentityProvider(pki)
        self.addCleanup(idp.close)
        ctx = ssl.create_default_context(cafile=pki.ca)
        with urllib.request.urlopen(idp.discovery_url, context=ctx, timeout=10) as r:
            doc = json.load(r)
        self.assertEqual(doc["issuer"], idp.issuer)
        self.assertEqual(doc["jwks_uri"], idp.jwks_uri)
        self.assertTrue(idp.issuer.startswith("https://localhost:"))
        # An unknown CA is refused: the certificate really is checked.
        with self.assertRaises(Exception):
            urllib.request.urlopen(idp.discovery_url, context=ssl.create_default_context(), timeout=10)
        client = jwt.PyJWKClient(idp.jwks_uri, cache_keys=False)
        # PyJWKClient uses urllib with the default context: give it ours.
        client.fetch_data = lambda: json.load(urllib.request.urlopen(idp.jwks_uri, context=ctx, timeout=10))
        for kid, alg in (("rsa", "RS256"), ("ec", "ES256"), ("ed", "EdDSA")):
            tok = idp.token("alice@example.com", kid=kid)
            self.assertEqual(jwt.get_unverified_header(tok)["alg"], alg)
            key = client.get_signing_key_from_jwt(tok).key
            claims = jwt.decode(tok, key, algorithms=[alg], audience=AUDIENCE, issuer=idp.issuer)
            self.assertEqual((claims["email"], claims["email_verified"]), ("alice@example.com", True))
        self.assertEqual(idp.count("/.well-known/openid-configuration"), 1)
        self.assertEqual(idp.jwks_fetches(), 3)
        pub = idp.keys.public_pem("rsa")
        bad = {
            "expired": idp.token("alice@example.com", exp=1000, iat=900, nbf=900),
            "wrong aud": idp.token("alice@example.com", aud="someone-else"),
            "wrong iss": idp.token("alice@example.com", iss="https://evil.test"),
            "other key": idp.keys.sign_with_other_key("rsa", idp.claims("alice@example.com")),
        }
        for what, tok in bad.items():
            with self.assertRaises(jwt.InvalidTokenError, msg=what):
                jwt.decode(tok, pub, algorithms=["RS256"], audience=AUDIENCE, issuer=idp.issuer)
        none = alg_none(idp.claims("alice@example.com"))
        self.assertTrue(none.endswith("."))
        self.assertEqual(jwt.get_unverified_header(none)["alg"], "none")
        with self.assertRaises(jwt.InvalidTokenError):
            jwt.decode(none, pub, algorithms=["RS256"], audience=AUDIENCE)
        hs = hs256_with_public_key(idp.claims("alice@example.com"), pub)
        signing_input, _, mac = hs.rpartition(".")
        self.assertEqual(mac, b64u(hmac.new(pub, signing_input.encode(), hashlib.sha256).digest()))
        self.assertEqual(jwt.get_unverified_header(hs), {"alg": "HS256", "typ": "JWT", "kid": "rsa"})
        # Rotation: only the new key is published.
        idp.keys.add("ec2", "ES256")
        idp.publish(["ec2"])
        kids = [k.key_id for k in client.get_jwk_set().keys]
        self.assertEqual(kids, ["ec2"])

    def test_mta_xclient_login_and_switchable_defer(self):
        mta = DepositMta(self.sandbox, self.procs)
        self.addCleanup(mta.close)

        def inject(subject):
            with SmtpClient(mta.port, source="127.0.0.1") as c:
                c.ehlo("deposit.test.invalid")
                self.assertIn("XCLIENT", " ".join(c.extensions))
                code, text = c.cmd("XCLIENT ADDR=127.0.0.5 PORT=40404 NAME=[UNAVAILABLE] LOGIN=alice@example.com")
                self.assertEqual(code, 220, text)
                c.ehlo("client.test")
                self.assertEqual(c.cmd("MAIL FROM:<alice@example.com>")[0], 250)
                self.assertEqual(c.cmd("RCPT TO:<bob@example.com>")[0], 250)
                return c.data(message("alice@example.com", "bob@example.com", subject).decode())
        code, text = inject("first")
        self.assertEqual(code, 250, text)
        mta.pf.wait_log(r"client=\S*\[127\.0\.0\.5\]:40404.*sasl_username=alice@example\.com")
        self.assertEqual(len(mta.sink.wait_messages(1)), 1)
        mta.policy.defer = True
        code, text = inject("deferred")
        self.assertEqual(code // 100, 4, text)
        self.assertEqual(mta.queued(), [])
        mta.policy.defer = False
        code, text = inject("third")
        self.assertEqual(code, 250, text)
        msgs = mta.sink.wait_messages(2)
        self.assertFalse(any("Subject: deferred" in m for m in msgs))
        self.assertEqual(len(msgs), 2)
        # queued() sees what Postfix holds: with the sink gone, an accepted message stays.
        self.procs.stop(mta.sink.proc)
        self.assertEqual(inject("held")[0], 250)
        held = wait_until(mta.queued, 10, what="the held message in the queue")
        self.assertEqual([r["address"] for r in held[0]["recipients"]], ["bob@example.com"])


if __name__ == "__main__":
    main()
