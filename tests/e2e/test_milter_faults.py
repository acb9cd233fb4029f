"""Acceptance 4 of xproxy-milter: the filter killed (SIGKILL) under load behind a real
Postfix with milter_default_action=tempfail. Clients then get 4xx, nothing that got a
250 is lost (every queued message is counted at smtp-sink, no refused one appears there),
and after the filter is restarted on the same socket mail flows again without touching
Postfix. Also --check-config and the key ring permission check."""

import os
import re
import signal
import subprocess
import threading
import time

from harness import E2ETestCase, Postfix, SmtpSink, binary, free_port, main, send_mail, wait_until
from milter_util import Milter


class Load:
    """N client threads sending numbered messages until stopped; records each reply."""

    def __init__(self, port, threads=4):
        self.port, self.stop_flag, self.lock = port, threading.Event(), threading.Lock()
        self.queued, self.refused, self.errors, self.n = [], [], [], 0
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def next_id(self):
        with self.lock:
            self.n += 1
            return "load-%05d" % self.n

    def run(self):
        while not self.stop_flag.is_set():
            mid = self.next_id()
            body = "Subject: %s\r\nMessage-ID: <%s@client.example>\r\n\r\nhello\r\n" % (mid, mid)
            try:
                replies = send_mail(self.port, source="127.0.0.66", body=body)
            except Exception as e:  # connection refused or reset: not accepted
                with self.lock:
                    self.errors.append((mid, repr(e)))
                continue
            with self.lock:
                if any(t.startswith("250 2.0.0 Ok: queued") for _, t in replies):
                    self.queued.append(mid)
                else:
                    self.refused.append((mid, [r for r in replies if r[0] >= 400]))

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(60)


class MilterFaults(E2ETestCase):
    def test_killed_under_load_then_restarted(self):
        sink = SmtpSink(self.sandbox, self.procs)
        m = Milter(self.sandbox, self.procs, "milter", "inject")
        pf = Postfix(self.sandbox, self.procs, "pf", free_port(), relay_port=sink.port,
                     main_cf={"smtpd_milters": m.postfix, "milter_default_action": "tempfail"})
        pf.start()
        load = Load(pf.port)
        wait_until(lambda: len(load.queued) >= 20, 60, 0.1, "20 messages queued before the kill")
        os.kill(m.proc.pid, signal.SIGKILL)
        killed_at = len(load.queued)
        wait_until(lambda: len(load.refused) >= 10, 60, 0.1, "4xx replies while the milter is down")
        m.proc.wait(10)
        m.start()
        refused_before_restart = len(load.refused)
        wait_until(lambda: len(load.queued) >= killed_at + 20, 60, 0.1, "mail flowing again after the restart")
        load.stop()

        self.assertEqual(load.errors, [])
        for mid, replies in load.refused:
            # The first refusal is a 4xx; later 503s only answer the commands after it.
            self.assertTrue(replies and 400 <= replies[0][0] < 500, (mid, replies))
            self.assertTrue(all(400 <= c < 500 or t.startswith("503 5.5.1") for c, t in replies), (mid, replies))
        self.assertTrue(any("4.7.1" in t for _, rs in load.refused for _, t in rs), load.refused[:3])
        self.assertGreaterEqual(refused_before_restart, 10)
        # Every 250 reaches the sink exactly once, with our header; nothing refused does.
        msgs = sink.wait_messages(len(load.queued), timeout=120)
        time.sleep(2)
        msgs = sink.messages()
        subjects = [re.search(r"^Subject: (load-\d+)", t, re.M).group(1) for t in msgs]
        self.assertEqual(sorted(subjects), sorted(load.queued))
        self.assertFalse(set(subjects) & {mid for mid, _ in load.refused})
        for t in msgs:
            self.assertEqual(len(re.findall(r"^X-Original-Source: v=1; ip=127\.0\.0\.66;", t, re.M)), 1, t[:800])
        print("queued=%d refused=%d (kill after %d)" % (len(load.queued), len(load.refused), killed_at))

    def test_check_config(self):
        ring = self.sandbox.write("ring", "k1 hex:00112233445566778899aabbccddeeff\n", mode=0o600)
        exe = binary("milter/xproxy-milter")
        r = subprocess.run([exe, "--mode", "verify", "--keyring", ring, "--block-list", "192.0.2.0/24",
                            "--check-config"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration ok (mode: verify, keys: 1", r.stdout)
        os.chmod(ring, 0o640)
        r = subprocess.run([exe, "--mode", "verify", "--keyring", ring, "--check-config"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("mode 0640", r.stderr)
        os.chmod(ring, 0o600)
        for bad in (["--mode", "relay"], ["--mode", "verify", "--block-list", "10.1.2.3/8"],
                    ["--mode", "verify", "--on-invalid", "maybe"], ["--mode", "inject", "--policy", "risk"],
                    ["--mode", "inject", "--listen", "tcp:1"],
                    ["--mode", "inject", "--listen", "inet:127.0.0.1:8890"],  # TCP needs --allow-peers
                    ["--mode", "inject", "--allow-peers", "127.0.0.1/33", "--listen", "inet:127.0.0.1:8890"],
                    ["--mode", "inject", "--socket-mode", "0668"],
                    ["--mode", "verify", "--on-missing-bounce", "drop"]):
            r = subprocess.run([exe, "--keyring", ring, "--check-config"] + bad, capture_output=True, text=True)
            self.assertEqual(r.returncode, 1, (bad, r.stdout, r.stderr))

    def test_check_config_names_the_config_file_line(self):
        # A broken config file: "FILE:LINE: why" on stderr, exit status 2 for what the file
        # itself gets wrong, 1 for a value a later check refuses.
        ring = self.sandbox.write("ring", "k1 hex:00112233445566778899aabbccddeeff\n", mode=0o600)
        exe = binary("milter/xproxy-milter")
        for text, code, want in (
                ("mode = inject\nbogus\n", 2, ":2: invalid line 'bogus' (want: name = value)"),
                ("mode = inject\nnosuch = 1\n", 2, ":2: unknown option 'nosuch'"),
                ("mode = inject\ntimeout = soon\n", 2, ":2: the argument ('soon') for option 'timeout' is invalid"),
                ("mode = inject\nmode = verify\n", 2,
                 ":2: option 'mode' cannot be specified more than once (first on line 1)"),
                ("# first hop\nmode = injectx\n", 1, ":2: --mode must be inject or verify"),
                ("mode = inject\nlisten = inet:127.0.0.1:8890\n", 1,
                 ":2: TCP listener inet:127.0.0.1:8890 would serve nobody")):
            broken = self.sandbox.write("broken.conf", text)
            r = subprocess.run([exe, "--config", broken, "--keyring", ring, "--check-config"],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, code, (text, r.stderr))
            self.assertIn("xproxy-milter: " + broken + want, r.stderr)


if __name__ == "__main__":
    main()
