"""Readiness for systemd's Type=notify, without systemd: a datagram socket with SO_PASSCRED
stands in for the service manager's notify socket (NOTIFY_SOCKET names it) and records who
sent what. Each daemon (xproxy-milter, xproxy-policyd, xproxyd) must send READY=1 with a
STATUS= naming its listeners from its own PID, only once it serves: a client that connects
right after READY=1, without a retry, is served. SIGTERM must bring STOPPING=1 before the
daemon exits (also right after READY=1); a SIGHUP reload of xproxy-policyd RELOADING=1, then
READY=1 again, with a status that says so when the new configuration was refused."""

import os
import re
import signal
import socket
import struct

from harness import E2ETestCase, binary, free_port, main, read_text, wait_for_log
from milter_util import KEYRING, milter_session

DIRECTORY = "domain example.com\nuser alice@example.com\n"
REQUEST = (b"request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address=127.0.0.66\n"
           b"queue_id=\ninstance=1.2.3\nsender=a@sender.example\nrecipient=%s\n\n")


class NotifySocket:
    """The service manager's side: next() returns (sender PID, text) of each datagram."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)  # the kernel adds the sender's pid

    def next(self, timeout=20.0):
        self.sock.settimeout(timeout)
        msg, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = next((struct.unpack("3i", d)[0] for level, kind, d in anc
                    if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS), None)
        return pid, msg.decode()

    def close(self):
        self.sock.close()


class DaemonNotify(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.notify = NotifySocket(self.sandbox.path("notify.sock"))
        self.addCleanup(self.notify.close)

    def start(self, name, argv):
        log = self.sandbox.path(name + ".log")
        self.sandbox.logs.append(log)
        with open(log, "wb") as out:
            return self.procs.start(name, argv, stdout=out, env=dict(os.environ, NOTIFY_SOCKET=self.notify.path))

    def expect(self, proc, prefix):
        """The next datagram: from proc itself, starting with prefix; returns its text."""
        pid, text = self.notify.next()
        self.assertEqual(pid, proc.pid, text)
        self.assertTrue(text.startswith(prefix), text)
        return text

    def stop(self, proc):
        os.kill(proc.pid, signal.SIGTERM)
        self.assertEqual(self.expect(proc, "STOPPING=1"), "STOPPING=1\nSTATUS=stopping")
        proc.wait(timeout=20)

    def milter_argv(self, port):
        ring = self.sandbox.write("ring", KEYRING, mode=0o600)
        return [binary("milter/xproxy-milter"), "--mode", "inject", "--keyring", ring, "--signer", "m.test",
                "--listen", "inet:127.0.0.1:%d" % port, "--allow-peers", "127.0.0.1/32", "--log", "stderr"]

    def policyd_argv(self, port, path):
        config = self.sandbox.write("policyd.conf", "policy = vdomains\ndirectory = %s\n"
                                    % self.sandbox.write("directory.txt", DIRECTORY))
        return [binary("policyd/xproxy-policyd"), "--config", config, "--listen", "inet:127.0.0.1:%d" % port,
                "--listen", "unix:" + path, "--socket-group", "root", "--allow-peers", "127.0.0.1/32",
                "--log", "stderr", "--watch-interval", "0"]

    def xproxyd_argv(self, port):
        return [binary("xproxyd/xproxyd"), "--listen", "inet:127.0.0.1:%d" % port,
                "--downstream", "d destinations=127.0.0.1:%d encoding=none" % free_port(),
                "--spool-dir", self.sandbox.mkdir("spool", mode=0o700), "--hostname", "xproxyd.test.invalid",
                "--log", "stderr", "--threads", "2"]

    def test_milter(self):
        port = free_port()
        p = self.start("milter", self.milter_argv(port))
        self.assertEqual(self.expect(p, "READY=1"),
                         "READY=1\nSTATUS=listening on inet:127.0.0.1:%d (mode inject)" % port)
        got = milter_session(("127.0.0.1", port), source="127.0.0.1")  # at once: no wait, no retry
        self.assertIn("X-Original-Source", got)
        self.stop(p)

    def test_policyd(self):
        port = free_port()
        path = self.sandbox.path("policyd.sock")
        p = self.start("policyd", self.policyd_argv(port, path))
        status = "STATUS=listening on inet:127.0.0.1:%d, unix:%s" % (port, path)
        self.assertEqual(self.expect(p, "READY=1"), "READY=1\n" + status)
        for family, address in (socket.AF_INET, ("127.0.0.1", port)), (socket.AF_UNIX, path):
            with socket.socket(family, socket.SOCK_STREAM) as s:  # at once: no wait, no retry
                s.settimeout(10)
                s.connect(address)
                s.sendall(REQUEST % b"nobody@example.com")
                self.assertEqual(s.recv(1000), b"action=550 5.1.1 User unknown in virtual domain\n\n")
        # A reload: RELOADING=1 (with the time), then READY=1 with the same status.
        os.kill(p.pid, signal.SIGHUP)
        reloading = self.expect(p, "RELOADING=1\nMONOTONIC_USEC=")
        self.assertTrue(reloading.endswith("\nSTATUS=reloading (SIGHUP)"), reloading)
        self.assertEqual(self.expect(p, "READY=1"), "READY=1\n" + status)
        # A broken config file: the old configuration stays, and the status says so; the
        # log names the file and line.
        config = self.sandbox.path("policyd.conf")
        with open(config, "a") as f:
            f.write("# a typo:\nwatch-intervall = 5\n")
        os.kill(p.pid, signal.SIGHUP)
        self.expect(p, "RELOADING=1\n")
        self.assertEqual(self.expect(p, "READY=1"), "READY=1\n" + status +
                         "; reload failed, the previous configuration stays in force")
        # (the log is written by a thread of its own: it may lag behind the datagram)
        wait_for_log(self.sandbox.path("policyd.log"),
                     re.escape("event=reload_failed trigger=SIGHUP error=\"%s:4: unknown option 'watch-intervall'\""
                               % config))
        self.stop(p)

    def test_xproxyd(self):
        port = free_port()
        p = self.start("xproxyd", self.xproxyd_argv(port))
        self.assertEqual(self.expect(p, "READY=1"), "READY=1\nSTATUS=listening on inet:127.0.0.1:%d" % port)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:  # at once: no wait, no retry
            self.assertTrue(s.recv(1000).startswith(b"220 xproxyd.test.invalid"))
        self.stop(p)

    def test_stop_right_after_ready(self):
        # SIGTERM at once after READY=1 is handled too: STOPPING=1, exit status 0.
        for name in ("milter", "policyd", "xproxyd"):
            with self.subTest(name):
                port = free_port()
                argv = {"milter": lambda: self.milter_argv(port),
                        "policyd": lambda: self.policyd_argv(port, self.sandbox.path("stop.sock")),
                        "xproxyd": lambda: self.xproxyd_argv(port)}[name]()
                p = self.start(name + "-stop", argv)
                self.expect(p, "READY=1")
                self.stop(p)
                self.assertEqual(p.returncode, 0)

    def test_nothing_sent_before_a_failed_start(self):
        # A configuration refused at start-up: exit status 1 and not a word to the manager.
        p = self.start("refused", [binary("xproxyd/xproxyd"), "--listen", "unix:/run/x.sock",
                                   "--downstream", "d destinations=127.0.0.1:25 encoding=none",
                                   "--log", "stderr"])
        self.assertEqual(p.wait(timeout=20), 1)
        self.assertIn("unix sockets are not supported", read_text(self.sandbox.path("refused.log")))
        self.notify.sock.setblocking(False)
        with self.assertRaises(BlockingIOError):
            self.notify.sock.recv(4096)


if __name__ == "__main__":
    main()
