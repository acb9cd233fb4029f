"""xproxy-policyd under systemd socket activation (--listen systemd), without systemd as
PID 1: a small wrapper does what the service manager does (bind and listen, fork, move the
socket to descriptor 3, set LISTEN_FDS=1 and LISTEN_PID to the child's own PID, exec), and
systemd's own systemd-socket-activate does it too. Each time a real policy request must be
answered through the inherited socket (TCP and unix), a LISTEN_PID naming another process
must be refused, and the packaged units must pass `systemd-analyze verify` and their
ExecStart= line must serve through a socket passed the way the .socket unit describes."""

import os
import re
import shlex
import socket
import subprocess
import sys

from harness import E2ETestCase, SOURCE_DIR, binary, free_port, main, read_text, wait_for_log, wait_for_port

# argv: inet PORT | unix PATH | bound PORT (bound, not listening), then LISTEN_PID ("child" = the exec'd child's own PID, as
# systemd sets it, or a number), then the command. Exits with the child's status.
WRAPPER = r"""
import os, socket, sys
kind, where, listen_pid, argv = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
if kind in ("inet", "bound"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(where)))
else:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(where)
    os.chmod(where, 0o660)  # SocketMode=0660: a socket open to "other" is refused
if kind != "bound":
    s.listen(64)
pid = os.fork()
if pid == 0:
    if s.fileno() != 3:
        os.dup2(s.fileno(), 3)
    os.set_inheritable(3, True)
    env = dict(os.environ, LISTEN_FDS="1", LISTEN_FDNAMES="xproxy-policyd.socket",
               LISTEN_PID=str(os.getpid()) if listen_pid == "child" else listen_pid)
    os.execve(argv[0], argv, env)
s.close()
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""

DIRECTORY = "domain example.com\nuser alice@example.com\n"
REQUEST = (b"request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address=127.0.0.66\n"
           b"queue_id=\ninstance=1.2.3\nsender=a@sender.example\nrecipient=%s\n\n")
UNIT_TEMPLATES = os.path.join(SOURCE_DIR, "packaging", "systemd")
# The paths CMake puts into the unit templates for the Debian packages (debian/rules).
DEBIAN_PATHS = {"@XPROXY_SBINDIR@": "/usr/sbin", "@XPROXY_CONFDIR@": "/etc/xproxy",
                "@XPROXY_POSTFIX_SOCKET_DIR@": "/var/spool/postfix/xproxy", "@XPROXY_SPOOLDIR@": "/var/spool/xproxyd"}


def unit_text(name):
    """Unit NAME as the Debian packages install it: its template with Debian's paths."""
    path = os.path.join(UNIT_TEMPLATES, name + ".in")
    if not os.path.isfile(path):
        raise AssertionError("no unit template %s" % path)
    text = read_text(path)
    for key, value in DEBIAN_PATHS.items():
        text = text.replace(key, value)
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise AssertionError("%s: placeholders left: %s" % (path, left))
    return text


def ask(family, address, recipient):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(address)
        s.sendall(REQUEST % recipient)
        got = b""
        while not got.endswith(b"\n\n"):
            chunk = s.recv(1000)
            if not chunk:
                break
            got += chunk
        return got


def unit_value(name, key):
    """The value of the last `key=` line of unit NAME."""
    values = [m.group(1) for m in re.finditer(r"^%s=(.*)$" % re.escape(key), unit_text(name), re.M)]
    if not values:
        raise AssertionError("%s has no %s=" % (name, key))
    return values[-1]


class PolicydSystemd(E2ETestCase):
    def daemon_args(self):
        self.dir_file = self.sandbox.write("directory.txt", DIRECTORY)
        return ["--log", "stderr", "--policy", "vdomains", "--directory", self.dir_file]

    def start_wrapped(self, kind, where, argv, listen_pid="child"):
        self.log = self.sandbox.path("policyd.log")
        self.sandbox.logs.append(self.log)
        with open(self.log, "ab") as out:
            return self.procs.start("activated", [sys.executable, "-c", WRAPPER, kind, str(where), listen_pid] + argv,
                                    stdout=out)

    def test_inherited_tcp_socket(self):
        # A TCP socket from systemd needs an allow-list like any other TCP listener.
        port = free_port()
        p = self.start_wrapped("inet", port, [binary("policyd/xproxy-policyd"), "--listen", "systemd"] +
                               self.daemon_args())
        self.assertEqual(p.wait(timeout=10), 1)
        self.assertIn("would serve nobody: add --allow-peers", read_text(self.log))
        port = free_port()
        self.start_wrapped("inet", port, [binary("policyd/xproxy-policyd"), "--listen", "systemd",
                                          "--allow-peers", "127.0.0.1/32"] + self.daemon_args())
        wait_for_log(self.log, r"event=start listeners=1 ", 10)
        self.assertEqual(ask(socket.AF_INET, ("127.0.0.1", port), b"nobody@example.com"),
                         b"action=550 5.1.1 User unknown in virtual domain\n\n")
        self.assertEqual(ask(socket.AF_INET, ("127.0.0.1", port), b"alice@example.com"), b"action=DUNNO\n\n")

    def test_inherited_unix_socket(self):
        path = self.sandbox.path("policyd.sock")
        self.start_wrapped("unix", path, [binary("policyd/xproxy-policyd"), "--listen", "systemd"] + self.daemon_args())
        wait_for_log(self.log, r"event=start listeners=1 ", 10)
        self.assertEqual(ask(socket.AF_UNIX, path, b"nobody@example.com"),
                         b"action=550 5.1.1 User unknown in virtual domain\n\n")

    def test_listen_pid_of_another_process_is_refused(self):
        # The descriptors were meant for PID 1, not for us: nothing to listen on, exit 1.
        port = free_port()
        p = self.start_wrapped("inet", port, [binary("policyd/xproxy-policyd"), "--listen", "systemd"] +
                               self.daemon_args(), listen_pid="1")
        self.assertEqual(p.wait(timeout=10), 1)
        self.assertIn("systemd listener requested but no LISTEN_FDS were passed", read_text(self.log))

    def test_socket_not_listening_is_refused(self):
        # A .socket unit of the wrong kind passes a descriptor that is not listening:
        # a clear message at start-up, not an accept() error loop.
        port = free_port()
        p = self.start_wrapped("bound", port, [binary("policyd/xproxy-policyd"), "--listen", "systemd"] +
                               self.daemon_args())
        self.assertEqual(p.wait(timeout=10), 1)
        self.assertIn("systemd passed descriptor 3, which is not listening", read_text(self.log))

    def test_systemd_socket_activate(self):
        # systemd's own implementation of the protocol: it listens, and on the first
        # connection starts the daemon with the socket as descriptor 3.
        tool = "/usr/bin/systemd-socket-activate"
        self.assertTrue(os.access(tool, os.X_OK), "%s missing (package systemd, scripts/bootstrap)" % tool)
        port = free_port()
        log = self.sandbox.path("policyd.log")
        self.sandbox.logs.append(log)
        with open(log, "wb") as out:
            self.procs.start("socket-activate", [tool, "--listen", "127.0.0.1:%d" % port, "--fdname",
                                                 "xproxy-policyd.socket", binary("policyd/xproxy-policyd"),
                                                 "--listen", "systemd", "--allow-peers", "127.0.0.1/32"] +
                             self.daemon_args(), stdout=out)
        wait_for_port("127.0.0.1", port)
        self.assertEqual(ask(socket.AF_INET, ("127.0.0.1", port), b"nobody@example.com"),
                         b"action=550 5.1.1 User unknown in virtual domain\n\n")
        wait_for_log(log, r"event=start listeners=1 ", 10)

    def test_units_verify(self):
        # systemd-analyze verify on copies whose ExecStart points at the built binary
        # (the packaged path /usr/sbin does not exist here); any message counts as a failure.
        tool = "/usr/bin/systemd-analyze"
        self.assertTrue(os.access(tool, os.X_OK), "%s missing (package systemd, scripts/bootstrap)" % tool)
        unit_dir = self.sandbox.mkdir("units")
        names = ("xproxy-policyd.socket", "xproxy-policyd.service", "xproxy-milter.socket", "xproxy-milter.service")
        for name in names:
            text = unit_text(name)
            for prog in ("xproxy-policyd", "policyd"), ("xproxy-milter", "milter"):
                text = text.replace("/usr/sbin/" + prog[0], binary("%s/%s" % (prog[1], prog[0])))
            self.sandbox.write(os.path.join("units", name), text)
        r = subprocess.run([tool, "verify", "--man=no"] + [os.path.join(unit_dir, n) for n in names],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))

    def test_socket_units_reach_only_the_mta(self):
        # The signing daemons' sockets: a unix socket of group postfix, mode 0660, never a
        # TCP port any local user can reach.
        for name in ("xproxy-policyd.socket", "xproxy-milter.socket"):
            with self.subTest(name):
                # inside the chroot of Debian's Postfix (its queue directory)
                self.assertRegex(unit_value(name, "ListenStream"), r"^/var/spool/postfix/xproxy/[a-z-]+\.sock$")
                self.assertEqual(len(re.findall(r"^ListenStream=", unit_text(name), re.M)), 1)
                self.assertEqual(unit_value(name, "SocketGroup"), "postfix")
                self.assertEqual(unit_value(name, "SocketMode"), "0660")

    def test_unit_exec_start_serves_the_unit_socket(self):
        # The service's own ExecStart= arguments (its config file replaced by a test one)
        # with a socket of the .socket unit's ListenStream= address (on a free port).
        service = "xproxy-policyd.service"
        argv = shlex.split(unit_value(service, "ExecStart"))
        self.assertEqual(argv[0], "/usr/sbin/xproxy-policyd")
        self.assertIn("--listen systemd", " ".join(argv))
        listen = unit_value("xproxy-policyd.socket", "ListenStream")
        self.assertTrue(listen.startswith("/"), listen)  # a unix socket
        config = self.sandbox.write("policyd.conf", "policy = vdomains\ndirectory = %s\n"
                                    % self.sandbox.write("directory.txt", DIRECTORY))
        argv = [binary("policyd/xproxy-policyd")] + [config if a == "/etc/xproxy/policyd.conf" else a
                                                     for a in argv[1:]]
        argv = [a if a != "syslog" else "stderr" for a in argv]  # no syslog daemon here
        r = subprocess.run(unit_value(service, "ExecStartPre").replace("/usr/sbin/xproxy-policyd", argv[0])
                           .replace("/etc/xproxy/policyd.conf", config).split(), capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)  # ExecStartPre=... --check-config
        path = self.sandbox.path("policyd.sock")
        self.start_wrapped("unix", path, argv)
        wait_for_log(self.log, r"event=start listeners=1 ", 10)
        self.assertEqual(ask(socket.AF_UNIX, path, b"nobody@example.com"),
                         b"action=550 5.1.1 User unknown in virtual domain\n\n")


if __name__ == "__main__":
    main()
