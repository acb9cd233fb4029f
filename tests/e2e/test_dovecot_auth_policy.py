"""A real Dovecot 2.3 asks xproxy-policyd (--auth-policy-listen) after every login whether
the directory lets that login use that service (auth_policy_server_url, JSON over HTTP):
an allowed (or over-quota) user's IMAP LOGIN works; a user of an inactive domain, an
inactive or disabled user, a user of a domain whose services lack imap and a user the
directory does not know are refused,
and the IMAP client sees the reason policyd gave. POP3 and Postfix's SMTP AUTH (service
smtp) are decided through Dovecot's auth socket the same way. A Dovecot with the wrong API
key gets 401s, and with auth_policy_reject_on_fail = yes its logins fail. A reloaded
directory decides the next login. A TCP listener without a key, or a key file others can
read, does not start. A Dovecot master-user login ("alice@example.com*admin" with admin's
password) is asked about too, as the user it opens: the directory's state of that user
decides, and the "*admin" suffix never reaches the policy; doveadm's access to a mailbox
(Dovecot's auth-master connection) is not asked."""

import base64
import imaplib
import os
import re
import signal
import socket
import subprocess

from harness import Dovecot, E2ETestCase, binary, free_port, main, read_text, wait_for_log, wait_for_port

KEY = "k3y-for-the-auth-policy-0123456789"
DIRECTORY = """\
domain example.com services=smtp,submission,imap
user alice@example.com
user carol@example.com state=inactive
user frank@example.com state=disabled
user gina@example.com state=overquota
domain paused.example state=inactive services=smtp,submission,imap,pop3
user dave@paused.example
domain noimap.example services=smtp,submission,pop3
user erin@noimap.example
"""
# zed is a valid Dovecot account the directory does not know.
USERS = {u: "secret" for u in ("alice@example.com", "carol@example.com", "frank@example.com",
                               "gina@example.com", "dave@paused.example",
                               "erin@noimap.example", "zed@unknown.example")}
# Dovecot's master users (auth_master_user_separator = *).
MASTERS = {"admin": "admin-secret"}
# What doc/dovecot-auth-policy.md tells administrators to set.
POLICY_CONF = """auth_verbose = yes
auth_policy_server_url = http://127.0.0.1:%(port)d/
auth_policy_server_api_header = %(header)s
auth_policy_hash_nonce = not-used-by-xproxy
auth_policy_request_attributes = login=%%{requested_username} master=%%{master_user} remote=%%{rip} protocol=%%s session_id=%%{session}
auth_policy_check_before_auth = no
auth_policy_check_after_auth = yes
auth_policy_report_after_auth = yes
auth_policy_reject_on_fail = yes
"""


def imap_login(port, user, password):
    """(True, text) when LOGIN succeeded, (False, text of the NO) when not."""
    m = imaplib.IMAP4("127.0.0.1", port, timeout=15)
    try:
        typ, data = m.login(user, password)
        m.logout()
        return typ == "OK", b" ".join(data).decode()
    except imaplib.IMAP4.error as e:
        said = e.args[0] if e.args else b""
        return False, said.decode() if isinstance(said, bytes) else str(said)
    finally:
        try:
            m.shutdown()
        except OSError:
            pass


def auth_socket_login(port, service, user, password):
    """One PLAIN authentication on Dovecot's auth-client socket, as Postfix (service=smtp) or
    a POP3 login process would ask: the reply line, "OK\\t1..." or "FAIL\\t1...". """
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        f = s.makefile("rwb")
        f.write(b"VERSION\t1\t2\nCPID\t%d\n" % os.getpid())
        f.flush()
        while f.readline().rstrip(b"\n") != b"DONE":
            pass
        resp = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode())
        f.write(b"AUTH\t1\tPLAIN\tservice=%s\trip=192.0.2.44\tresp=%s\n" % (service.encode(), resp))
        f.flush()
        return f.readline().decode().rstrip("\n")


class DovecotAuthPolicy(E2ETestCase):
    def start_policyd(self, *extra, key_mode=0o640):
        # No newline at the end: Dovecot reads this file too (<FILE keeps a newline, and its
        # HTTP client aborts on a header value with one).
        self.key = self.sandbox.write("policy.key", KEY, mode=key_mode)
        self.dir_file = self.sandbox.write("directory.txt", DIRECTORY)
        self.run_dir = self.sandbox.mkdir("run")
        self.policy_port = free_port()
        self.pd_log = self.sandbox.path("policyd.log")
        self.sandbox.logs.append(self.pd_log)
        argv = [binary("policyd/xproxy-policyd"), "--listen", "unix:" + self.run_dir + "/policyd.sock",
                "--log", "stderr", "--directory", self.dir_file, "--watch-interval", "0",
                "--auth-policy-listen", "inet:127.0.0.1:%d" % self.policy_port,
                "--auth-policy-secret-file", self.key] + list(extra)
        with open(self.pd_log, "wb") as out:
            self.pd = self.procs.start("policyd", argv, stdout=out, stderr=subprocess.STDOUT)
        wait_for_port("127.0.0.1", self.policy_port)

    def start_dovecot(self, header=None, masters=None):
        # By default as documented: Dovecot reads the daemon's own key file ("<FILE"), and a
        # value without ':' is sent as X-API-Key.
        header = header or "<" + self.key
        self.dv = Dovecot(self.sandbox, self.procs, USERS, imap=True,
                          extra=POLICY_CONF % {"port": self.policy_port, "header": header}, masters=masters)

    def pd_text(self):
        return read_text(self.pd_log)

    def test_directory_decides_imap_logins(self):
        self.start_policyd()
        self.start_dovecot()
        port = self.dv.imap_port
        self.assertEqual(imap_login(port, "alice@example.com", "secret"), (True, "Logged in"))
        # Over quota lets the user in: deleting mail is how it gets under the quota.
        self.assertEqual(imap_login(port, "gina@example.com", "secret"), (True, "Logged in"))
        cases = [  # login, text the client is shown, reason logged
            ("dave@paused.example", "Domain temporarily suspended", "domain_inactive"),
            ("carol@example.com", "Account temporarily disabled", "user_inactive"),
            ("frank@example.com", "Account disabled", "user_disabled"),
            ("erin@noimap.example", "Service imap not enabled for domain noimap.example", "service_not_allowed"),
            ("zed@unknown.example", "Unknown user", "user_unknown"),
        ]
        for login, text, reason in cases:
            ok, said = imap_login(port, login, "secret")
            self.assertFalse(ok, login)
            self.assertIn(text, said, login)
            line = wait_for_log(self.pd_log, r"event=auth_policy_refuse login=\"%s\"[^\n]*" % login.replace(".", r"\.")).group(0)
            self.assertIn("remote=127.0.0.1 protocol=imap service=imap", line)
            self.assertIn("reason=%s " % reason, line)
            wait_for_log(self.dv.log, r"policy server refusal: " + text.replace(".", r"\."))
        # A wrong password never reaches the allow check; the report says how it ended.
        self.assertFalse(imap_login(port, "alice@example.com", "wrong")[0])
        wait_for_log(self.pd_log, r"event=auth_policy_report login=\"alice@example\.com\" remote=127\.0\.0\.1 "
                                  r"protocol=imap success=no policy_reject=no")
        self.assertIn('event=auth_policy_report login="dave@paused.example" remote=127.0.0.1 protocol=imap '
                      'success=no policy_reject=yes', self.pd_text())
        # The directory changes: the next login is decided by the new one.
        self.sandbox.write("directory.txt", DIRECTORY.replace("user alice@example.com",
                                                              "user alice@example.com state=deleted"))
        os.kill(self.pd.pid, signal.SIGHUP)
        wait_for_log(self.pd_log, r"event=reload trigger=SIGHUP")
        self.assertEqual(imap_login(port, "alice@example.com", "secret"), (False, "[ALERT] Account no longer exists"))

    def test_master_user_logins_are_judged_as_the_user_they_open(self):
        # What doc/dovecot-auth-policy.md, "Master users", reports. Dovecot checks the master
        # password first, then asks the policy with login = the user the master opens.
        self.start_policyd("--log-level", "debug")
        self.start_dovecot(masters=MASTERS)
        port = self.dv.imap_port
        self.assertEqual(imap_login(port, "alice@example.com*admin", "admin-secret"), (True, "Logged in"))
        wait_for_log(self.dv.log, r"Master user logging in as alice@example\.com")
        wait_for_log(self.pd_log, r"event=auth_policy_allow login=\"alice@example\.com\" master=\"admin\" "
                                  r"remote=127\.0\.0\.1 protocol=imap service=imap ")
        wait_for_log(self.pd_log, r"event=auth_policy_report login=\"alice@example\.com\" master=\"admin\" "
                                  r"remote=127\.0\.0\.1 protocol=imap success=yes")
        # A wrong master password fails in Dovecot: the policy only hears the report.
        self.assertEqual(imap_login(port, "frank@example.com*admin", "secret"),
                         (False, "[AUTHENTICATIONFAILED] Authentication failed."))
        wait_for_log(self.pd_log, r"event=auth_policy_report login=\"frank@example\.com\" remote=127\.0\.0\.1 "
                                  r"protocol=imap success=no policy_reject=no")
        self.assertNotIn("event=auth_policy_refuse", self.pd_text())
        # The directory's state of the opened user wins over the master password. Dovecot
        # words a refused master login as an authorization failure.
        cases = [  # user opened, text the client is shown, reason logged
            ("frank@example.com", "Account disabled", "user_disabled"),
            ("dave@paused.example", "Domain temporarily suspended", "domain_inactive"),
            ("zed@unknown.example", "Unknown user", "user_unknown"),
        ]
        for user, text, reason in cases:
            self.assertEqual(imap_login(port, user + "*admin", "admin-secret"),
                             (False, "[AUTHORIZATIONFAILED] " + text), user)
            wait_for_log(self.dv.log, r"Master user logging in as " + re.escape(user))
            line = wait_for_log(self.pd_log, r"event=auth_policy_refuse login=\"%s\"[^\n]*" % re.escape(user)).group(0)
            self.assertIn(' master="admin" remote=127.0.0.1 protocol=imap service=imap tls=no reason=%s ' % reason,
                          line)
        # A user naming himself as the master is an ordinary login, refused as one.
        self.assertEqual(imap_login(port, "frank@example.com*frank@example.com", "secret"),
                         (False, "[ALERT] Account disabled"))
        wait_for_log(self.pd_log, r"event=auth_policy_refuse login=\"frank@example\.com\" remote=127\.0\.0\.1 "
                                  r"protocol=imap service=imap tls=no reason=user_disabled ")
        self.assertEqual(self.pd_text().count('event=auth_policy_refuse login="frank@example.com"'), 2)
        # Every login the policy heard is a user's, never "user*master".
        logins = re.findall(r'login="([^"]*)"', self.pd_text())
        self.assertTrue(logins)
        self.assertEqual([x for x in logins if "*" in x or "admin" in x], [])
        # An administrator's way into a disabled mailbox: doveadm on the server, which looks
        # the user up on Dovecot's auth-master connection, is not asked.
        before = self.pd_text()
        r = subprocess.run(["doveadm", "-c", self.dv.conf, "mailbox", "list", "-u", "frank@example.com"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual((r.returncode, r.stdout.split()), (0, ["INBOX"]), r.stderr)
        self.assertEqual(self.pd_text(), before)

    def test_pop3_and_smtp_logins_through_the_auth_socket(self):
        self.start_policyd()
        self.start_dovecot()
        port = self.dv.auth_port
        self.assertTrue(auth_socket_login(port, "pop3", "erin@noimap.example", "secret").startswith("OK\t1"))
        refused = auth_socket_login(port, "pop3", "alice@example.com", "secret")
        self.assertTrue(refused.startswith("FAIL\t1"), refused)
        self.assertIn("reason=Service pop3 not enabled for domain example.com", refused)
        # Postfix's SMTP AUTH through Dovecot: service smtp is the domain's submission.
        self.assertTrue(auth_socket_login(port, "smtp", "alice@example.com", "secret").startswith("OK\t1"))
        refused = auth_socket_login(port, "smtp", "dave@paused.example", "secret")
        self.assertIn("reason=Domain temporarily suspended", refused)
        self.assertIn("remote=192.0.2.44 protocol=smtp service=submission", self.pd_text())
        # A service the directory has no name for is refused.
        refused = auth_socket_login(port, "sieve", "alice@example.com", "secret")
        self.assertIn("reason=Service not available", refused)
        self.assertIn("protocol=sieve service=- tls=no reason=service_unknown", self.pd_text())

    def test_wrong_api_key_is_refused_and_dovecot_fails_closed(self):
        self.start_policyd()
        self.start_dovecot(header="Authorization: Bearer not-the-key")
        ok, said = imap_login(self.dv.imap_port, "alice@example.com", "secret")
        self.assertFalse(ok, said)
        self.assertIn("AUTHENTICATIONFAILED", said)
        wait_for_log(self.pd_log, r"event=auth_policy_unauthorized peer=127\.0\.0\.1:\d+ status=401 "
                                  r"reason=\"missing or wrong API key\"")
        wait_for_log(self.dv.log, r"Policy server HTTP error: 401")
        self.assertNotIn("event=auth_policy_report", self.pd_text())

    def test_bearer_header_and_start_up_refusals(self):
        self.start_policyd()
        self.start_dovecot(header="Authorization: Bearer " + KEY)
        self.assertEqual(imap_login(self.dv.imap_port, "alice@example.com", "secret"), (True, "Logged in"))
        pd = binary("policyd/xproxy-policyd")
        base = [pd, "--listen", "unix:" + self.run_dir + "/other.sock", "--directory", self.dir_file,
                "--check-config"]
        r = subprocess.run(base + ["--auth-policy-listen", "inet:127.0.0.1:%d" % free_port()],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("for the auth policy needs --auth-policy-secret-file", r.stderr)
        loose = self.sandbox.write("loose.key", KEY, mode=0o644)
        r = subprocess.run(base + ["--auth-policy-listen", "inet:127.0.0.1:%d" % free_port(),
                                   "--auth-policy-secret-file", loose], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("must be a regular file of mode 0640 or tighter", r.stderr)
        r = subprocess.run([pd, "--listen", "unix:" + self.run_dir + "/other.sock", "--check-config",
                            "--auth-policy-listen", "inet:127.0.0.1:%d" % free_port(),
                            "--auth-policy-secret-file", self.key], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("need --directory", r.stderr)
        r = subprocess.run(base + ["--auth-policy-listen", "inet:127.0.0.1:%d" % free_port(),
                                   "--auth-policy-secret-file", self.key], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    main()
