"""xproxyd under concurrent load: 100 parallel smtp-source sessions at once through
xproxyd (2 worker threads) into smtp-sink, small messages on the fast path and large ones
that spill their body copy to a file at the same time; every message at the sink, one
event=relayed line with code=250 per message, then a clean exit on SIGTERM.

The binary is $XPROXYD_EXE when set (point it at an ASan or TSan build), else the one of
$XPROXY_BUILD_DIR. Sanitizer reports go to files in the sandbox (ASAN_OPTIONS /
TSAN_OPTIONS log_path); any report, or an exit status other than 0 after SIGTERM
(LeakSanitizer exits 23, TSan 66), fails the test."""

import glob
import os
import re
import subprocess

from harness import E2ETestCase, SmtpSink, binary, free_port, main, read_text, wait_for_port, wait_until

SMALL_SESSIONS, SMALL = 80, int(os.environ.get("XPROXYD_LOAD_SMALL", "800"))  # 2 KiB, fast path in memory
LARGE_SESSIONS, LARGE = 20, int(os.environ.get("XPROXYD_LOAD_LARGE", "100"))  # 64 KiB, over the threshold


class XproxydLoad(E2ETestCase):
    def start_xproxyd(self, sink_port):
        self.port = free_port()
        san = self.san = self.sandbox.path("san")
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = "log_path=%s:detect_leaks=1:abort_on_error=0" % san
        env["TSAN_OPTIONS"] = "log_path=%s:halt_on_error=0:exitcode=66" % san
        env["UBSAN_OPTIONS"] = "log_path=%s:print_stacktrace=1" % san
        self.log_path = self.sandbox.path("xproxyd.log")
        self.sandbox.logs.append(self.log_path)
        exe = os.environ.get("XPROXYD_EXE") or binary("xproxyd/xproxyd")
        argv = [exe, "--log", "stderr", "--log-level", "info", "--listen", "inet:127.0.0.1:%d" % self.port,
                "--spool-dir", self.sandbox.mkdir("spool", mode=0o700), "--hostname", "xproxyd.test.invalid",
                "--threads", "2", "--max-sessions-per-client", "200",
                "--downstream", "sink destinations=127.0.0.1:%d encoding=xforward" % sink_port]
        with open(self.log_path, "wb") as out:
            self.xp = self.procs.start("xproxyd", argv, stdout=out, env=env)
        wait_for_port("127.0.0.1", self.port, timeout=30)

    def relayed(self):
        return re.findall(r"^.*event=relayed .*$", read_text(self.log_path), re.M)

    def test_100_parallel_sessions(self):
        sink = SmtpSink(self.sandbox, self.procs)
        self.start_xproxyd(sink.port)

        def source(sessions, n, size, sender):
            return subprocess.Popen(["/usr/sbin/smtp-source", "-s", str(sessions), "-m", str(n), "-l", str(size),
                                     "-f", sender, "-t", "b@rcpt.example", "127.0.0.1:%d" % self.port],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        small = source(SMALL_SESSIONS, SMALL, 2048, "small@sender.example")
        large = source(LARGE_SESSIONS, LARGE, 65536, "large@sender.example")
        for p in (small, large):
            out, _ = p.communicate(timeout=300)
            self.assertEqual(p.returncode, 0, out)
        msgs = sink.wait_messages(SMALL + LARGE, timeout=120)
        self.assertEqual(len(msgs), SMALL + LARGE)
        by_sender = {"small": 0, "large": 0}
        for t in msgs:
            m = re.search(r"^X-Mail-Args: <(small|large)@sender\.example>", t, re.M)
            self.assertIsNotNone(m, t[:600])
            by_sender[m.group(1)] += 1
            # smtp-source's -l is approximate: whole lines of its pattern
            self.assertTrue(len(t) < 8192 if m.group(1) == "small" else len(t) > 60000, (m.group(1), len(t)))
        self.assertEqual(by_sender, {"small": SMALL, "large": LARGE})
        # The log is written by its own thread: the lines may follow the replies a little.
        wait_until(lambda: len(self.relayed()) >= SMALL + LARGE, 60, 0.2, "one event=relayed line per message")
        lines = self.relayed()
        self.assertEqual(len(lines), SMALL + LARGE)
        self.assertTrue(all("code=250" in l for l in lines), [l for l in lines if "code=250" not in l][:5])
        self.assertEqual(len([l for l in lines if "spilled=yes" in l]), LARGE)
        log = read_text(self.log_path)
        for bad in ("event=deferred", "event=limit", "event=internal_error", "panic:"):
            self.assertNotIn(bad, log)
        self.procs.stop(self.xp, timeout=60)
        reports = glob.glob(self.san + "*")
        self.assertEqual(reports, [], "\n".join(read_text(p)[:4000] for p in reports))
        self.assertEqual(self.xp.returncode, 0, "xproxyd exit status after SIGTERM")


if __name__ == "__main__":
    main()
