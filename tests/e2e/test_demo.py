"""The README's demo (scripts/demo.py) shows the legacy gateway seeing 127.0.0.1 without
the shim and each original client with it, and stops everything it started."""

import os
import subprocess
import sys
import unittest

import harness


class Demo(unittest.TestCase):
    def test_demo_output(self):
        script = os.path.join(harness.SOURCE_DIR, "scripts", "demo.py")
        r = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, XPROXY_BUILD_DIR=harness.BUILD_DIR))
        out = r.stdout
        self.assertEqual(r.returncode, 0, out + r.stderr)
        without, with_shim = out.split("with libxproxy-preload.so")
        self.assertRegex(without, r"127\.0\.0\.66\s+127\.0\.0\.1\s+250 2\.0\.0")
        self.assertRegex(without, r"127\.0\.0\.77\s+127\.0\.0\.1\s+250 2\.0\.0")
        self.assertRegex(with_shim, r"127\.0\.0\.66\s+127\.0\.0\.66\s+554 5\.7\.1")
        self.assertRegex(with_shim, r"127\.0\.0\.77\s+127\.0\.0\.77\s+250 2\.0\.0")
        self.assertIn("the legacy gateway sees every original client", out)
        # Nothing left running from the demo's sandbox.
        leftovers = []
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open("/proc/%s/cmdline" % pid, "rb") as f:
                        if b"xproxy-e2e-demo-" in f.read():
                            leftovers.append(pid)
                except OSError:
                    pass
        self.assertEqual(leftovers, [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
