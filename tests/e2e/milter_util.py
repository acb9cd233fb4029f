"""milter_util: start xproxy-milter for the end-to-end tests (not a test itself).

start_milter() writes a key ring (mode 0600) into the sandbox, starts the binary from
$XPROXY_BUILD_DIR (or an explicit path, e.g. a sanitizer build) on a free TCP port or a
unix socket, logs to a file, and waits until it accepts connections. A TCP milter serves
only the peers in `allow` (default 127.0.0.1/32: the tests' MTAs connect from there); a
unix socket gets the daemon's defaults (group postfix, mode 0660).

milter_session() speaks the milter protocol itself, as any local process could: it is
the client of the tests that ask who may obtain a signature."""

import os
import socket
import struct

from harness import binary, free_port, read_text, wait_until

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

# argv: WHERE MODE COMMAND...: listens on the unix socket WHERE ("@NAME": abstract) with
# permissions MODE (octal) and runs COMMAND with it as descriptor 3, the way systemd
# passes a ListenStream= socket (LISTEN_FDS, LISTEN_PID).
UNIX_WRAPPER = """import os, socket, sys
where, mode = sys.argv[1], int(sys.argv[2], 8)
s = socket.socket(socket.AF_UNIX)
s.bind("\\0" + where[1:] if where.startswith("@") else where)
if not where.startswith("@"):
    os.chmod(where, mode)
s.listen(64)
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[3], sys.argv[3:])
"""

# Socket directories a signer refuses (name, owner uid, mode, words of the error): anyone
# but root who may rename entries there could swap the socket for a symlink before root
# gives it away. Used by the milter and policyd tests.
UNSAFE_SOCKET_DIRS = [("owned-by-nobody", 65534, 0o750, "may be written by its owner (uid 65534)"),
                      ("group-writable", 0, 0o770, "may be written by its group"),
                      ("sticky-world-writable", 0, 0o1777, "may be written by every local user")]



class StartRefusals:
    """Mixed into the signers' access tests (E2ETestCase): a daemon that must refuse to
    start, and the socket directories it must refuse."""

    def refused(self, name, argv):
        """Starts argv (the real start-up, not --check-config) and returns its log once it
        exited with status 1."""
        log = self.sandbox.path("%s.log" % name)
        self.sandbox.logs.append(log)
        with open(log, "wb") as out:
            p = self.procs.start(name, argv, stdout=out)
        self.assertEqual(p.wait(timeout=20), 1, read_text(log))
        return read_text(log)

    def unsafe_socket_dirs(self):
        """(name, directory, words of the error) for each of UNSAFE_SOCKET_DIRS, made in the
        sandbox with its owner and mode."""
        for name, uid, mode, words in UNSAFE_SOCKET_DIRS:
            d = self.sandbox.mkdir(name, mode=mode)
            os.chown(d, uid, 0)
            os.chmod(d, mode)
            yield name, d, words

    def assert_open_inherited_sockets_refused(self, exe, name):
        """exe (a signer started with --listen systemd) refuses an inherited abstract socket,
        as from ListenStream=@name, and sockets of modes 0666 (systemd's default without
        SocketMode=) and 0604: each would let every local user connect."""
        abstract = "@%s-test-%d" % (name, os.getpid())
        log = self.refused("abstract", ["/usr/bin/python3", "-c", UNIX_WRAPPER, abstract, "0660"] + exe)
        self.assertIn("unix listener %s is an abstract socket" % abstract, log)
        self.assertIn("SocketMode=0660", log)
        for mode in ("0666", "0604"):
            path = self.sandbox.path("i%s.sock" % mode)
            log = self.refused("inherited" + mode, ["/usr/bin/python3", "-c", UNIX_WRAPPER, path, mode] + exe)
            self.assertIn("unix listener %s has mode %s, so every local user could connect" % (path, mode), log)

class Milter:
    def __init__(self, sandbox, procs, name, mode, extra=(), unix=False, exe=None, ring=None, port=None, env=None,
                 fd=False, allow="127.0.0.1/32"):
        self.sandbox, self.procs, self.name = sandbox, procs, name
        self.ring = ring or sandbox.write("%s.keyring" % name, KEYRING, mode=0o600)
        self.log = sandbox.path("%s.log" % name)
        sandbox.logs.append(self.log)
        if unix:
            # unix=True: a socket in the sandbox; unix=(queue_directory, relative path): the
            # socket inside a Postfix queue directory, named relative to it as a chrooted
            # Postfix needs it.
            if isinstance(unix, tuple):
                self.path = os.path.join(unix[0], unix[1])
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                self.postfix = "unix:" + unix[1]
            else:
                self.path = sandbox.path("%s.sock" % name)
                self.postfix = "unix:" + self.path
            self.listen = "unix:" + self.path
            self.miltertest = "unix:" + self.path
        else:
            self.port = port or free_port()
            self.listen = "inet:127.0.0.1:%d" % self.port
            self.postfix = "inet:127.0.0.1:%d" % self.port
            self.miltertest = "inet:%d@127.0.0.1" % self.port
        self.argv = [exe or binary("milter/xproxy-milter"), "--mode", mode, "--keyring", self.ring,
                     "--listen", self.listen, "--signer", "%s.test" % name]
        if not unix and allow:
            self.argv += ["--allow-peers", allow]
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


def _packet(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd + data


def _read_packet(s):
    head = b""
    while len(head) < 4:
        chunk = s.recv(4 - len(head))
        if not chunk:
            raise ConnectionError("milter closed the connection")
        head += chunk
    (n,) = struct.unpack(">I", head)
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        if not chunk:
            raise ConnectionError("milter closed the connection")
        body += chunk
    return body[:1], body[1:]


def milter_session(connect_to, source=None, client_ip="198.51.100.7", sender="<a@sender.example>",
                   mid="<m@client.example>"):
    """One message through a milter, as a local process that is not the MTA would send it:
    negotiate, connect (claiming client_ip), MAIL, one Message-ID header, end of message.
    connect_to is ("127.0.0.1", port) or a unix path; source binds the client address.
    Returns the inserted header values {name: value}; raises ConnectionError when the
    milter closes the connection instead of answering."""
    fam = socket.AF_UNIX if isinstance(connect_to, str) else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        if source:
            s.bind((source, 0))
        s.connect(connect_to)
        # version 6, every action, no step skipped (so every command gets an answer)
        s.sendall(_packet(b"O", struct.pack(">III", 6, 0x1FF, 0)))
        cmd, _ = _read_packet(s)
        if cmd != b"O":
            raise AssertionError("negotiate answered %r" % cmd)
        ip = client_ip.encode()
        s.sendall(_packet(b"C", b"client.example\0" + b"4" + struct.pack(">H", 4242) + ip + b"\0"))
        _read_packet(s)
        s.sendall(_packet(b"H", b"client.example\0"))
        _read_packet(s)
        s.sendall(_packet(b"M", sender.encode() + b"\0"))
        _read_packet(s)
        s.sendall(_packet(b"R", b"<r@rcpt.example>\0"))
        _read_packet(s)
        s.sendall(_packet(b"L", b"Message-ID\0" + mid.encode() + b"\0"))
        _read_packet(s)
        s.sendall(_packet(b"N"))
        _read_packet(s)
        s.sendall(_packet(b"E"))
        inserted = {}
        while True:
            cmd, data = _read_packet(s)
            if cmd in (b"i", b"h"):  # insert header: index (i only), name, value
                if cmd == b"i":
                    data = data[4:]
                name, value = data.split(b"\0")[:2]
                inserted[name.decode()] = value.decode()
            elif cmd in (b"a", b"c", b"r", b"t", b"y"):
                return inserted
    finally:
        s.close()
