"""The README's demos. scripts/demo_chain.py (scripts/demo): without xproxy every hop of the
chain sees only the hop before and the delivered message has no verified source; with
xproxy the legacy hop under the shim sees and rejects 127.0.0.66, the verifying hop
verifies 127.0.0.77, and the trace of the delivered message names that client and the hop
that vouched for it. scripts/demo.py (scripts/demo shim) shows the legacy gateway seeing
127.0.0.1 without the shim and each original client with it. Both stop everything they
started."""

import os
import subprocess
import sys
import unittest

import harness


def run_demo(name):
    script = os.path.join(harness.SOURCE_DIR, "scripts", name)
    return subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, XPROXY_BUILD_DIR=harness.BUILD_DIR))


def leftovers():
    """Processes still running from a demo sandbox."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    if b"xproxy-e2e-demo-" in f.read():
                        found.append(pid)
            except OSError:
                pass
    return found


class Demo(unittest.TestCase):
    def test_chain_demo_output(self):
        r = run_demo("demo_chain.py")
        out = r.stdout
        self.assertEqual(r.returncode, 0, out + r.stderr)
        without, with_xproxy = out.split("with xproxy:")
        # Without: A sees the client, B and C only the hop before; nothing to verify.
        self.assertRegex(without, r"127\.0\.0\.66\s+127\.0\.0\.66\s+127\.0\.0\.1\s+127\.0\.0\.1\s+-\s+A: 250")
        self.assertRegex(without, r"127\.0\.0\.77\s+127\.0\.0\.77\s+127\.0\.0\.1\s+127\.0\.0\.1\s+-\s+A: 250")
        self.assertIn("(exit 1)", without)
        self.assertIn("not trusted: the message has no X-Original-Source field", without)
        # With: B under the shim sees and rejects 66; C verifies 77; the trace vouches for it.
        self.assertRegex(with_xproxy, r"127\.0\.0\.66\s+127\.0\.0\.66\s+127\.0\.0\.66\s+-\s+-\s+B: 554 5\.7\.1")
        self.assertRegex(with_xproxy,
                         r"127\.0\.0\.77\s+127\.0\.0\.77\s+127\.0\.0\.77\s+127\.0\.0\.1\s+127\.0\.0\.77 \(verified\)")
        self.assertIn("(exit 0)", with_xproxy)
        self.assertRegex(with_xproxy, r"1: result=ok kid=k1 .* by=milter-a-with\.test source=127\.0\.0\.77:\d+")
        self.assertRegex(with_xproxy, r"verified original client: 127\.0\.0\.77:\d+ helo=client\.example, vouched for "
                                      r"by milter-a-with\.test \(kid=k1\) at hop 4 \(from client\.example "
                                      r"\(unknown \[127\.0\.0\.77\]\) by a-with")
        self.assertIn("result: with xproxy every hop knows the original client", out)
        self.assertEqual(leftovers(), [])

    def test_demo_output(self):
        r = run_demo("demo.py")
        out = r.stdout
        self.assertEqual(r.returncode, 0, out + r.stderr)
        without, with_shim = out.split("with libxproxy-preload.so")
        self.assertRegex(without, r"127\.0\.0\.66\s+127\.0\.0\.1\s+250 2\.0\.0")
        self.assertRegex(without, r"127\.0\.0\.77\s+127\.0\.0\.1\s+250 2\.0\.0")
        self.assertRegex(with_shim, r"127\.0\.0\.66\s+127\.0\.0\.66\s+554 5\.7\.1")
        self.assertRegex(with_shim, r"127\.0\.0\.77\s+127\.0\.0\.77\s+250 2\.0\.0")
        self.assertIn("the legacy gateway sees every original client", out)
        # Nothing left running from the demo's sandbox.
        self.assertEqual(leftovers(), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
