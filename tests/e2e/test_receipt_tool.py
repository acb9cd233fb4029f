"""xproxy-wire receipt-sign / receipt-verify: deposit receipts with keys made by openssl,
checked against PyJWT (python3-jwt) in both directions.

A receipt signed with an Ed25519 or a P-256 key verifies against the message and the
public key, and PyJWT verifies its signature too (the JWS is standard); a receipt PyJWT
signs in the documented format verifies with receipt-verify. One changed byte of the
message, another key, a receipt edited by hand, alg none and a token in place of a
receipt are refused (exit 1, result=refused and the reason); a group-readable private
key, a missing option or an unknown one are usage errors (exit 2)."""

import base64
import hashlib
import json
import os
import subprocess

import jwt

from harness import E2ETestCase, main, parse_kv, wire

MESSAGE = b"From: a@example.org\r\nTo: bob@example.org\r\nSubject: receipt\r\n\r\nhello\r\n"


def read(path):
    with open(path) as f:
        return f.read()


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class ReceiptTool(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.dir = self.sandbox.mkdir("keys", mode=0o700)
        self.msg = self.sandbox.write("msg.eml", MESSAGE)
        self.keys = {}
        for name, args in (("ed", ["-algorithm", "ED25519"]),
                           ("ec", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])):
            key = os.path.join(self.dir, name + ".key")
            pub = os.path.join(self.dir, name + ".pub")
            subprocess.run(["openssl", "genpkey"] + args + ["-out", key], check=True, capture_output=True)
            os.chmod(key, 0o600)
            subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-out", pub], check=True, capture_output=True)
            self.keys[name] = (key, pub)

    def sign(self, name, message=None, extra=()):
        rc, out, err = wire(["receipt-sign", "--key", self.keys[name][0], "--kid", "r2027", "--message",
                             message or self.msg, "--rcpt", "bob@example.org", "--rcpt", "carol@example.org",
                             "--queue-id", "4Xk2Lp0Zz1", "--issuer", "mx.example.org", "--time", "1800000000"]
                            + list(extra))
        self.assertEqual(rc, 0, err)
        return out.decode().strip()

    def verify(self, name, receipt, message=None):
        return wire(["receipt-verify", "--key", self.keys[name][1], "--message", message or self.msg],
                    stdin=receipt.encode())

    def test_sign_and_verify_both_algorithms(self):
        for name, alg in (("ed", "EdDSA"), ("ec", "ES256")):
            receipt = self.sign(name)
            rc, out, err = self.verify(name, receipt)
            self.assertEqual(rc, 0, out + err.encode())
            kv = parse_kv(out)
            self.assertEqual(kv["result"], "ok")
            self.assertEqual(kv["alg"], alg)
            self.assertEqual(kv["kid"], "r2027")
            self.assertEqual(kv["iss"], "mx.example.org")
            self.assertEqual(kv["iat"], "1800000000")
            self.assertEqual(kv["queue_id"], "4Xk2Lp0Zz1")
            self.assertEqual(kv["rcpt*"], ["bob@example.org", "carol@example.org"])
            self.assertEqual(kv["sha256"], b64u(hashlib.sha256(MESSAGE).digest()))
            # the receipt as an argument instead of stdin
            rc, out, _ = wire(["receipt-verify", "--key", self.keys[name][1], "--message", self.msg, receipt])
            self.assertEqual(rc, 0)
            # PyJWT reads it as a standard JWS with the documented header and payload
            pub = read(self.keys[name][1])
            self.assertEqual(jwt.get_unverified_header(receipt),
                             {"alg": alg, "kid": "r2027", "typ": "xproxy-receipt+jws"})
            payload = json.loads(jwt.api_jws.decode(receipt, pub, algorithms=[alg]))
            self.assertEqual(payload["typ"], "xproxy-receipt")
            self.assertEqual(payload["rcpt"], ["bob@example.org", "carol@example.org"])

    def test_pyjwt_receipt_verifies(self):
        payload = {"typ": "xproxy-receipt", "iss": "mx.example.org", "iat": 1800000000,
                   "sha256": b64u(hashlib.sha256(MESSAGE).digest()), "rcpt": ["bob@example.org"],
                   "queue_id": "Q1"}
        for name, alg in (("ed", "EdDSA"), ("ec", "ES256")):
            token = jwt.api_jws.encode(json.dumps(payload).encode(), read(self.keys[name][0]),
                                       algorithm=alg, headers={"kid": "k1", "typ": "xproxy-receipt+jws"})
            rc, out, err = self.verify(name, token)
            self.assertEqual(rc, 0, out + err.encode())
            self.assertEqual(parse_kv(out)["queue_id"], "Q1")

    def test_refusals(self):
        receipt = self.sign("ed")
        changed = self.sandbox.write("changed.eml", MESSAGE.replace(b"hello", b"hellO"))
        h, p, s = receipt.split(".")
        payload = json.loads(base64.urlsafe_b64decode(p + "=="))
        payload["rcpt"].append("mallory@example.org")
        edited = ".".join([h, b64u(json.dumps(payload).encode()), s])
        none = ".".join([b64u(b'{"alg":"none","typ":"xproxy-receipt+jws"}'), p, ""])
        token = jwt.encode({"iss": "x", "sha256": payload["sha256"]}, read(self.keys["ed"][0]),
                           algorithm="EdDSA")
        cases = [
            ("changed message", "ed", receipt, changed, "wrong_message"),
            ("other key, other type", "ec", receipt, None, "alg_not_allowed"),
            ("edited recipients", "ed", edited, None, "bad_signature"),
            ("alg none", "ed", none, None, "alg_not_allowed"),
            ("a token is not a receipt", "ed", token, None, "malformed"),
            ("garbage", "ed", "not a receipt", None, "malformed"),
        ]
        for what, key, r, msg, reason in cases:
            rc, out, err = self.verify(key, r, msg)
            self.assertEqual(rc, 1, what)
            kv = parse_kv(out)
            self.assertEqual((kv["result"], kv["reason"]), ("refused", reason), what)
        # another Ed25519 key
        other = os.path.join(self.dir, "other.key")
        subprocess.run(["openssl", "genpkey", "-algorithm", "ED25519", "-out", other], check=True)
        other_pub = self.sandbox.write("other.pub", subprocess.run(
            ["openssl", "pkey", "-in", other, "-pubout"], check=True, capture_output=True).stdout)
        rc, out, _ = wire(["receipt-verify", "--key", other_pub, "--message", self.msg], stdin=receipt.encode())
        self.assertEqual((rc, parse_kv(out)["reason"]), (1, "bad_signature"))

    def test_usage_and_key_errors(self):
        key = self.keys["ed"][0]
        os.chmod(key, 0o640)
        rc, _, err = wire(["receipt-sign", "--key", key, "--kid", "k", "--message", self.msg, "--rcpt", "b@x",
                           "--queue-id", "Q", "--issuer", "mx"])
        self.assertEqual(rc, 2)
        self.assertIn("mode", err)
        os.chmod(key, 0o600)
        rc, _, err = wire(["receipt-sign", "--key", key, "--kid", "k", "--message", self.msg, "--queue-id", "Q",
                           "--issuer", "mx"])
        self.assertEqual(rc, 2)
        self.assertIn("--rcpt", err)
        rc, _, err = wire(["receipt-verify", "--key", self.keys["ed"][1], "--message", self.msg, "--bogus", "x"])
        self.assertEqual(rc, 2)
        rc, _, err = wire(["receipt-verify", "--key", self.keys["ed"][0], "--message", self.msg], stdin=b"x")
        self.assertEqual(rc, 2)  # a private key where the public key belongs
        self.assertIn("not a PEM public key", err)


if __name__ == "__main__":
    main()
