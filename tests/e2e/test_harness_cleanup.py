"""The harness leaves no process behind when a test fails: a child test starts Postfix,
smtp-sink and HAProxy, records their PIDs, then fails; afterwards none of them runs."""

import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

import harness

CHILD = r'''
import json, sys
sys.path.insert(0, %(dir)r)
from harness import *

class Child(E2ETestCase):
    def test_fails(self):
        sink = SmtpSink(self.sandbox, self.procs)
        port = free_port()
        pf = Postfix(self.sandbox, self.procs, "pf", port, relay_port=sink.port).start()
        hp = HAProxy(self.sandbox, self.procs, port, mode=None)
        pids = self.procs.pids()
        # Postfix's master and its children too
        with open(%(out)r, "w") as f:
            json.dump({"pids": pids, "sandbox": self.sandbox.root}, f)
        raise RuntimeError("deliberate failure")

unittest.main()
'''


class HarnessCleanup(unittest.TestCase):
    def test_no_process_left_after_failure(self):
        out = tempfile.mktemp(prefix="xproxy-cleanup-", suffix=".json")
        script = CHILD % {"dir": os.path.dirname(os.path.abspath(__file__)), "out": out}
        r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        self.assertNotEqual(r.returncode, 0, "the child test must fail")
        self.assertIn("deliberate failure", r.stderr)
        with open(out) as f:
            info = json.load(f)
        os.unlink(out)
        self.assertEqual(len(info["pids"]), 3)
        deadline = time.time() + 10
        while time.time() < deadline and any(harness.pid_alive(p) for p in info["pids"]):
            time.sleep(0.1)
        for pid in info["pids"]:
            self.assertFalse(harness.pid_alive(pid), "pid %d still running" % pid)
        # No process of Postfix's still uses the failed test's configuration.
        leftovers = []
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open("/proc/%s/cmdline" % pid, "rb") as f:
                        if info["sandbox"].encode() in f.read():
                            leftovers.append(pid)
                except OSError:
                    pass
        self.assertEqual(leftovers, [], "processes still using %s" % info["sandbox"])
        self.assertTrue(os.path.isdir(info["sandbox"]), "a failed test keeps its sandbox")
        subprocess.run(["rm", "-rf", info["sandbox"]])


if __name__ == "__main__":
    unittest.main(verbosity=2)
