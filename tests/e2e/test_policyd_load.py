"""xproxy-policyd under concurrent load: 64 policy clients at once on their own
connections (each request's answer checked, SIGHUP reloads in the middle), and 50
concurrent SMTP sessions through a real Postfix whose smtpd processes all ask the daemon
(every message at the sink with exactly one trace header, one decision line per request),
then a clean exit on SIGTERM.

The binary is $XPROXY_POLICYD_EXE when set (point it at an ASan or TSan build), else the
one of $XPROXY_BUILD_DIR. Sanitizer reports go to files in the sandbox (ASAN_OPTIONS /
TSAN_OPTIONS log_path); any report, or an exit status other than 0 after SIGTERM
(LeakSanitizer exits 23, TSan 66), fails the test."""

import glob
import os
import re
import signal
import socket
import subprocess
import threading

from harness import E2ETestCase, Postfix, SmtpSink, binary, free_port, main, read_text, wait_for_port, wait_until

DIRECTORY = """domain example.com state=active services=smtp,submission
user alice@example.com state=active
user idle@example.com state=inactive
domain closed.example state=deleted
"""
KEYRING = "k1 hex:00112233445566778899aabbccddeeff\n"
CLIENTS = 64
REQUESTS = int(os.environ.get("XPROXY_POLICYD_LOAD_REQUESTS", "40"))  # per client
SESSIONS = 50
MESSAGES = int(os.environ.get("XPROXY_POLICYD_LOAD_MESSAGES", "300"))
# (protocol_state, recipient, the whole expected reply or a regex for it)
ROWS = [
    ("RCPT", "alice@example.com", "action=DUNNO\n\n"),
    ("RCPT", "nobody@example.com", "action=550 5.1.1 User unknown in virtual domain\n\n"),
    ("RCPT", "idle@example.com", re.compile(r"action=450 4\.2\.1 .*\n\n\Z")),
    ("RCPT", "a@closed.example", re.compile(r"action=550 5\.1\.2 .*\n\n\Z")),
    ("RCPT", "someone@not-hosted.example", "action=DUNNO\n\n"),
    ("DATA", "alice@example.com",
     re.compile(r"action=PREPEND X-Original-Source: v=1; ip=127\.0\.0\.66; port=25000; helo=c(\d+)\.test; "
                r"proto=ESMTP; sid=Q(\d+)X(\d+); by=gw1\.test; t=\d+; .*kid=k1; sig=[A-Za-z0-9_-]+\n\n\Z")),
    ("END-OF-MESSAGE", "alice@example.com", "action=DUNNO\n\n"),
]


def request(state, rcpt, client, n):
    return ("request=smtpd_access_policy\nprotocol_state=%s\nprotocol_name=ESMTP\nclient_address=127.0.0.66\n"
            "client_port=25000\nclient_name=unknown\nhelo_name=c%d.test\nsender=s%d@sender.example\n"
            "recipient=%s\nqueue_id=Q%dX%d\ninstance=%d.%d\nserver_port=25\n\n"
            % (state, client, client, rcpt, client, n, client, n)).encode()


class PolicydLoad(E2ETestCase):
    def start_policyd(self):
        self.port = free_port()
        self.dir_file = self.sandbox.write("directory.txt", DIRECTORY)
        ring = self.sandbox.write("keyring", KEYRING, mode=0o600)
        self.san = self.sandbox.path("san")
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = "log_path=%s:detect_leaks=1:abort_on_error=0" % self.san
        env["TSAN_OPTIONS"] = "log_path=%s:halt_on_error=0:exitcode=66" % self.san
        env["UBSAN_OPTIONS"] = "log_path=%s:print_stacktrace=1" % self.san
        self.log_path = self.sandbox.path("policyd.log")
        self.sandbox.logs.append(self.log_path)
        exe = os.environ.get("XPROXY_POLICYD_EXE") or binary("policyd/xproxy-policyd")
        argv = [exe, "--listen", "inet:127.0.0.1:%d" % self.port, "--allow-peers", "127.0.0.1/32",
                "--log", "stderr", "--threads", "4", "--policy", "inject,vdomains", "--directory", self.dir_file,
                "--keyring", ring, "--signer", "gw1.test", "--watch-interval", "1"]
        with open(self.log_path, "wb") as out:
            self.pd = self.procs.start("policyd", argv, stdout=out, env=env)
        wait_for_port("127.0.0.1", self.port, timeout=30)

    def decisions(self):
        return re.findall(r"^.*event=decision .*$", read_text(self.log_path), re.M)

    def stop_and_check_clean(self):
        self.assertNotIn("event=internal_error", read_text(self.log_path))
        self.procs.stop(self.pd, timeout=60)
        reports = glob.glob(self.san + "*")
        self.assertEqual(reports, [], "\n".join(read_text(p)[:4000] for p in reports))
        self.assertEqual(self.pd.returncode, 0, "policyd exit status after SIGTERM")

    def test_64_concurrent_clients(self):
        self.start_policyd()
        errors = []
        answered = [0] * CLIENTS

        def client(c):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=60) as s:
                    f = s.makefile("rb")
                    for n in range(REQUESTS):
                        state, rcpt, want = ROWS[(c + n) % len(ROWS)]
                        s.sendall(request(state, rcpt, c, n))
                        reply = b""
                        while not reply.endswith(b"\n\n"):
                            line = f.readline()
                            if not line:
                                raise OSError("connection closed after %d replies" % n)
                            reply += line
                        got = reply.decode()
                        if isinstance(want, str):
                            ok = got == want
                        else:
                            m = want.match(got)
                            # the header names this request's client: no reply went to the wrong one
                            ok = bool(m) and (not m.groups() or m.groups() == (str(c), str(c), str(n)))
                        if not ok:
                            errors.append("client %d request %d (%s %s): %r" % (c, n, state, rcpt, got))
                            return
                        answered[c] += 1
            except OSError as e:
                errors.append("client %d: %s" % (c, e))

        threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
        for t in threads:
            t.start()
        # Reloads while the clients run: every request sees one whole directory or the other.
        for _ in range(5):
            os.kill(self.pd.pid, signal.SIGHUP)
            threading.Event().wait(0.2)
        for t in threads:
            t.join(300)
        self.assertEqual(errors, [])
        self.assertEqual(sum(answered), CLIENTS * REQUESTS)
        wait_until(lambda: len(self.decisions()) >= CLIENTS * REQUESTS, 60, 0.2, "one decision line per request")
        self.assertEqual(len(self.decisions()), CLIENTS * REQUESTS)
        self.assertRegex(read_text(self.log_path), r"event=reload trigger=SIGHUP")
        self.stop_and_check_clean()

    def test_50_postfix_sessions(self):
        self.start_policyd()
        sink = SmtpSink(self.sandbox, self.procs)
        policy = "check_policy_service { inet:127.0.0.1:%d, default_action=DEFER_IF_PERMIT }" % self.port
        pf = Postfix(self.sandbox, self.procs, "pf", free_port(), relay_port=sink.port,
                     main_cf={"smtpd_recipient_restrictions": policy + ", permit_mynetworks, reject_unauth_destination",
                              "smtpd_data_restrictions": policy,
                              "default_process_limit": "100", "smtpd_client_connection_count_limit": "0",
                              "smtpd_client_event_limit_exceptions": "127.0.0.0/8"})
        pf.start()
        r = subprocess.run(["/usr/sbin/smtp-source", "-s", str(SESSIONS), "-m", str(MESSAGES), "-l", "512",
                            "-f", "carol@sender.example", "-t", "alice@example.com", "-c",
                            "127.0.0.1:%d" % pf.port], capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        msgs = sink.wait_messages(MESSAGES, timeout=120)
        self.assertEqual(len(msgs), MESSAGES)
        for t in msgs:
            self.assertEqual(len(re.findall(r"^X-Original-Source: v=1; ip=127\.0\.0\.1;", t, re.M)), 1, t[:600])
        # one RCPT, one DATA decision per message (Postfix asks at both stages)
        wait_until(lambda: len(self.decisions()) >= 2 * MESSAGES, 60, 0.2, "decision lines")
        lines = self.decisions()
        self.assertEqual(len([l for l in lines if "state=RCPT" in l]), MESSAGES)
        self.assertEqual(len([l for l in lines if "state=DATA" in l and "policy=inject" in l]), MESSAGES)
        pf.stop()
        self.stop_and_check_clean()


if __name__ == "__main__":
    main()
