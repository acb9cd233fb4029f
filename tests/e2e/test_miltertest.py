"""xproxy-milter driven by miltertest (the OpenDKIM project's milter test driver) through
the Lua scripts in tests/e2e/data/milter/: inject mode for IPv4 and IPv6 peers, a
connection without an address (NULL hostaddr) with Sendmail's "IPv6:" {client_addr}
macro, removal of forged headers and the insertion at index 0 (each inserted header is
then verified with xproxy-wire); verify mode for a valid header, a bad signature, an
unknown key, an expired header, a header copied from another message, a malformed and a
missing one, under the reject and the accept (strip) actions. Also peers that leave before
or right after negotiating (libmilter calls xxfi_close without private data) or send junk."""

import os
import re
import socket
import struct
import subprocess
import time

from harness import E2ETestCase, SOURCE_DIR, binary, main, read_text, wait_until, wire
from milter_util import KEYRING, OTHER_KEYRING, UNKNOWN_KEYRING, Milter

DATA = os.path.join(SOURCE_DIR, "tests", "e2e", "data", "milter")
MID = "<m1.2026@client.example>"
SENDER = "<alice@sender.example>"


def unfold(text):
    return re.sub(r"\r?\n[ \t]+", " ", text.strip())


class MilterTest(E2ETestCase):
    def miltertest(self, script, milter, **defs):
        argv = ["miltertest", "-s", os.path.join(DATA, script), "-D", "sock=" + milter.miltertest, "-D", "dir=" + DATA]
        for k, v in defs.items():
            argv += ["-D", "%s=%s" % (k, v)]
        r = subprocess.run(argv, capture_output=True, timeout=60)
        out = r.stdout.decode("utf-8", "replace")
        self.assertEqual(r.returncode, 0, "%s %s:\n%s%s" % (script, defs, out, r.stderr.decode("utf-8", "replace")))
        self.assertIn("PASS", out)
        return out

    def sign(self, ring_text, ip="127.0.0.66", mid=MID, sender=SENDER, t=None):
        ring = self.sandbox.write("sign-%d.keyring" % len(os.listdir(self.sandbox.path())), ring_text, mode=0o600)
        args = ["trace-sign", "--keyring", ring, "--ip", ip, "--port", "4242", "--sender", sender, "--message-id", mid,
                "--binding", "mid", "--by", "gw-a.test"]
        if t is not None:
            args += ["--time", str(t)]
        rc, out, err = wire(args)
        self.assertEqual(rc, 0, err)
        value = unfold(out.decode())
        self.assertTrue(value.startswith("X-Original-Source:"), value)
        return value.split(":", 1)[1].strip()

    def verify_header(self, ring, value, mid=MID, sender=SENDER):
        return wire(["trace-verify", "--keyring", ring, "--sender", sender, "--message-id", mid],
                    ("X-Original-Source: " + value).encode())

    def test_inject(self):
        m = Milter(self.sandbox, self.procs, "inj", "inject")
        rows = [
            # name, ip for conninfo, {client_addr} macro, forged fields, want ip= in the header
            ("ipv4", "127.0.0.66", "", 0, "127.0.0.66"),
            ("ipv4_forged", "127.0.0.66", "", 3, "127.0.0.66"),
            ("ipv6", "2001:db8::5", "", 1, "2001:db8::5"),
            ("null_hostaddr_sendmail_ipv6", "unspec", "IPv6:2001:db8::9", 2, "2001:db8::9"),
            ("null_hostaddr_nothing_known", "unspec", "", 1, None),
        ]
        for name, ip, client_addr, forged, want_ip in rows:
            with self.subTest(name):
                out = self.miltertest("inject.lua", m, ip=ip, host="h.example", client_addr=client_addr,
                                      forged=forged, mid=MID, sender=SENDER)
                value = unfold(out.split("HEADER:", 1)[1].split("\nPASS", 1)[0])
                self.assertNotIn("10.9.9.", value)
                rc, vout, err = self.verify_header(m.ring, value)
                self.assertEqual(rc, 0, vout.decode() + err)
                if want_ip:
                    self.assertIn(("ip=" + want_ip).encode(), vout)
                else:
                    self.assertNotIn(b"ip=", value.encode())
                # A header copied into another message does not verify.
                rc, vout, _ = self.verify_header(m.ring, value, mid="<other@client.example>")
                self.assertEqual(rc, 1)
                self.assertIn(b"wrong_binding", vout)
        lines = m.messages()
        self.assertEqual(len(lines), len(rows), lines)
        self.assertIn("outcome=injected removed=3", lines[1])
        self.assertIn('client="IPv6:2001:db8::9" original=[2001:db8::9]:2525', lines[3])

    def test_peers_that_leave_early_or_send_junk_cost_only_their_connection(self):
        # xxfi_close without a Session (the peer left before negotiating), close right after
        # negotiate, a packet with an absurd length and an unknown command: each ends only
        # its own connection, and the filter goes on signing.
        m = Milter(self.sandbox, self.procs, "early", "inject")

        def packet(cmd, data=b""):
            return struct.pack("!I", len(data) + 1) + cmd + data

        optneg = packet(b"O", struct.pack("!III", 6, 0x1ff, 0x1fffff))
        for name, payload, want_reply in (("silent", b"", False), ("negotiate only", optneg, True),
                                          ("absurd length", struct.pack("!I", 0x7fffffff) + b"O", False),
                                          ("unknown command", optneg + packet(b"\x01", b"junk"), True)):
            with self.subTest(name):
                s = socket.create_connection(("127.0.0.1", m.port), timeout=10)
                s.sendall(payload)
                if want_reply:  # libmilter answers the negotiation before the next packet
                    head = s.recv(5)
                    self.assertEqual(len(head), 5, name)
                    self.assertEqual(head[4:5], b"O", name)
                if name in ("absurd length", "unknown command"):  # the filter hangs up
                    s.settimeout(10)
                    while s.recv(4096):
                        pass
                s.close()
        time.sleep(0.5)
        self.assertIsNone(m.proc.poll(), "the filter died")
        out = self.miltertest("inject.lua", m, ip="127.0.0.66", host="h.example", client_addr="", forged=1, mid=MID,
                              sender=SENDER)
        value = unfold(out.split("HEADER:", 1)[1].split("\nPASS", 1)[0])
        rc, vout, err = self.verify_header(m.ring, value)
        self.assertEqual(rc, 0, vout.decode() + err)
        self.assertIn(b"ip=127.0.0.66", vout)
        self.assertNotIn("internal_error", open(m.log).read())
        self.assertEqual(len(m.messages()), 1)

    def test_inherited_listeners(self):
        """--listen fd:N and --listen systemd (socket activation): libmilter serves the
        inherited descriptor."""
        for kind, want in ((True, r"listen=fd:\d+ "), ("systemd", r"listen=systemd ")):
            with self.subTest(str(kind)):
                m = Milter(self.sandbox, self.procs, "inj-%s" % kind, "inject", fd=kind)
                out = self.miltertest("inject.lua", m, ip="127.0.0.66", host="h.example", client_addr="", forged=1,
                                      mid=MID, sender=SENDER)
                value = unfold(out.split("HEADER:", 1)[1].split("\nPASS", 1)[0])
                rc, vout, err = self.verify_header(m.ring, value)
                self.assertEqual(rc, 0, vout.decode() + err)
                self.assertRegex(m.log_text(), "event=start mode=inject " + want)
                self.assertEqual(len(m.messages()), 1)
                m.stop()

    def test_inherited_unix_socket_cannot_be_blocked_by_a_local_user(self):
        """A unix socket from systemd: libmilter needs a placeholder socket of its own first.
        A local user who creates the name such a placeholder would get in /tmp must not be
        able to stop the filter from starting."""
        path = self.sandbox.path("activated.sock")
        wrapper = ("import os, socket, sys\n"
                   "os.makedirs('/tmp/xproxy-milter.%d.placeholder' % os.getpid(), exist_ok=True)\n"
                   "s = socket.socket(socket.AF_UNIX)\n"
                   "s.bind(sys.argv[1]); s.listen(16); os.chmod(sys.argv[1], 0o660)\n"
                   "os.dup2(s.fileno(), 3); os.set_inheritable(3, True)\n"
                   "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid()))\n"
                   "os.execv(sys.argv[2], sys.argv[2:])\n")
        ring = self.sandbox.write("act.keyring", KEYRING, mode=0o600)
        log = self.sandbox.path("act.log")
        self.sandbox.logs.append(log)
        with open(log, "wb") as out:
            p = self.procs.start("act", ["/usr/bin/python3", "-c", wrapper, path, binary("milter/xproxy-milter"),
                                         "--mode", "inject", "--keyring", ring, "--listen", "systemd",
                                         "--log", "stderr"], stdout=out)
        try:
            wait_until(lambda: "event=start" in read_text(log) or p.poll() is not None, 15, 0.05, "start")
            self.assertIsNone(p.poll(), read_text(log))

            class Sock:
                miltertest = "unix:" + path
            out = self.miltertest("inject.lua", Sock, ip="127.0.0.66", host="h.example", client_addr="", forged=0,
                                  mid=MID, sender=SENDER)
            value = unfold(out.split("HEADER:", 1)[1].split("\nPASS", 1)[0])
            rc, vout, err = self.verify_header(ring, value)
            self.assertEqual(rc, 0, vout.decode() + err)
        finally:
            os.rmdir("/tmp/xproxy-milter.%d.placeholder" % p.pid)

    def verify_rows(self, m, reject):
        now = int(time.time())
        rows = [
            ("valid", self.sign(KEYRING), "pass", "verified"),
            ("bad_signature", self.sign(OTHER_KEYRING), "fail", "verdict=bad_signature"),
            ("unknown_key", self.sign(UNKNOWN_KEYRING), "fail", "verdict=unknown_key"),
            ("expired", self.sign(KEYRING, t=now - 8 * 86400), "fail", "verdict=expired"),
            ("copied", self.sign(KEYRING, mid="<another@client.example>"), "fail", "verdict=wrong_binding"),
            ("malformed", "v=1; ip=127.0.0.66", "fail", "verdict=malformed"),
            ("missing", "", "none", "outcome=missing"),
        ]
        for name, hdr, result, logged in rows:
            with self.subTest(name):
                want = "pass" if result == "pass" else ("refused" if reject else "stripped")
                before = len(m.messages())
                out = self.miltertest("verify.lua", m, hdr=hdr, mid=MID, sender=SENDER, want=want)
                if want != "refused":
                    self.assertIn("RESULT: " + result, out)
                lines = m.messages()
                self.assertEqual(len(lines), before + 1)
                self.assertIn(logged, lines[-1])

    def test_verify_reject(self):
        m = Milter(self.sandbox, self.procs, "ver", "verify")
        self.verify_rows(m, reject=True)

    def test_verify_accept_strips(self):
        m = Milter(self.sandbox, self.procs, "ver", "verify", ["--on-invalid", "accept", "--on-missing", "accept"],
                   unix=True)
        self.verify_rows(m, reject=False)


if __name__ == "__main__":
    main()
