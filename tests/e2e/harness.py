"""harness: start real mail software on loopback for xproxy's end-to-end tests.

Every process a test starts goes through Procs, which records its PID (each in its own
process group) and stops it by PID at teardown: on success, on failure, on an exception
and on SIGTERM/SIGINT of the test runner. Nothing is ever stopped by name.

Building blocks:
  Sandbox          per-test directory under /tmp (mode 0755 so user postfix can traverse),
                   removed on success, kept and its logs printed on failure
  free_port()      an unused TCP port on 127.0.0.1
  wait_for_port(), wait_for_log(), wait_until()
  Postfix          a private Postfix instance (postfix -c DIR), optional LD_PRELOAD wrapper
  SmtpSink         /usr/sbin/smtp-sink dumping every message to a directory
  HAProxy          HAProxy in tcp mode with send-proxy / send-proxy-v2
  CaptureServer    a Python listener recording the raw bytes of each connection
  smtp_session()   a raw SMTP client bound to any 127.0.0.x (optionally sending a PROXY
                   header first), returning every reply
  swaks()          the swaks client
  wire()           runs $XPROXY_BUILD_DIR/tools/xproxy-wire
  E2ETestCase      unittest.TestCase with self.sandbox / self.procs wired up
Stdlib only: runs with Debian's /usr/bin/python3.
"""

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

BUILD_DIR = os.environ.get("XPROXY_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build", "ci"))
SOURCE_DIR = os.environ.get("XPROXY_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
POSTFIX_DAEMON_DIR = "/usr/lib/postfix/sbin"


def binary(relpath):
    """Path of a binary built by CMake, e.g. binary('tools/xproxy-wire')."""
    path = os.path.abspath(os.path.join(BUILD_DIR, relpath))
    if not os.path.exists(path):
        raise FileNotFoundError("%s not built (XPROXY_BUILD_DIR=%s)" % (relpath, BUILD_DIR))
    return path


# ---------------------------------------------------------------- processes

class Procs:
    """Registry of every process started by a test; stop_all() stops them by PID."""

    _all = []  # every live registry, for the signal/atexit safety net

    def __init__(self):
        self.entries = []  # (name, Popen, stop_fn or None)
        Procs._all.append(self)

    def start(self, name, argv, stdout=None, stderr=None, env=None, cwd=None, stop=None):
        out = stdout if stdout is not None else subprocess.DEVNULL
        err = stderr if stderr is not None else subprocess.STDOUT
        p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                             start_new_session=True)
        self.entries.append((name, p, stop))
        return p

    def pids(self):
        return [p.pid for _, p, _ in self.entries]

    def stop(self, proc, timeout=10):
        for i, (name, p, stop_fn) in enumerate(self.entries):
            if p is proc:
                self._stop_one(name, p, stop_fn, timeout)
                del self.entries[i]
                return

    @staticmethod
    def _stop_one(name, p, stop_fn, timeout):
        if p.poll() is None and stop_fn is not None:
            try:
                stop_fn()
            except Exception as e:  # fall back to signals below
                print("harness: stopping %s: %s" % (name, e), file=sys.stderr)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=5)
        # Children left in the group (Postfix daemons linger briefly): wait, then kill.
        deadline = time.time() + 5
        while time.time() < deadline and _group_alive(p.pid):
            time.sleep(0.1)
        if _group_alive(p.pid):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop_all(self):
        while self.entries:
            name, p, stop_fn = self.entries.pop()
            self._stop_one(name, p, stop_fn, 10)


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Zombies still count as group members until reaped by their parent; look at states.
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False


def _emergency_cleanup(*_):
    for reg in list(Procs._all):
        reg.stop_all()


def _on_signal(signum, _frame):
    _emergency_cleanup()
    sys.exit(128 + signum)


atexit.register(_emergency_cleanup)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


# ---------------------------------------------------------------- waiting

def wait_until(pred, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() > deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(host, port, timeout=10.0):
    def probe():
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False
    wait_until(probe, timeout, 0.05, "%s:%d to listen" % (host, port))


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def wait_for_log(path, regex, timeout=10.0, start=0):
    """Wait until `regex` matches the file's text after offset `start`; return the match."""
    rx = re.compile(regex, re.M)
    return wait_until(lambda: rx.search(read_text(path)[start:]), timeout, 0.05,
                      "/%s/ in %s" % (regex, path))


# ---------------------------------------------------------------- sandbox

class Sandbox:
    def __init__(self, name):
        os.makedirs("/tmp", exist_ok=True)
        self.root = tempfile.mkdtemp(prefix="xproxy-e2e-%s-" % name, dir="/tmp")
        os.chmod(self.root, 0o755)
        self.logs = []  # files to print when a test fails

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def mkdir(self, *parts, mode=0o755):
        p = self.path(*parts)
        os.makedirs(p, exist_ok=True)
        os.chmod(p, mode)
        return p

    def write(self, relpath, text, mode=0o644):
        p = self.path(relpath)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w" if isinstance(text, str) else "wb") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def dump_logs(self):
        for p in self.logs:
            print("----- %s" % p, file=sys.stderr)
            print(read_text(p)[-6000:], file=sys.stderr)

    def remove(self):
        shutil.rmtree(self.root, ignore_errors=True)


# ---------------------------------------------------------------- Postfix

class Postfix:
    """A private Postfix instance: its own config dir, queue, log file and ports.

    main_cf: dict of main.cf overrides; smtpd_opts: -o overrides on the smtpd service;
    services: extra master.cf lines; preload: path of a library to LD_PRELOAD into
    smtpd only (via a private daemon_directory holding a wrapper); import_env: extra
    import_environment entries (e.g. LD_PRELOAD=/abs/lib.so, reaching every daemon).
    """

    def __init__(self, sandbox, procs, name, port, relay_port=None, main_cf=None, smtpd_opts=None,
                 services=None, preload=None, preload_env=None, import_env=None, host="127.0.0.1"):
        self.sandbox, self.procs, self.name, self.port, self.host = sandbox, procs, name, port, host
        self.dir = sandbox.mkdir(name)
        self.conf = sandbox.mkdir(name, "conf")
        self.spool = sandbox.mkdir(name, "spool")
        self.data = sandbox.mkdir(name, "data", mode=0o700)
        os.chown(self.data, _uid("postfix"), -1)
        logdir = sandbox.mkdir(name, "log")
        self.maillog = os.path.join(logdir, "maillog")
        sandbox.logs.append(self.maillog)
        self.proc = None
        daemon_dir = POSTFIX_DAEMON_DIR
        if preload:
            daemon_dir = sandbox.mkdir(name, "libexec")
            for entry in os.listdir(POSTFIX_DAEMON_DIR):
                if entry != "smtpd":
                    os.symlink(os.path.join(POSTFIX_DAEMON_DIR, entry), os.path.join(daemon_dir, entry))
            env_lines = "".join("export %s=%s\n" % (k, _sh_quote(v)) for k, v in (preload_env or {}).items())
            wrapper = "#!/bin/sh\n%sexport LD_PRELOAD=%s\nexec %s/smtpd \"$@\"\n" % (
                env_lines, _sh_quote(preload), POSTFIX_DAEMON_DIR)
            p = os.path.join(daemon_dir, "smtpd")
            with open(p, "w") as f:
                f.write(wrapper)
            os.chmod(p, 0o755)
        cfg = {
            "compatibility_level": "3.6",
            "queue_directory": self.spool,
            "data_directory": self.data,
            "daemon_directory": daemon_dir,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "inet_interfaces": "127.0.0.1" if ":" not in host else host,
            "inet_protocols": "ipv4" if ":" not in host else "all",
            "myhostname": "%s.test.invalid" % name,
            "mydestination": "",
            "relay_domains": "",
            "mynetworks": "127.0.0.0/8",
            "smtp_dns_support_level": "disabled",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "maillog_file": self.maillog,
            "maillog_file_prefixes": "/tmp,/var",
            "smtpd_banner": "$myhostname ESMTP",
            "smtp_host_lookup": "native",
            "disable_dns_lookups": "yes",
            "smtpd_peername_lookup": "no",
            "smtpd_client_restrictions": "",
            "smtpd_recipient_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtputf8_enable": "no",
            "biff": "no",
            "shlib_directory": "no",
        }
        if relay_port:
            cfg["relayhost"] = "[127.0.0.1]:%d" % relay_port
        if import_env:
            cfg["import_environment"] = ("MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C POSTLOG_SERVICE "
                                         "POSTLOG_HOSTNAME " + " ".join(import_env))
        cfg.update(main_cf or {})
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            for k, v in cfg.items():
                f.write("%s = %s\n" % (k, v))
        listen = "%s:%d" % (host if ":" not in host else "[%s]" % host, port)
        opts = "".join("\n  -o %s=%s" % (k, v) for k, v in (smtpd_opts or {}).items())
        master = [
            "%s inet n - n - - smtpd%s" % (listen, opts),
            "pickup unix n - n 60 1 pickup",
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "tlsmgr unix - - n 1000? 1 tlsmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ] + list(services or [])
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write("\n".join(master) + "\n")

    def postconf(self, *args):
        return subprocess.run(["postconf", "-c", self.conf] + list(args), capture_output=True, text=True)

    def start(self, timeout=20):
        r = subprocess.run(["postfix", "-c", self.conf, "check"], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("postfix check failed for %s: %s%s" % (self.name, r.stdout, r.stderr))
        self.proc = self.procs.start("postfix-%s" % self.name, ["postfix", "-c", self.conf, "start-fg"],
                                     stop=lambda: subprocess.run(["postfix", "-c", self.conf, "stop"],
                                                                 capture_output=True))
        proc = self.proc

        def up():
            if proc.poll() is not None:
                raise RuntimeError("postfix %s exited with status %s" % (self.name, proc.returncode))
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return True
            except OSError:
                return False
        try:
            wait_until(up, timeout, 0.05, "postfix %s to listen on port %d" % (self.name, self.port))
        except (TimeoutError, RuntimeError):
            self.sandbox.dump_logs()
            raise
        return self

    def stop(self):
        if self.proc:
            self.procs.stop(self.proc, timeout=15)
            self.proc = None

    def log(self):
        return read_text(self.maillog)

    def wait_log(self, regex, timeout=10.0, start=0):
        return wait_for_log(self.maillog, regex, timeout, start)


def _sh_quote(s):
    return "'" + str(s).replace("'", "'\\''") + "'"


# ---------------------------------------------------------------- smtp-sink

class SmtpSink:
    """smtp-sink on 127.0.0.1:port; every message is dumped to its own file in dump_dir."""

    def __init__(self, sandbox, procs, port=None, xclient=True, xforward=True, name="sink", verbose=False):
        self.sandbox, self.procs = sandbox, procs
        self.port = port or free_port()
        self.dir = sandbox.mkdir(name)
        os.chown(self.dir, _uid("nobody"), -1)
        argv = ["/usr/sbin/smtp-sink", "-u", "nobody", "-R", self.dir, "-d", "%M%S.", "-c"]
        if verbose:  # logs every command it receives
            argv.append("-v")
        if not xclient:
            argv.append("-C")
        if not xforward:
            argv.append("-F")
        argv += ["127.0.0.1:%d" % self.port, "100"]
        self.log = sandbox.path(name + ".log")
        sandbox.logs.append(self.log)
        with open(self.log, "wb") as out:
            self.proc = procs.start("smtp-sink", argv, stdout=out)
        wait_for_port("127.0.0.1", self.port)

    def log_text(self):
        return read_text(self.log)

    def messages(self):
        out = []
        for root, _, files in os.walk(self.dir):
            for f in sorted(files):
                out.append(read_text(os.path.join(root, f)))
        return out

    def wait_messages(self, n, timeout=20.0):
        return wait_until(lambda: self.messages() if len(self.messages()) >= n else None, timeout, 0.1,
                          "%d message(s) at the sink" % n)


def _uid(user):
    import pwd
    return pwd.getpwnam(user).pw_uid


# ---------------------------------------------------------------- HAProxy

class HAProxy:
    """HAProxy in tcp mode: listen on 127.0.0.1:port, forward to backend with send-proxy*."""

    def __init__(self, sandbox, procs, backend_port, mode="send-proxy-v2", port=None, backend_host="127.0.0.1"):
        self.port = port or free_port()
        cfg = sandbox.write("haproxy-%d.cfg" % self.port, """global
    maxconn 1000
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:%d
    default_backend be
backend be
    server s1 %s:%d %s
""" % (self.port, backend_host, backend_port, mode or ""))
        r = subprocess.run(["haproxy", "-c", "-f", cfg], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("haproxy config invalid: %s%s" % (r.stdout, r.stderr))
        self.log = sandbox.path("haproxy-%d.log" % self.port)
        sandbox.logs.append(self.log)
        with open(self.log, "wb") as out:
            self.proc = procs.start("haproxy", ["haproxy", "-db", "-f", cfg], stdout=out)
        wait_for_port("127.0.0.1", self.port)


# ---------------------------------------------------------------- capture server

class CaptureServer:
    """Listens on 127.0.0.1:port; records each connection's raw bytes (self.sessions).

    respond(conn_index, data_so_far) -> bytes or None can answer; with greeting set the
    server sends it first. Runs in a daemon thread; close() stops it.
    """

    def __init__(self, port=None, greeting=None, respond=None, host="127.0.0.1"):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port or 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.greeting, self.respond = greeting, respond
        self.sessions = []
        self.peers = []
        self.lock = threading.Lock()
        self.closed = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.closed:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            with self.lock:
                idx = len(self.sessions)
                self.sessions.append(b"")
                self.peers.append(peer)
            threading.Thread(target=self._serve, args=(conn, idx), daemon=True).start()

    def _serve(self, conn, idx):
        with conn:
            conn.settimeout(30)
            if self.greeting:
                conn.sendall(self.greeting)
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                with self.lock:
                    self.sessions[idx] += data
                    so_far = self.sessions[idx]
                if self.respond:
                    out = self.respond(idx, so_far)
                    if out:
                        conn.sendall(out)

    def wait_bytes(self, idx, n, timeout=10.0):
        return wait_until(lambda: len(self.sessions) > idx and len(self.sessions[idx]) >= n, timeout, 0.02,
                          "%d bytes on capture connection %d" % (n, idx))

    def close(self):
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


# ---------------------------------------------------------------- clients

class SmtpReplyError(Exception):
    pass


def read_reply(sock_file):
    """Read one (possibly multi-line) SMTP reply; returns (code, text)."""
    lines = []
    while True:
        line = sock_file.readline()
        if not line:
            raise SmtpReplyError("connection closed; got %r" % lines)
        line = line.decode("utf-8", "replace").rstrip("\r\n")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            break
    return int(lines[-1][:3]) if lines[-1][:3].isdigit() else 0, "\n".join(lines)


def smtp_session(port, commands, source="127.0.0.1", host="127.0.0.1", preamble=b"", timeout=15.0,
                 read_greeting=True):
    """Connect from `source`, send `preamble` raw, then each command (str or bytes; a
    command ending in '\\r\\n.\\r\\n' is sent as message data). Returns the list of
    (code, text) replies: greeting first. Stops at the first closed connection."""
    replies = []
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.bind((source, 0))
        s.connect((host, port))
        if preamble:
            s.sendall(preamble)
        f = s.makefile("rb")
        if read_greeting:
            try:
                replies.append(read_reply(f))
            except (SmtpReplyError, OSError) as e:
                replies.append((0, "closed: %s" % e))
                return replies
        for cmd in commands:
            data = cmd.encode() if isinstance(cmd, str) else cmd
            if not data.endswith(b"\r\n"):
                data += b"\r\n"
            try:
                s.sendall(data)
                replies.append(read_reply(f))
            except (SmtpReplyError, OSError) as e:
                replies.append((0, "closed: %s" % e))
                break
    finally:
        s.close()
    return replies


def send_mail(port, source="127.0.0.1", sender="sender@example.org", rcpt="rcpt@example.net",
              body="Subject: test\r\n\r\nhello\r\n", preamble=b"", helo="client.example.org", extra=()):
    """One message through a raw SMTP session; returns the replies."""
    cmds = ["EHLO %s" % helo] + list(extra) + ["MAIL FROM:<%s>" % sender, "RCPT TO:<%s>" % rcpt, "DATA",
                                             body + ".\r\n", "QUIT"]
    return smtp_session(port, cmds, source=source, preamble=preamble)


def swaks(port, source="127.0.0.1", sender="sender@example.org", rcpt="rcpt@example.net", extra=(),
          server="127.0.0.1", timeout=30):
    argv = ["swaks", "--server", server, "--port", str(port), "--local-interface", source,
            "--from", sender, "--to", rcpt, "--timeout", "15"] + list(extra)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def wire(args, stdin=b""):
    """Run xproxy-wire; returns (rc, stdout bytes, stderr text)."""
    r = subprocess.run([binary("tools/xproxy-wire")] + list(args), input=stdin, capture_output=True, timeout=30)
    return r.returncode, r.stdout, r.stderr.decode("utf-8", "replace")


def parse_kv(text):
    """key=value lines -> dict (repeated keys: list under key + '*')."""
    out = {}
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    for line in text.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            if k in out:
                out.setdefault(k + "*", [out[k]]).append(v)
            else:
                out[k] = v
    return out


# ---------------------------------------------------------------- unittest glue

class E2ETestCase(unittest.TestCase):
    """Gives each test self.sandbox and self.procs; stops everything after each test.
    On failure the sandbox is kept and its logs are printed."""

    def setUp(self):
        if os.geteuid() != 0:
            self.fail("end-to-end tests need root (Postfix, smtp-sink -u nobody)")
        self.procs = Procs()
        self.sandbox = Sandbox(self.id().split(".")[-1][:40])

    def tearDown(self):
        self.procs.stop_all()
        outcome = getattr(self, "_outcome", None)
        failed = False
        if outcome is not None:
            result = getattr(outcome, "result", None)
            errors = list(getattr(outcome, "errors", []) or [])
            if result is not None:
                errors += [(t, e) for t, e in result.errors + result.failures if t is self]
            failed = any(e for _, e in errors)
        if failed:
            print("\nkept %s" % self.sandbox.root, file=sys.stderr)
            self.sandbox.dump_logs()
        else:
            self.sandbox.remove()


def main():
    unittest.main(verbosity=2)
