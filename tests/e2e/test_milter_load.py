"""Acceptance 5 of xproxy-milter: 200 concurrent SMTP sessions (smtp-source -s 200) through
a real Postfix into the milter (inject mode, TCP and unix socket), every message at the
sink with its header, one log line per message, a clean exit on SIGTERM.

The binary is $XPROXY_MILTER_EXE when set (point it at an ASan or TSan build, see
milter/README.md), else the one of $XPROXY_BUILD_DIR. Sanitizer reports go to files in
the sandbox (ASAN_OPTIONS / TSAN_OPTIONS log_path); any report, or an exit status other
than 0 after SIGTERM (LeakSanitizer exits 23, TSan 66), fails the test. TSan reports from
inside libmilter's own shutdown are suppressed (tests/e2e/data/milter/tsan.supp)."""

import glob
import os
import re
import subprocess

from harness import SOURCE_DIR, E2ETestCase, Postfix, SmtpSink, free_port, main, read_text
from milter_util import Milter

TSAN_SUPP = os.path.join(SOURCE_DIR, "tests", "e2e", "data", "milter", "tsan.supp")  # libmilter's shutdown only
SESSIONS = 200
MESSAGES = int(os.environ.get("XPROXY_MILTER_LOAD_MESSAGES", "600"))


class MilterLoad(E2ETestCase):
    def run_load(self, unix):
        exe = os.environ.get("XPROXY_MILTER_EXE") or None
        san = self.sandbox.path("san")
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = "log_path=%s:detect_leaks=1:abort_on_error=0" % san
        env["TSAN_OPTIONS"] = "log_path=%s:halt_on_error=0:exitcode=66:suppressions=%s" % (san, TSAN_SUPP)
        env["UBSAN_OPTIONS"] = "log_path=%s:print_stacktrace=1" % san
        sink = SmtpSink(self.sandbox, self.procs, extra_args=())
        m = Milter(self.sandbox, self.procs, "milter", "inject", unix=unix, exe=exe, env=env)
        pf = Postfix(self.sandbox, self.procs, "pf", free_port(), relay_port=sink.port,
                     main_cf={"smtpd_milters": m.postfix, "milter_default_action": "tempfail",
                              "default_process_limit": "260", "smtpd_client_connection_count_limit": "0",
                              "smtpd_client_event_limit_exceptions": "127.0.0.0/8",
                              "milter_connect_timeout": "60s", "milter_command_timeout": "120s",
                              "milter_content_timeout": "120s"})
        pf.start()
        r = subprocess.run(["/usr/sbin/smtp-source", "-s", str(SESSIONS), "-m", str(MESSAGES), "-l", "1024",
                            "-f", "a@sender.example", "-t", "b@rcpt.example", "-c", "127.0.0.1:%d" % pf.port],
                           capture_output=True, text=True, timeout=900)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        msgs = sink.wait_messages(MESSAGES, timeout=300)
        self.assertEqual(len(msgs), MESSAGES)
        for t in msgs:
            self.assertEqual(len(re.findall(r"^X-Original-Source: v=1; ip=127\.0\.0\.1;", t, re.M)), 1, t[:600])
        lines = m.messages()
        self.assertEqual(len(lines), MESSAGES)
        self.assertTrue(all("outcome=injected" in l for l in lines))
        self.assertEqual(len({re.search(r"queue_id=(\S+)", l).group(1) for l in lines}), MESSAGES)
        self.assertNotIn("event=internal_error", m.log_text())
        self.assertNotIn("event=no_session", m.log_text())
        self.procs.stop(m.proc, timeout=60)
        reports = glob.glob(san + "*")
        self.assertEqual(reports, [], "\n".join(read_text(p)[:4000] for p in reports))
        self.assertEqual(m.proc.returncode, 0, "milter exit status after SIGTERM")

    def test_200_sessions_tcp(self):
        self.run_load(unix=False)

    def test_200_sessions_unix(self):
        self.run_load(unix=True)


if __name__ == "__main__":
    main()
