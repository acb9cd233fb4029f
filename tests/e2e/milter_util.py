"""milter_util: start xproxy-milter for the end-to-end tests (not a test itself).

start_milter() writes a key ring (mode 0600) into the sandbox, starts the binary from
$XPROXY_BUILD_DIR (or an explicit path, e.g. a sanitizer build) on a free TCP port or a
unix socket, logs to a file, and waits until it accepts connections."""

import os
import socket

from harness import binary, free_port, wait_until

KEYRING = "k1 hex:00112233445566778899aabbccddeeff\n"
OTHER_KEYRING = "k1 hex:0102030405060708090a0b0c0d0e0f10\n"  # same id, other secret
UNKNOWN_KEYRING = "k9 hex:00112233445566778899aabbccddeeff\n"


class Milter:
    def __init__(self, sandbox, procs, name, mode, extra=(), unix=False, exe=None, ring=None, port=None, env=None):
        self.sandbox, self.procs, self.name = sandbox, procs, name
        self.ring = ring or sandbox.write("%s.keyring" % name, KEYRING, mode=0o600)
        self.log = sandbox.path("%s.log" % name)
        sandbox.logs.append(self.log)
        if unix:
            self.path = sandbox.path("%s.sock" % name)
            self.listen = "unix:" + self.path
            self.postfix = "unix:" + self.path
            self.miltertest = "unix:" + self.path
        else:
            self.port = port or free_port()
            self.listen = "inet:127.0.0.1:%d" % self.port
            self.postfix = "inet:127.0.0.1:%d" % self.port
            self.miltertest = "inet:%d@127.0.0.1" % self.port
        self.argv = [exe or binary("milter/xproxy-milter"), "--mode", mode, "--keyring", self.ring,
                     "--listen", self.listen, "--signer", "%s.test" % name, "--socket-mode", "0666"]
        self.argv += list(extra) if "--log" in extra else ["--log", "stderr"] + list(extra)
        self.env = env
        self.proc = None
        self.start()

    def start(self):
        with open(self.log, "ab") as out:
            self.proc = self.procs.start(self.name, self.argv, stdout=out, env=self.env)
        wait_until(self.ready, 15, 0.05, "%s accepting connections" % self.name)

    def ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("%s exited with %s" % (self.name, self.proc.returncode))
        fam = socket.AF_UNIX if self.listen.startswith("unix:") else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        try:
            s.connect(self.path if fam == socket.AF_UNIX else ("127.0.0.1", self.port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def stop(self):
        self.procs.stop(self.proc)

    def log_text(self):
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def messages(self):
        return [l for l in self.log_text().splitlines() if "event=message" in l]
