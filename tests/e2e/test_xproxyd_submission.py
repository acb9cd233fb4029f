"""xproxyd's submission mode against real software on loopback: mail clients (swaks and a
scripted client) authenticate to xproxyd (587 with STARTTLS, 465 with implicit TLS); a
real Dovecot checks the passwords over its auth protocol; each user's mail goes to the
home MTA the directory names (two real Postfix instances, A and B) with XCLIENT LOGIN=
ADDR=, so that the home Postfix logs, its Received header and its policy service see the
user's login and the client's own address, never xproxyd's.

Users: alice (home A), bob (home B), carol (no home: her domain's default, A), dave (a
domain without a home: the listener's downstream, an smtp-sink)."""

import base64
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

from harness import (CaptureServer, Dovecot, E2ETestCase, SmtpClient, SmtpSink, binary, free_port, main,
                     policy_responder, split_requests, swaks, wait_for_port, wait_until)
from xproxyd_helpers import FakeDownstream, HomePostfix, TestPki, Xproxyd

USERS = {"alice@example.com": "alice-pw", "bob@example.com": "bob-pw", "carol@example.com": "carol-pw",
         "dave@other.example": "dave-pw", "erin@other.example": "erin-pw", "off@example.com": "off-pw",
         "stranger@nowhere.example": "stranger-pw"}


def b64(text):
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def in_parallel(fn, n):
    """fn(0) ... fn(n-1), each in its own thread, all started before any is waited for."""
    threads = [threading.Thread(target=fn, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)


def plain(user, password):
    return b64("\0%s\0%s" % (user, password))


class TlsClient(SmtpClient):
    """SmtpClient with STARTTLS (or TLS from the start) and AUTH."""

    def __init__(self, port, source="127.0.0.1", implicit=False, **kw):
        if implicit:
            super().__init__(port, source=source, read_greeting=False, **kw)
            self._wrap()
            self.greeting = self.reply()
        else:
            super().__init__(port, source=source, **kw)

    def _wrap(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock)
        self.file = self.sock.makefile("rb")

    def starttls(self):
        code, text = self.cmd("STARTTLS")
        assert code == 220, text
        self._wrap()

    def login(self, user, password, helo="client.example"):
        self.ehlo(helo)
        if "STARTTLS" in self.extensions:
            self.starttls()
            self.ehlo(helo)
        return self.cmd("AUTH PLAIN " + plain(user, password))


class Submission(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.dovecot = Dovecot(self.sandbox, self.procs, users=USERS)
        self.pki = pki = TestPki(self.sandbox)
        self.crt, self.key = pki.issue("xproxyd", dns=["xproxyd.test.invalid"], ips=["127.0.0.1"])
        self.policy = CaptureServer(respond=policy_responder("DUNNO"))
        self.addCleanup(self.policy.close)
        self.sink_a = SmtpSink(self.sandbox, self.procs, name="sink-a")
        self.sink_b = SmtpSink(self.sandbox, self.procs, name="sink-b")
        # The listener's downstream (the global default home): a scripted server whose
        # XCLIENT takes ADDR and PORT (smtp-sink's does not take PORT).
        self.default_home = FakeDownstream(ehlo=("PIPELINING", "8BITMIME", "XCLIENT NAME ADDR PORT PROTO HELO LOGIN"))
        self.addCleanup(self.default_home.close)
        self.pf_a = self.home("pfa", self.sink_a, policy=self.policy.port)
        self.pf_b = self.home("pfb", self.sink_b)
        self.dead_port = free_port()  # nothing listens there

    def home(self, name, sink, policy=None):
        """A home Postfix (XCLIENT from xproxyd, relaying authenticated mail only) with the
        authenticated sender in Received and, for A, a policy service that sees sasl_username."""
        restrictions = "permit_sasl_authenticated, reject"
        if policy:
            restrictions = "check_policy_service inet:127.0.0.1:%d, %s" % (policy, restrictions)
        return HomePostfix(self.sandbox, self.procs, sink.port, self.dovecot, pki=self.pki, name=name, main_cf={
            "smtpd_sasl_authenticated_header": "yes",
            "smtpd_relay_restrictions": restrictions,
        })

    def directory(self, mta_a=None, extra=""):
        mta_a = mta_a or "127.0.0.1:%d" % self.pf_a.port
        text = ("mta mta-a destinations=%s encoding=xclient\n"
                "mta mta-b destinations=127.0.0.1:%d\n"
                "domain example.com home=mta-a\n"
                "user alice@example.com home=mta-a alias=a.smith\n"
                "user bob@example.com home=mta-b\n"
                "user carol@example.com\n"
                "user off@example.com state=inactive\n"
                "domain other.example\n"
                "user dave@other.example\n" % (mta_a, self.pf_b.port)) + extra
        return self.sandbox.write("directory", text)

    def xproxyd(self, directory=None, extra=(), name="xproxyd", max_failures=3, dovecot=None):
        dovecot = dovecot or self.dovecot
        self.port465 = free_port()
        directory = directory or self.directory()
        x = Xproxyd(self.sandbox, self.procs, ["default destinations=127.0.0.1:%d encoding=xclient"
                                               % self.default_home.port],
                    trusted=None, name=name, extra=[
                        "--listen", "inet:127.0.0.1:%d default tls=implicit mode=submission" % self.port465,
                        "--directory", directory, "--dovecot-auth", "inet:127.0.0.1:%d" % dovecot.auth_port,
                        "--tls-cert", self.crt, "--tls-key", self.key, "--auth-max-failures", str(max_failures),
                        "--auth-failure-delay", "300", "--auth-max-delay", "600"] + list(extra),
                    listen_options="mode=submission")
        wait_for_port("127.0.0.1", self.port465)
        return x

    def submit(self, x, user, source, rcpt="rcpt@example.net", auth="PLAIN", implicit=False, sender=None):
        argv = ["--auth", auth, "--auth-user", user, "--auth-password", USERS[user],
                "--tlsc" if implicit else "--tls", "--helo", "mua-%s.example" % user.split("@")[0]]
        return swaks(self.port465 if implicit else x.port, source=source, sender=sender or user, rcpt=rcpt,
                     extra=argv, headers=["Subject: from %s" % user])

    @staticmethod
    def sink_text(sink):
        return "\n".join(m.decode("utf-8", "replace") if isinstance(m, bytes) else m for m in sink.messages())

    # 1. Each user's mail lands at home, with the login and the client's address.
    def test_each_user_lands_at_home_with_the_login_and_client_address(self):
        x = self.xproxyd()
        for user, source, auth, implicit in (("alice@example.com", "127.0.0.21", "PLAIN", False),
                                             ("bob@example.com", "127.0.0.22", "LOGIN", False),
                                             ("carol@example.com", "127.0.0.23", "PLAIN", True),
                                             ("dave@other.example", "127.0.0.24", "PLAIN", False)):
            rc, out = self.submit(x, user, source, auth=auth, implicit=implicit)
            self.assertEqual(rc, 0, out)
            self.assertIn("235 2.7.0", out)
        self.sink_a.wait_messages(2)
        self.sink_b.wait_messages(1)
        wait_until(lambda: len(self.default_home.messages) == 1, 20, what="dave's message at the default home")
        a, b = self.sink_text(self.sink_a), self.sink_text(self.sink_b)
        self.assertIn("Subject: from alice@example.com", a)
        self.assertIn("Subject: from carol@example.com", a)
        self.assertIn("Subject: from bob@example.com", b)
        self.assertNotIn("from bob", a)
        self.assertNotIn("from alice", b)
        self.assertNotIn("from carol", b)
        self.assertIn(b"Subject: from dave@other.example", self.default_home.messages[0])
        xclient = [c for c in self.default_home.commands if c.startswith("XCLIENT")]
        self.assertTrue(any("ADDR=127.0.0.24" in c for c in xclient), xclient)
        self.assertTrue(any("LOGIN=dave@other.example" in c for c in xclient), xclient)
        # The home Postfix saw the user's login and the client's own address.
        for pf, user, addr in ((self.pf_a, "alice@example.com", "127.0.0.21"), (self.pf_b, "bob@example.com",
                                                                                 "127.0.0.22"),
                               (self.pf_a, "carol@example.com", "127.0.0.23")):
            pf.pf.wait_log(r"client=\S*\[%s\]:\d+.*sasl_username=%s" % (re.escape(addr), re.escape(user)))
        self.assertRegex(a, r"Received: from mua-alice\.example \(\S* ?\[127\.0\.0\.21\]\)\s+"
                            r"\(Authenticated sender: alice@example\.com\)")
        self.assertRegex(a, r"\(Authenticated sender: carol@example\.com\)")
        self.assertNotIn("[127.0.0.1])\n\t(Authenticated", a)
        # 4. The home's policy service saw alice (and carol), with the client's address.
        wait_until(lambda: len(split_requests(b"".join(self.policy.sessions))) >= 2, 10)
        reqs = split_requests(b"".join(self.policy.sessions))
        seen = {(r.get("sasl_username"), r.get("client_address")) for r in reqs}
        self.assertIn(("alice@example.com", "127.0.0.21"), seen)
        self.assertIn(("carol@example.com", "127.0.0.23"), seen)
        self.assertNotIn("127.0.0.1", {r.get("client_address") for r in reqs})
        log = x.log()
        self.assertRegex(log, r'event=auth sid=\S+ client=127\.0\.0\.21:\d+ login="alice@example\.com" '
                              r'in_directory=yes home=mta-a')
        self.assertRegex(log, r'login="dave@other\.example" in_directory=yes home=default')
        self.assertNotIn("alice-pw", log)

    # 2. Failed logins: 535, then delayed and locked for that address only.
    def test_failed_logins_lock_the_address_not_others(self):
        x = self.xproxyd()
        for i in range(3):
            c = TlsClient(x.port, source="127.0.0.31")
            t0 = time.monotonic()
            code, text = c.login("alice@example.com", "wrong-%d" % i)
            self.assertEqual((code, text[:9]), (535, "535 5.7.8"), text)
            if i > 0:
                self.assertGreaterEqual(time.monotonic() - t0, 0.25, "a repeated failure is answered later")
            c.close()
        c = TlsClient(x.port, source="127.0.0.31")
        t0 = time.monotonic()
        code, text = c.login("alice@example.com", "alice-pw")
        waited = time.monotonic() - t0
        self.assertEqual(code, 454, "locked: refused even with the right password: " + text)
        self.assertGreaterEqual(waited, 0.25, "the refusal of a locked address is delayed")
        c.close()
        c = TlsClient(x.port, source="127.0.0.32")
        code, text = c.login("alice@example.com", "alice-pw")
        self.assertEqual(code, 235, "another address is unaffected: " + text)
        c.close()
        log = x.log()
        self.assertRegex(log, r'event=auth_failed sid=\S+ client=127\.0\.0\.31:\d+ user="alice@example\.com"')
        self.assertRegex(log, r"event=auth_locked sid=\S+ client=127\.0\.0\.31:\d+ .*locked=address")
        for secret in ("wrong-0", "wrong-1", "alice-pw"):
            self.assertNotIn(secret, log)

    # Guesses sent in parallel count while Dovecot checks them: never more than the limit
    # reach Dovecot, whatever the number of sessions.
    def test_parallel_guesses_never_exceed_the_limit(self):
        slow = Dovecot(self.sandbox, self.procs, users=USERS, name="dovecot-slow", failure_delay="1 s")
        x = self.xproxyd(dovecot=slow)
        codes = []

        def guess(i):
            c = TlsClient(x.port, source="127.0.0.35")
            try:
                codes.append(c.login("alice@example.com", "guess-%d" % i)[0])
            finally:
                c.close()
        in_parallel(guess, 12)
        self.assertEqual(len(codes), 12, codes)
        self.assertLessEqual(codes.count(535), 3, codes)
        self.assertEqual(codes.count(535) + codes.count(454), 12, codes)
        log = x.log()
        self.assertLessEqual(len(re.findall(r"event=auth_failed .*client=127\.0\.0\.35", log)), 3)
        # A burst of good logins from one address (an office behind NAT) all get in: beyond
        # the places left they wait a moment, they are not refused.
        good = []

        def login(i):
            user = ("alice@example.com", "bob@example.com", "carol@example.com")[i % 3]
            c = TlsClient(x.port, source="127.0.0.36")
            try:
                good.append(c.login(user, USERS[user])[0])
            finally:
                c.close()
        in_parallel(login, 12)
        self.assertEqual(good, [235] * 12)

    # 2. AUTH before STARTTLS, MAIL before AUTH, a sender the user may not use.
    def test_refusals_before_tls_before_auth_and_for_a_foreign_sender(self):
        x = self.xproxyd()
        c = TlsClient(x.port, source="127.0.0.33")
        c.ehlo("mua.example")
        self.assertNotIn("AUTH", c.extensions, "AUTH is not offered before TLS")
        code, text = c.cmd("AUTH PLAIN " + plain("alice@example.com", "alice-pw"))
        self.assertEqual(code, 538, text)
        self.assertIn("5.7.11", text)
        code, text = c.cmd("MAIL FROM:<alice@example.com>")
        self.assertEqual(code, 530, text)
        c.starttls()
        c.ehlo("mua.example")
        self.assertEqual(c.extensions.get("AUTH"), "PLAIN LOGIN")
        code, text = c.cmd("MAIL FROM:<alice@example.com>")
        self.assertEqual(code, 530, text)
        self.assertEqual(c.cmd("AUTH PLAIN " + plain("alice@example.com", "alice-pw"))[0], 235)
        self.assertEqual(c.cmd("AUTH PLAIN " + plain("alice@example.com", "alice-pw"))[0], 503)
        code, text = c.cmd("MAIL FROM:<bob@example.com>")
        self.assertEqual(code, 553, text)
        self.assertIn("5.7.1", text)
        code, text = c.cmd("MAIL FROM:<nobody@elsewhere.example>")
        self.assertEqual(code, 553, text)
        # Her alias is hers.
        self.assertEqual(c.cmd("MAIL FROM:<a.smith@example.com>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<r@example.net>")[0], 250)
        self.assertEqual(c.data("Subject: alias\r\n\r\nbody\r\n")[0], 250)
        c.close()
        self.sink_a.wait_messages(1)
        self.assertEqual(self.sink_b.messages(), [])
        self.assertRegex(x.log(), r'event=sender_refused sid=\S+ login="alice@example\.com" '
                                  r'sender="bob@example\.com"')
        # A login that is no active user of the directory sends nothing, not even with the
        # null sender (which skips the sender's own checks).
        for user, want in (("off@example.com", "is inactive"), ("stranger@nowhere.example",
                                                                 "is not a user of this service")):
            c = TlsClient(x.port, source="127.0.0.34")
            self.assertEqual(c.login(user, USERS[user])[0], 235)
            code, text = c.cmd("MAIL FROM:<>")
            self.assertEqual(code, 553, text)
            self.assertIn(want, text)
            c.close()
        # The source commands are not for mail clients, trusted or not.
        c = TlsClient(x.port, source="127.0.0.1")
        c.ehlo("mua.example")
        self.assertEqual(c.cmd("XCLIENT ADDR=192.0.2.1")[0], 502)
        c.close()

    # 3. Home A down: failover to A's second destination; A gone: 4xx, never B.
    def test_home_down_fails_over_within_the_home_and_never_elsewhere(self):
        directory = self.directory(mta_a="127.0.0.1:%d,127.0.0.1:%d" % (self.dead_port, self.pf_a.port))
        x = self.xproxyd(directory=directory)
        rc, out = self.submit(x, "alice@example.com", "127.0.0.41")
        self.assertEqual(rc, 0, out)
        self.sink_a.wait_messages(1)
        self.procs.stop(self.pf_a.pf.proc)
        wait_until(lambda: not self.port_open(self.pf_a.port), 20, what="home A stopped")
        c = TlsClient(x.port, source="127.0.0.42")
        self.assertEqual(c.login("alice@example.com", "alice-pw")[0], 235)
        code, _ = c.cmd("MAIL FROM:<alice@example.com>")
        final = code
        if code == 250:
            self.assertEqual(c.cmd("RCPT TO:<r@example.net>")[0], 250)
            final = c.data("Subject: while A is down\r\n\r\nbody\r\n")[0]
        self.assertEqual(final // 100, 4, "home A down: a temporary failure")
        c.close()
        time.sleep(1)
        self.assertEqual(self.sink_b.messages(), [], "never delivered to another user's home")
        self.assertEqual(self.default_home.messages, [], "never delivered to the default home")

    @staticmethod
    def port_open(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    # 5. Bad input: clear replies, other sessions unaffected.
    def test_bad_auth_input_gets_clear_replies_and_spares_other_sessions(self):
        x = self.xproxyd(extra=["--client-timeout", "4"], max_failures=50)
        staller = TlsClient(x.port, source="127.0.0.51")
        staller.ehlo("mua.example")
        staller.starttls()
        staller.ehlo("mua.example")
        self.assertEqual(staller.cmd("AUTH LOGIN")[0], 334)  # ... and then nothing
        c = TlsClient(x.port, source="127.0.0.52")
        c.ehlo("mua.example")
        c.starttls()
        c.ehlo("mua.example")
        code, text = c.cmd("AUTH PLAIN " + "A" * 3000)
        self.assertEqual(code, 500, text)
        code, text = c.cmd("AUTH PLAIN not*base64")
        self.assertEqual(code, 501, text)
        self.assertIn("5.5.2", text)
        self.assertEqual(c.cmd("AUTH LOGIN")[0], 334)
        code, text = c.cmd("*")
        self.assertEqual(code, 501, text)
        self.assertIn("5.7.0", text)
        self.assertEqual(c.cmd("AUTH PLAIN")[0], 334)
        code, text = c.cmd("*")
        self.assertEqual(code, 501, text)
        code, text = c.cmd("AUTH PLAIN " + b64("\0alice@example.com\r\nRCPT TO:<x@y>\0alice-pw"))
        self.assertEqual(code, 535, text)
        code, text = c.cmd("AUTH PLAIN " + b64("\0alice@example.com\0alice-pw\0extra"))
        self.assertEqual(code, 535, text)
        code, text = c.cmd("AUTH CRAM-MD5")
        self.assertEqual(code, 504, text)
        # The same session can still log in and send.
        self.assertEqual(c.cmd("AUTH PLAIN " + plain("alice@example.com", "alice-pw"))[0], 235)
        self.assertEqual(c.cmd("MAIL FROM:<alice@example.com>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<r@example.net>")[0], 250)
        self.assertEqual(c.data("Subject: after bad input\r\n\r\nbody\r\n")[0], 250)
        c.close()
        # Meanwhile another client submits normally, and the staller is timed out.
        rc, out = self.submit(x, "bob@example.com", "127.0.0.53")
        self.assertEqual(rc, 0, out)
        code, text = staller.reply()
        self.assertEqual(code, 421, text)
        staller.close(quit=False)
        self.sink_a.wait_messages(1)
        self.sink_b.wait_messages(1)
        self.assertRegex(x.log(), r'event=auth_abandoned sid=\S+ reason="timeout"')

    # XPROXY towards a home that offers it (encoding=auto): SID IP PORT DOMAIN LOGIN.
    def test_auto_encoding_says_xproxy_to_a_home_that_offers_it(self):
        fake = FakeDownstream(ehlo=("PIPELINING", "XPROXY", "XCLIENT NAME ADDR PORT PROTO HELO LOGIN"))
        self.addCleanup(fake.close)
        directory = self.directory(extra="mta mta-x destinations=127.0.0.1:%d\n"
                                         "user erin@other.example home=mta-x\n" % fake.port)
        x = self.xproxyd(directory=directory)
        rc, out = self.submit(x, "erin@other.example", "127.0.0.61")
        self.assertEqual(rc, 0, out)
        wait_until(lambda: len(fake.messages) == 1, 10, what="the message at home X")
        xproxy = [c for c in fake.commands if c.upper().startswith("XPROXY ")]
        self.assertEqual(len(xproxy), 1, fake.commands)
        self.assertRegex(xproxy[0], r"^XPROXY SID=\w+ IP=127\.0\.0\.61 PORT=\d+ DOMAIN=mua-erin\.example "
                                    r"LOGIN=erin@other\.example$")
        self.assertFalse([c for c in fake.commands if c.upper().startswith("XCLIENT")])


    # SIGHUP reloads the directory; a file that does not load keeps the previous one.
    def test_sighup_reloads_the_directory_and_a_broken_file_keeps_the_previous_one(self):
        directory = self.directory()
        x = self.xproxyd(directory=directory)
        with open(directory) as f:
            text = f.read()
        with open(directory, "w") as f:
            f.write(text.replace("user bob@example.com home=mta-b", "user bob@example.com home=mta-a"))
        x.proc.send_signal(signal.SIGHUP)
        x.wait_log(r"event=directory_reload status=ok domains=2 users=5 mtas=2")
        rc, out = self.submit(x, "bob@example.com", "127.0.0.71")
        self.assertEqual(rc, 0, out)
        self.sink_a.wait_messages(1)
        with open(directory, "a") as f:
            f.write("user stray@unknown.example\n")  # its domain is not in the file
        x.proc.send_signal(signal.SIGHUP)
        x.wait_log(r"event=directory_reload status=failed detail=.*directory:10: domain")
        rc, out = self.submit(x, "bob@example.com", "127.0.0.72")
        self.assertEqual(rc, 0, out)
        self.sink_a.wait_messages(2)
        self.assertEqual(self.sink_b.messages(), [], "bob's new home, from the last directory that loaded")
        self.assertIsNone(x.proc.poll(), "SIGHUP does not stop xproxyd")

    # --check-config reads the directory and says what it found, or names the bad line.
    def test_check_config_reads_the_directory(self):
        def check(directory):
            return subprocess.run([binary("xproxyd/xproxyd"), "--check-config", "--listen",
                                   "inet:127.0.0.1:%d mode=submission" % free_port(), "--downstream",
                                   "default destinations=127.0.0.1:25 encoding=xclient", "--directory", directory,
                                   "--dovecot-auth", "inet:127.0.0.1:%d" % self.dovecot.auth_port,
                                   "--tls-cert", self.crt, "--tls-key", self.key],
                                  capture_output=True, text=True, timeout=30)
        r = check(self.directory())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"submission: directory \S+ \(2 domains, 5 users, 2 home MTAs\), "
                                   r"dovecot-auth inet:127\.0\.0\.1:\d+")
        r = check(self.sandbox.write("bad-directory", "mta m destinations=mx.example\n"))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertRegex(r.stderr, r"directory: \S*bad-directory.*want a numeric address")


if __name__ == "__main__":
    main()
