"""The harness leaves no process behind: a child test run starts smtp-sink, Postfix (and
through one message its smtpd, cleanup, qmgr and smtp daemons) and HAProxy, writes every
PID it knows to a file, then fails, raises, passes, or is killed with SIGTERM/SIGINT.
Afterwards none of those processes runs, and the sandbox is kept exactly when the run
did not pass."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import harness

CHILD = r'''
import json, os, sys, time, unittest
sys.path.insert(0, %(dir)r)
from harness import *

class Child(E2ETestCase):
    def test_child(self):
        sink = SmtpSink(self.sandbox, self.procs)
        port = free_port()
        pf = Postfix(self.sandbox, self.procs, "pf", port, relay_port=sink.port).start()
        HAProxy(self.sandbox, self.procs, port, mode=None)
        self.assertIsNotNone(queued(send_mail(port)))
        sink.wait_messages(1)
        info = {"recorded": self.procs.pids(), "master": pf.master_pid, "daemons": pf.daemon_pids(),
                "sandbox": self.sandbox.root, "pid": os.getpid()}
        with open(%(out)r + ".tmp", "w") as f:
            json.dump(info, f)
        os.rename(%(out)r + ".tmp", %(out)r)
        how = %(how)r
        if how == "fail":
            self.assertEqual(1, 2, "deliberate failure")
        elif how == "raise":
            raise RuntimeError("deliberate exception")
        elif how == "wait":
            time.sleep(120)

unittest.main()
'''


class HarnessCleanup(unittest.TestCase):
    def run_child(self, how, signum=None):
        out = os.path.join(tempfile.mkdtemp(prefix="xproxy-cleanup-"), "pids.json")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", os.path.dirname(out)]))
        script = CHILD % {"dir": os.path.dirname(os.path.abspath(__file__)), "out": out, "how": how}
        child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        try:
            if signum is not None:
                harness.wait_until(lambda: os.path.exists(out) or child.poll() is not None, 60, 0.05, "child PIDs")
                child.send_signal(signum)
            stdout, stderr = child.communicate(timeout=120)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        self.assertTrue(os.path.exists(out), "child never got going:\n" + stderr)
        with open(out) as f:
            info = json.load(f)
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", info["sandbox"]]))
        return child.returncode, stderr, info

    def assert_nothing_left(self, info):
        # sink, postfix-script, master, HAProxy; then master's children.
        self.assertEqual(len(info["recorded"]), 4, info)
        self.assertIn(info["master"], info["recorded"])
        self.assertGreaterEqual(len(info["daemons"]), 3, "smtpd, qmgr, cleanup ... expected: %s" % info)
        everything = info["recorded"] + info["daemons"]
        # stop_all has returned before the child exits: no grace period needed.
        alive = [p for p in everything if harness.pid_alive(p)]
        self.assertEqual(alive, [], "still running after the child test ended: %s" % alive)
        for pgid in info["recorded"]:
            self.assertEqual(harness.group_members(pgid), [], "process group %d not empty" % pgid)

    def test_failed_test_stops_everything_and_keeps_sandbox(self):
        rc, stderr, info = self.run_child("fail")
        self.assertEqual(rc, 1, stderr)
        self.assertIn("deliberate failure", stderr)
        self.assert_nothing_left(info)
        self.assertIn("kept %s" % info["sandbox"], stderr)
        self.assertTrue(os.path.isdir(info["sandbox"]), "a failed test keeps its sandbox")
        # The logs it registered are printed: Postfix's maillog among them.
        self.assertIn("daemon started -- version", stderr)

    def test_exception_stops_everything(self):
        rc, stderr, info = self.run_child("raise")
        self.assertEqual(rc, 1, stderr)
        self.assertIn("RuntimeError: deliberate exception", stderr)
        self.assert_nothing_left(info)
        self.assertTrue(os.path.isdir(info["sandbox"]))

    def test_passing_test_removes_sandbox(self):
        rc, stderr, info = self.run_child("pass")
        self.assertEqual(rc, 0, stderr)
        self.assert_nothing_left(info)
        self.assertFalse(os.path.exists(info["sandbox"]), "a passing test removes its sandbox")

    def test_sigterm_of_the_runner(self):
        rc, stderr, info = self.run_child("wait", signal.SIGTERM)
        self.assertEqual(rc, 128 + signal.SIGTERM, stderr)
        self.assert_nothing_left(info)
        self.assertIn("kept %s" % info["sandbox"], stderr)

    def test_sigint_of_the_runner(self):
        start = time.time()
        rc, stderr, info = self.run_child("wait", signal.SIGINT)
        self.assertEqual(rc, 128 + signal.SIGINT, stderr)
        self.assertLess(time.time() - start, 60, "the runner must not finish its 120 s sleep")
        self.assert_nothing_left(info)


if __name__ == "__main__":
    unittest.main(verbosity=2)
