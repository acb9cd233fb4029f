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


# Opens a listening TCP socket on 127.0.0.1:argv[1] and execs argv[3:] with "fd:N" replaced
# by its descriptor (argv[2] == "fd"), or as systemd does it (argv[2] == "systemd"): the
# socket on descriptor 3, LISTEN_FDS=1, LISTEN_PID = the (unchanged by exec) process id.
FD_WRAPPER = """import os, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
fd = s.fileno()
if sys.argv[2] == "systemd":
    if fd != 3:
        os.dup2(fd, 3)
        fd = 3
    os.environ["LISTEN_FDS"] = "1"
    os.environ["LISTEN_PID"] = str(os.getpid())
os.set_inheritable(fd, True)
spec = "systemd" if sys.argv[2] == "systemd" else "fd:%d" % fd
args = [a.replace("fd:N", spec) for a in sys.argv[3:]]
os.execv(args[0], args)
"""


class Milter:
    def __init__(self, sandbox, procs, name, mode, extra=(), unix=False, exe=None, ring=None, port=None, env=None,
                 fd=False):
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
        if fd:  # the listener arrives as an inherited descriptor: fd=True (fd:N) or "systemd"
            self.argv[self.argv.index(self.listen)] = "fd:N"
            self.argv = ["/usr/bin/python3", "-c", FD_WRAPPER, str(self.port),
                         "systemd" if fd == "systemd" else "fd"] + self.argv
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
