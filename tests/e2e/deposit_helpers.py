"""deposit_helpers: the parts around xproxy-depositd for its end-to-end tests and its
benchmark (not a test itself).

  SigningKeys       the identity provider's own RS256, ES256 and Ed25519 keys (made with
                    python3-cryptography), their JWK Set, tokens minted with PyJWT, and the
                    forged ones built by hand: alg none, HS256 keyed with the RSA public
                    key's PEM bytes (the algorithm confusion some libraries accept)
  IdentityProvider  an HTTPS server (ssl + http.server in a thread, 127.0.0.1, a
                    certificate for localhost from a TestPki) serving the OpenID discovery
                    document and the JWKS; counts the requests per path; publish() changes
                    the keys it serves (rotation)
  SwitchablePolicy  a Postfix policy service answering DUNNO, or DEFER while defer is set:
                    Postfix's own 4xx, switched at once without a reload
  DepositMta        the MTA behind the daemon: Dovecot (SASL, which XCLIENT LOGIN= needs),
                    a Postfix accepting XCLIENT from 127.0.0.0/8 (HomePostfix) and relaying
                    to an SmtpSink, asking SwitchablePolicy after the final dot
  deposit_directory() the directory file of the authorization rule's users
  https_request(), raw_exchange()   HTTPS clients: http.client on a fresh TLS connection
                    bound to a chosen 127.0.0.x, and a raw one whose bytes are sent from a
                    thread while the answer is read (for requests the server cuts short)

Use /usr/bin/python3 (python3-jwt and python3-cryptography are Debian's)."""

import base64
import collections
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import socket
import ssl
import subprocess
import threading
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from harness import CaptureServer, Dovecot, SmtpSink, free_port, wait_until
from xproxyd_helpers import HomePostfix

AUDIENCE = "xproxy-deposit"


def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_json(obj):
    return b64u(json.dumps(obj, separators=(",", ":")))


# ---------------------------------------------------------------- keys and tokens

class SigningKeys:
    """Private keys by kid, each bound to one algorithm (RS256, ES256 or EdDSA)."""

    _standard = None

    def __init__(self):
        self.keys = {}  # kid -> (alg, private key)

    @classmethod
    def standard(cls):
        """A new set holding rsa (RS256), ec (ES256) and ed (EdDSA): the same keys for every
        test of a process (an RSA key takes a second to make on a busy machine)."""
        if cls._standard is None:
            cls._standard = cls().add("rsa", "RS256").add("ec", "ES256").add("ed", "EdDSA")
        out = cls()
        out.keys = dict(cls._standard.keys)
        return out

    def add(self, kid, alg):
        if alg == "RS256":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "ES256":
            key = ec.generate_private_key(ec.SECP256R1())
        elif alg == "EdDSA":
            key = ed25519.Ed25519PrivateKey.generate()
        else:
            raise ValueError(alg)
        self.keys[kid] = (alg, key)
        return self

    def public_pem(self, kid):
        return self.keys[kid][1].public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo)

    def jwk(self, kid):
        alg, key = self.keys[kid]
        algo = jwt.algorithms.get_default_algorithms()[alg]
        out = algo.to_jwk(key.public_key())
        out = json.loads(out) if isinstance(out, str) else dict(out)
        out.pop("key_ops", None)
        out.update(kid=kid, alg=alg, use="sig")
        return out

    def jwks(self, kids=None):
        return {"keys": [self.jwk(k) for k in (kids if kids is not None else self.keys)]}

    def mint(self, kid, claims, header=None):
        """A token PyJWT signs with kid's key and algorithm."""
        alg, key = self.keys[kid]
        headers = {"kid": kid}
        headers.update(header or {})
        return jwt.encode(claims, key, algorithm=alg, headers=headers)

    def sign_with_other_key(self, kid, claims):
        """A token naming kid, signed by a fresh key of the same algorithm (a forgery)."""
        other = SigningKeys().add("x", self.keys[kid][0])
        return other.mint("x", claims, header={"kid": kid})


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def es256_idp_and_receipt_keys(sandbox, keydir):
    """With the openssl command: an identity provider's P-256 key (kid idp1) and its JWK
    Set file, and an Ed25519 receipt key (mode 0600) with its public half, in keydir.
    Returns (idp_key, jwks_path, receipt_key, receipt_pub)."""
    idp_key = os.path.join(keydir, "idp.key")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", idp_key)
    pub = subprocess.run(["openssl", "pkey", "-in", idp_key, "-pubout"], check=True,
                         capture_output=True).stdout.decode()
    algo = jwt.algorithms.get_default_algorithms()["ES256"]
    jwk = json.loads(algo.to_jwk(algo.prepare_key(pub)))
    jwk.update(kid="idp1", alg="ES256", use="sig")
    jwks = sandbox.write("jwks.json", json.dumps({"keys": [jwk]}))
    receipt_key = os.path.join(keydir, "receipt.key")
    openssl("genpkey", "-algorithm", "ED25519", "-out", receipt_key)
    os.chmod(receipt_key, 0o600)
    receipt_pub = os.path.join(keydir, "receipt.pub")
    openssl("pkey", "-in", receipt_key, "-pubout", "-out", receipt_pub)
    return idp_key, jwks, receipt_key, receipt_pub


def alg_none(claims, kid="rsa"):
    """An unsigned token (RFC 7519 section 6): header alg none, empty signature."""
    return "%s.%s." % (b64u_json({"alg": "none", "typ": "JWT", "kid": kid}), b64u_json(claims))


def hs256_with_public_key(claims, public_pem, kid="rsa"):
    """HS256 over the token, keyed with the RSA public key's PEM bytes: the verifier that
    takes its key's bytes as the HMAC secret for an alg the token chose accepts it."""
    signing_input = "%s.%s" % (b64u_json({"alg": "HS256", "typ": "JWT", "kid": kid}), b64u_json(claims))
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64u(mac)


# ---------------------------------------------------------------- the identity provider

class IdentityProvider:
    """An OpenID provider's key publication over HTTPS on 127.0.0.1:port, named
    https://localhost:port (the issuer; its certificate from `pki`, for localhost and
    127.0.0.1).

      /.well-known/openid-configuration   {"issuer": ISSUER, "jwks_uri": ISSUER/jwks.json, ...}
      /jwks.json                           the published keys' JWK Set

    hits[path]: requests per path so far. publish(kids): serve only these keys from now.
    token(identity, kid, **claims): a token with the standard claims of this issuer
    (email, email_verified true, aud, iat, nbf, exp in an hour), overridden by `claims`
    (a value None drops the claim)."""

    def __init__(self, pki, keys=None, audience=AUDIENCE, host="localhost"):
        self.keys = keys or SigningKeys.standard()
        self.audience = audience
        self.cert, self.key = pki.issue("idp", dns=["localhost"], ips=["127.0.0.1"])
        self.ca = pki.ca
        self.port = free_port()
        self.issuer = "https://%s:%d" % (host, self.port)
        self.discovery_url = self.issuer + "/.well-known/openid-configuration"
        self.jwks_uri = self.issuer + "/jwks.json"
        self.hits = collections.Counter()
        self.lock = threading.Lock()
        self.published = list(self.keys.keys)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        provider = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                path = self.path.split("?", 1)[0]
                with provider.lock:
                    provider.hits[path] += 1
                    kids = list(provider.published)
                if path == "/.well-known/openid-configuration":
                    body = {"issuer": provider.issuer, "jwks_uri": provider.jwks_uri,
                            "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
                            "response_types_supported": ["code"], "subject_types_supported": ["public"]}
                elif path == "/jwks.json":
                    body = provider.keys.jwks(kids)
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, client_address: None  # a refused handshake: not news
        # The handshake in the handler's thread, not in the accepting one.
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True, do_handshake_on_connect=False)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def publish(self, kids):
        with self.lock:
            self.published = list(kids)

    def count(self, path):
        with self.lock:
            return self.hits[path]

    def jwks_fetches(self):
        return self.count("/jwks.json")

    def claims(self, identity, **over):
        now = int(time.time())
        c = {"iss": self.issuer, "aud": self.audience, "sub": "sub-" + identity, "email": identity,
             "email_verified": True, "iat": now, "nbf": now - 5, "exp": now + 3600}
        for k, v in over.items():
            if v is None:
                c.pop(k, None)
            else:
                c[k] = v
        return c

    def token(self, identity, kid="rsa", **over):
        return self.keys.mint(kid, self.claims(identity, **over))

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- the MTA behind the daemon

class SwitchablePolicy:
    """A Postfix policy service (SMTPD access policy delegation) on 127.0.0.1: answers
    DUNNO, or `DEFER_IF_PERMIT` text while `defer` is true (Postfix then answers 450 4.7.1).
    Every request is recorded (requests())."""

    def __init__(self):
        self.defer = False
        self.answered = {}
        self.cap = CaptureServer(respond=self._respond)
        self.port = self.cap.port

    def _respond(self, idx, data):
        complete = data.count(b"\n\n")
        todo = complete - self.answered.get(idx, 0)
        self.answered[idx] = complete
        action = "DEFER_IF_PERMIT deposit test: try again later" if self.defer else "DUNNO"
        return ("action=%s\n\n" % action).encode() * todo if todo > 0 else None

    def close(self):
        self.cap.close()


class DepositMta:
    """The MTA xproxy-depositd injects into: a Postfix (xproxyd_helpers.HomePostfix) whose
    plain listener `port` takes XCLIENT from 127.0.0.0/8 (LOGIN= authenticates the session,
    so SASL is on, with `dovecot`) and relays authenticated mail to `sink` (an SmtpSink,
    or sink_port: a benchmark's own). After the final dot it asks `policy` (a
    SwitchablePolicy): policy.defer = True makes Postfix answer 450 and queue nothing.
    users: {login: password} for Dovecot (the benchmark's SMTP AUTH reference); pki: the
    TestPki of its certificate (a new one when not given);
    submission=True: also a STARTTLS + AUTH listener (submission_port)."""

    def __init__(self, sandbox, procs, users=None, submission=False, sink_port=None, main_cf=None, name="mta",
                 pki=None):
        self.sandbox = sandbox
        self.policy = SwitchablePolicy()
        self.sink = None
        if sink_port is None:
            self.sink = SmtpSink(sandbox, procs, name=name + "-sink")
            sink_port = self.sink.port
        self.dovecot = Dovecot(sandbox, procs, users=users or {"nobody@example.com": "unused-secret"},
                               name=name + "-dovecot")
        cfg = {"smtpd_end_of_data_restrictions": "check_policy_service inet:127.0.0.1:%d" % self.policy.port,
               "smtpd_sasl_authenticated_header": "yes"}
        cfg.update(main_cf or {})
        self.home = HomePostfix(sandbox, procs, sink_port, self.dovecot, pki=pki, name=name,
                                xclient_hosts="127.0.0.0/8", main_cf=cfg, submission=submission)
        self.pf = self.home.pf
        self.port = self.home.port
        self.submission_port = self.home.submission_port

    def queued(self):
        """Messages in the Postfix queue now (postqueue -j: one JSON object a message)."""
        r = subprocess.run(["postqueue", "-c", self.pf.conf, "-j"], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("postqueue -j failed: %s" % r.stderr)
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    def close(self):
        self.policy.close()


def deposit_directory(sandbox, extra=""):
    """The directory of the authorization rule: example.com is hosted, with alice, bob
    (recipients), carol and dave (the limits' identities) and sales@, which alice may
    send as (login=); partner.example is not hosted: its users are outside identities."""
    text = ("domain example.com state=active services=smtp,submission\n"
            "user alice@example.com\n"
            "user bob@example.com\n"
            "user carol@example.com\n"
            "user dave@example.com\n"
            "user erin@example.com\n"
            "user sales@example.com login=alice@example.com\n") + extra
    return sandbox.write("directory", text)


def message(sender, rcpt, subject, body="hello\r\n", mid=None, extra_headers=()):
    """An RFC 5322 message (CRLF), with a Message-ID (the trace header binds it)."""
    mid = mid or "<%s.%d@client.test>" % (re.sub(r"\W", "", subject), time.monotonic_ns())
    head = ["From: <%s>" % sender, "To: <%s>" % rcpt, "Subject: %s" % subject, "Message-ID: %s" % mid,
            "Date: Mon, 07 Dec 2026 10:00:00 +0000"] + list(extra_headers)
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode()


# ---------------------------------------------------------------- HTTPS clients

class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body)

    @property
    def reason(self):
        try:
            return self.json().get("reason")
        except ValueError:
            return None

    def __repr__(self):
        return "<%d %s %r>" % (self.status, self.headers, self.body[:400])


def client_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    return ctx


def https_request(port, method, path, cafile, body=None, headers=None, token=None, source="127.0.0.1",
                  host="localhost", timeout=30, conn=None):
    """One request on a fresh TLS connection (or on `conn`, kept alive); returns Response."""
    own = conn is None
    if own:
        conn = http.client.HTTPSConnection(host, port, context=client_context(cafile), timeout=timeout,
                                           source_address=(source, 0))
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = "Bearer " + token
    if body is not None:
        h.setdefault("Content-Type", "message/rfc822")
    try:
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        out = Response(r.status, r.getheaders(), r.read())
    finally:
        if own:
            conn.close()
    return out


def deposit(port, cafile, token, msg, query="", **kw):
    return https_request(port, "POST", "/v1/deposit" + query, cafile, body=msg, token=token, **kw)


def raw_exchange(port, cafile, data, source="127.0.0.1", timeout=30, stall=False):
    """Opens a TLS connection from `source`, sends `data` from a thread (the server may
    answer before it read everything) and reads the answer until the server closes or a
    whole response arrived. stall=True: after sending, keep the connection open without
    sending more. Returns (Response or None when the server closed without answering,
    seconds until the answer or the close)."""
    ctx = client_context(cafile)
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    t0 = time.monotonic()

    def send():
        try:
            s.sendall(data)
        except (OSError, ValueError):
            pass
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    buf = b""
    try:
        while True:
            resp = _parse_response(buf)
            if resp:
                return resp, time.monotonic() - t0
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                chunk = b""
            if not chunk:
                return _parse_response(buf, eof=True), time.monotonic() - t0
            buf += chunk
    finally:
        try:
            s.close()
        except OSError:
            pass


def _parse_response(buf, eof=False):
    head, sep, rest = buf.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
    if not m:
        return None
    headers = [tuple(x.strip() for x in l.split(":", 1)) for l in lines[1:] if ":" in l]
    length = next((int(v) for k, v in headers if k.lower() == "content-length"), None)
    if length is not None and len(rest) >= length:
        return Response(int(m.group(1)), headers, rest[:length])
    if eof:
        return Response(int(m.group(1)), headers, rest)
    return None


class SlowClient:
    """A TLS client that sends `data` (part of a request) and then nothing, holding the
    connection open: closed_after() tells when the server gave up on it, and with what."""

    def __init__(self, port, cafile, data, source="127.0.0.1", handshake=True):
        self.raw = socket.create_connection(("127.0.0.1", port), timeout=60, source_address=(source, 0))
        self.t0 = time.monotonic()
        self.sock = client_context(cafile).wrap_socket(self.raw, server_hostname="localhost") if handshake else self.raw
        if data:
            self.sock.sendall(data)
        self.result = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except (OSError, ssl.SSLError):
                chunk = b""
            if not chunk:
                break
            buf += chunk
        self.result = (_parse_response(buf, eof=True), time.monotonic() - self.t0)

    def wait_closed(self, timeout):
        """(Response or None, seconds from the connect to the server's close)."""
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise TimeoutError("the server did not close a stalled connection within %.0f s" % timeout)
        return self.result

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def headers_of(msg):
    """The header section of a dumped message (unfolded lines kept folded)."""
    return msg.replace("\r\n", "\n").split("\n\n", 1)[0]


def field(msg, name):
    """The fields called `name` (with their continuation lines), as in the message."""
    return re.findall(r"^%s:.*(?:\n[ \t].*)*" % re.escape(name), headers_of(msg), re.M | re.I)


def wait_quiet(pred, seconds):
    """True when pred() stays false for `seconds` (something that must not happen)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():
            return False
        time.sleep(0.05)
    return True


__all__ = ["AUDIENCE", "SigningKeys", "IdentityProvider", "SwitchablePolicy", "DepositMta", "deposit_directory",
           "message", "https_request", "deposit", "raw_exchange", "SlowClient", "alg_none", "hs256_with_public_key",
           "field", "headers_of", "wait_quiet", "wait_until", "b64u"]
