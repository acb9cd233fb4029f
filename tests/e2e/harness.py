"""harness: start real mail software on loopback for xproxy's end-to-end tests.

Every process a test starts goes through Procs, which records its PID (each in its own
process group) and stops it by PID at teardown: on success, on failure, on an exception,
at interpreter exit and on SIGTERM/SIGINT of the test runner. Nothing is ever stopped by
name. A daemon that leaves its starter's group (Postfix's master calls setsid) is adopted
into the registry by PID as soon as it is known.

Building blocks:
  Sandbox          per-test directory /tmp/xproxy-e2e-NAME-XXXX (mode 0755 so user postfix
                   can traverse it), removed on success, kept and its logs printed on failure
  free_port()      an unused TCP port on 127.0.0.1 (or ::1)
  wait_until(), wait_for_port(), wait_for_log() (returns the re.Match)
  Postfix          a private Postfix instance (postfix -c DIR start-fg): own queue, log
                   file and ports; optional LD_PRELOAD wrapper for smtpd, import_environment
  SmtpSink         /usr/sbin/smtp-sink dumping every message to a file; commands() lists
                   what it received when verbose
  Depositd         xproxy-depositd (HTTPS deposit) with its own receipt key and key ring
  Dovecot          Dovecot's auth service alone, on an inet listener (SASL for Postfix
                   and xproxyd), with a passwd-file of {PLAIN} passwords
  Slapd            a private OpenLDAP slapd (xproxy schema, syncprov; optionally the
                   syncrepl consumer of another Slapd) with ldapadd/ldapmodify/ldapdelete/
                   modrdn helpers; directory_ldif() writes its tree from directory-file lines
  HAProxy          HAProxy in tcp mode, plain, send-proxy or send-proxy-v2
  CaptureServer    a Python listener recording the raw bytes of each connection and
                   optionally answering (policy_responder() answers policy requests)
  SmtpClient       an interactive SMTP client bound to any 127.0.0.x, optionally sending
                   raw bytes (a PROXY header) before the greeting
  smtp_session(), send_mail(), swaks()   one-shot SMTP clients
  wire()           runs $XPROXY_BUILD_DIR/tools/xproxy-wire
  E2ETestCase      unittest.TestCase with self.sandbox / self.procs wired up
Stdlib only: runs with Debian's /usr/bin/python3.
"""

import atexit
import contextlib
import os
import pwd
import random
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
POSTFIX_DEFAULT_IMPORT = "MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C POSTLOG_SERVICE POSTLOG_HOSTNAME"


def binary(relpath):
    """Path of a binary built by CMake, e.g. binary('tools/xproxy-wire')."""
    path = os.path.abspath(os.path.join(BUILD_DIR, relpath))
    if not os.path.exists(path):
        raise FileNotFoundError("%s not built (XPROXY_BUILD_DIR=%s)" % (relpath, BUILD_DIR))
    return path


# ---------------------------------------------------------------- processes

def _proc_stat(pid):
    """(state, ppid, pgid) of a process, or None when it does not exist."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1]), int(fields[2])


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    st = _proc_stat(pid)
    return st is not None and st[0] != "Z"


def group_members(pgid):
    """PIDs of the live (non-zombie) processes in process group pgid."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _proc_stat(int(entry))
            if st and st[2] == pgid and st[0] != "Z":
                out.append(int(entry))
    return out


def children_of(pid):
    """PIDs of the live direct children of pid."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _proc_stat(int(entry))
            if st and st[1] == pid and st[0] != "Z":
                out.append(int(entry))
    return out


def _signal_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_group_gone(pgid, timeout):
    deadline = time.time() + timeout
    while group_members(pgid):
        if time.time() > deadline:
            return False
        time.sleep(0.05)
    return True


class _Entry:
    def __init__(self, name, popen, stop_fn):
        self.name, self.popen, self.stop_fn = name, popen, stop_fn
        self.groups = [popen.pid]  # process groups to empty: its own, plus adopted ones


class Procs:
    """Registry of every process started by a test; stop_all() stops them by PID, newest
    first. Each process starts in its own session (own process group); stopping is: the
    optional stop function (e.g. `postfix stop`), SIGTERM to each recorded group, a
    bounded wait, then SIGKILL."""

    _all = []  # every live registry, for the signal/atexit safety net

    def __init__(self):
        self.entries = []
        self.lock = threading.RLock()
        Procs._all.append(self)

    def start(self, name, argv, stdout=None, stderr=None, env=None, cwd=None, stop=None, stdin=None):
        """Start argv in a new session; stop is an optional callable tried before signals."""
        out = stdout if stdout is not None else subprocess.DEVNULL
        err = stderr if stderr is not None else subprocess.STDOUT
        p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                             env=env, cwd=cwd, start_new_session=True)
        with self.lock:
            self.entries.append(_Entry(name, p, stop))
        return p

    def adopt_group(self, proc, pgid):
        """Also empty process group pgid (a daemon that called setsid) when proc is stopped."""
        with self.lock:
            for e in self.entries:
                if e.popen is proc and pgid not in e.groups:
                    e.groups.append(pgid)

    def pids(self):
        """Every recorded PID: started processes and adopted group leaders."""
        with self.lock:
            return [g for e in self.entries for g in e.groups]

    def stop(self, proc, timeout=10):
        with self.lock:
            entry = next((e for e in self.entries if e.popen is proc), None)
        if entry is not None:
            self._stop_one(entry, timeout)
            with self.lock:
                if entry in self.entries:
                    self.entries.remove(entry)

    @staticmethod
    def _stop_one(e, timeout):
        p = e.popen
        # A child that left our process group (setsid) is stopped with its own group.
        for child in children_of(p.pid):
            st = _proc_stat(child)
            if st and st[2] == child and child not in e.groups:
                e.groups.append(child)
        if e.stop_fn is not None and p.poll() is None:
            try:
                e.stop_fn()
            except Exception as ex:  # fall back to signals below
                print("harness: stopping %s: %s" % (e.name, ex), file=sys.stderr)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        # SIGTERM whatever is left in each group, wait, then SIGKILL.
        for g in e.groups:
            if group_members(g):
                _signal_group(g, signal.SIGTERM)
        deadline = time.time() + timeout
        for g in e.groups:
            if not _wait_group_gone(g, max(0.1, deadline - time.time())):
                print("harness: %s (group %d) ignored SIGTERM; killing" % (e.name, g), file=sys.stderr)
                _signal_group(g, signal.SIGKILL)
                _wait_group_gone(g, 5)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def stop_all(self):
        """Stop everything, newest first. Entries leave the registry only once stopped, so
        a signal arriving in the middle still finds them."""
        while True:
            with self.lock:
                if not self.entries:
                    return
                entry = self.entries[-1]
            self._stop_one(entry, 10)
            with self.lock:
                if entry in self.entries:
                    self.entries.remove(entry)


def _emergency_cleanup():
    for reg in list(Procs._all):
        reg.stop_all()


_signalled = False


def _on_signal(signum, _frame):
    global _signalled
    if _signalled:
        return
    _signalled = True
    print("\nharness: signal %d: stopping every started process" % signum, file=sys.stderr)
    _emergency_cleanup()
    for sb in list(Sandbox.live):
        print("kept %s" % sb.root, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    # unittest catches SystemExit inside a test and would go on with the next one.
    os._exit(128 + signum)


atexit.register(_emergency_cleanup)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


# ---------------------------------------------------------------- waiting

def wait_until(pred, timeout=10.0, interval=0.05, what="condition"):
    """Poll pred() until it returns a true value (returned); TimeoutError after timeout."""
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() > deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


_handed_out = set()
_port_lock = threading.Lock()


def _port_pool():
    # Outside the kernel's ephemeral range: no outgoing connection (Postfix's smtp client,
    # HAProxy, a test client) can be holding the port when the server binds it later.
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        lo, hi = 32768, 60999
    if lo - 1 - 10000 >= 2000:
        return 10000, lo - 1
    return hi + 1, 65535


def free_port(host="127.0.0.1"):
    """A TCP port that nothing uses on host now, outside the ephemeral range, never the
    same twice in one process."""
    first, last = _port_pool()
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with _port_lock:
        for _ in range(1000):
            port = random.randint(first, last)
            if port in _handed_out:
                continue
            with socket.socket(fam) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port in %d-%d on %s" % (first, last, host))


def wait_for_port(host, port, timeout=10.0):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET

    def probe():
        with socket.socket(fam) as s:
            s.settimeout(0.5)
            try:
                s.connect((host, port))
                return True
            except OSError:
                return False
    wait_until(probe, timeout, 0.05, "%s port %d to listen" % (host, port))


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
    """A per-test directory under /tmp. logs: files printed when the test fails."""

    live = []

    def __init__(self, name):
        self.root = tempfile.mkdtemp(prefix="xproxy-e2e-%s-" % name, dir="/tmp")
        os.chmod(self.root, 0o755)
        self.logs = []
        Sandbox.live.append(self)

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

    def dump_logs(self, tail=6000):
        for p in self.logs:
            print("----- %s" % p, file=sys.stderr)
            print(read_text(p)[-tail:], file=sys.stderr)

    def keep(self):
        """Leave the directory in place (a failed test) and say where it is."""
        print("\nkept %s" % self.root, file=sys.stderr)
        if self in Sandbox.live:
            Sandbox.live.remove(self)

    def remove(self):
        shutil.rmtree(self.root, ignore_errors=True)
        if self in Sandbox.live:
            Sandbox.live.remove(self)


@contextlib.contextmanager
def standalone(name):
    """(sandbox, procs) for a script run outside the test runner, such as a benchmark:
    every process is stopped at the end; the directory is removed after success and kept,
    with its logs printed, after a failure."""
    procs = Procs()
    sb = Sandbox(name)
    ok = False
    try:
        yield sb, procs
        ok = True
    finally:
        procs.stop_all()
        if ok:
            sb.remove()
        else:
            sb.keep()
            sb.dump_logs()


def _uid(user):
    return pwd.getpwnam(user).pw_uid


def _sh_quote(s):
    return "'" + str(s).replace("'", "'\\''") + "'"


# ---------------------------------------------------------------- Postfix

class Postfix:
    """A private Postfix instance: its own config dir, queue, log file and ports.

    relay_port: relayhost [127.0.0.1]:relay_port (e.g. an SmtpSink); main_cf: main.cf
    overrides; smtpd_opts: -o overrides on the smtpd service; services: extra master.cf
    lines; ipv6: inet_protocols=all (still listening on 127.0.0.1 only) so that IPv6
    client addresses from PROXY/XCLIENT are accepted; preload (+ preload_env): a library
    LD_PRELOADed into smtpd only, via a private daemon_directory holding a wrapper;
    env: {NAME: value} imported into every Postfix daemon (import_environment, reaching
    every daemon: LD_PRELOAD here affects them all); import_env: the same as raw
    "NAME=value" strings.
    """

    def __init__(self, sandbox, procs, name, port, relay_port=None, main_cf=None, smtpd_opts=None,
                 services=None, preload=None, preload_env=None, import_env=None, host="127.0.0.1", env=None,
                 ipv6=False):
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
        self.master_pid = None
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
        v6_listen = ":" in host
        cfg = {
            "compatibility_level": "3.6",
            "queue_directory": self.spool,
            "data_directory": self.data,
            "daemon_directory": daemon_dir,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "inet_interfaces": host,
            "inet_protocols": "all" if (ipv6 or v6_listen) else "ipv4",
            "myhostname": "%s.test.invalid" % name,
            "mydestination": "",
            "relay_domains": "",
            "mynetworks": "127.0.0.0/8" + (", [::1]/128" if (ipv6 or v6_listen) else ""),
            "smtp_dns_support_level": "disabled",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "maillog_file": self.maillog,
            "maillog_file_prefixes": "/tmp,/var",
            "smtpd_banner": "$myhostname ESMTP",
            "smtp_host_lookup": "native",
            "smtpd_peername_lookup": "no",
            "smtpd_client_restrictions": "",
            "smtpd_recipient_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtputf8_enable": "no",
            "biff": "no",
            "shlib_directory": "no",
        }
        if relay_port:
            cfg["relayhost"] = "[127.0.0.1]:%d" % relay_port
        extra_env = list(import_env or []) + ["%s=%s" % kv for kv in (env or {}).items()]
        if extra_env:
            cfg["import_environment"] = POSTFIX_DEFAULT_IMPORT + " " + " ".join(extra_env)
        cfg.update(main_cf or {})
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            for k, v in cfg.items():
                f.write("%s = %s\n" % (k, v))
        listen = "%s:%d" % ("[%s]" % host if v6_listen else host, port)
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
            self.sandbox.dump_logs()
            raise RuntimeError("postfix check failed for %s: %s%s" % (self.name, r.stdout, r.stderr))
        # Checked just now: start-fg need not repeat the checks (saves about a second).
        open(os.path.join(self.spool, "quick-start"), "w").close()
        self.proc = self.procs.start("postfix-%s" % self.name, ["postfix", "-c", self.conf, "start-fg"],
                                     stop=lambda: subprocess.run(["postfix", "-c", self.conf, "stop"],
                                                                 capture_output=True, timeout=30))
        proc = self.proc

        def up():
            if proc.poll() is not None:
                raise RuntimeError("postfix %s exited with status %s" % (self.name, proc.returncode))
            if self.master_pid is None:
                self._adopt_master()
            fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            with socket.socket(fam) as s:
                s.settimeout(0.5)
                try:
                    s.connect((self.host, self.port))
                except OSError:
                    return False
            return self.master_pid is not None
        try:
            wait_until(up, timeout, 0.05, "postfix %s to listen on port %d" % (self.name, self.port))
        except (TimeoutError, RuntimeError):
            self.sandbox.dump_logs()
            raise
        return self

    def _adopt_master(self):
        # master runs in its own session (setsid): record it so it is stopped even when
        # `postfix stop` cannot run. Trust the pid file only for a child of our start-fg.
        try:
            with open(os.path.join(self.spool, "pid", "master.pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return
        st = _proc_stat(pid)
        if st and st[1] == self.proc.pid:
            self.master_pid = pid
            self.procs.adopt_group(self.proc, pid)

    def daemon_pids(self):
        """The live children of master (smtpd, qmgr, cleanup ...)."""
        return children_of(self.master_pid) if self.master_pid else []

    def stop(self):
        if self.proc:
            self.procs.stop(self.proc, timeout=15)
            self.proc = None

    def log(self):
        return read_text(self.maillog)

    def log_mark(self):
        """Current end of the log: pass as start= to wait_log to see only newer lines."""
        return len(self.log())

    def wait_log(self, regex, timeout=10.0, start=0):
        return wait_for_log(self.maillog, regex, timeout, start)


# ---------------------------------------------------------------- smtp-sink

class SmtpSink:
    """smtp-sink on host:port (127.0.0.1 by default); every message is dumped to its own file in dump_dir.

    The dump starts with X-Client-Addr (the TCP peer: XCLIENT and XFORWARD do not change
    it), X-Client-Proto, X-Helo-Args, X-Mail-Args, X-Rcpt-Args, then smtp-sink's own
    Received header and the message. verbose=True logs every command received (see
    commands()); xclient/xforward=False stop it advertising XCLIENT / XFORWARD.
    """

    def __init__(self, sandbox, procs, port=None, xclient=True, xforward=True, name="sink", verbose=False,
                 dump_dir=None, extra_args=(), host="127.0.0.1"):
        self.sandbox, self.procs, self.host = sandbox, procs, host
        self.port = port or free_port(host)
        self.dir = dump_dir or sandbox.mkdir(name)
        os.chown(self.dir, _uid("nobody"), -1)
        argv = ["/usr/sbin/smtp-sink", "-u", "nobody", "-R", self.dir, "-d", "%M%S.", "-c"]
        if verbose:
            argv.append("-v")
        if not xclient:
            argv.append("-C")
        if not xforward:
            argv.append("-F")
        argv += list(extra_args) + ["%s:%d" % (host, self.port), "100"]
        self.log = sandbox.path(name + ".log")
        sandbox.logs.append(self.log)
        with open(self.log, "wb") as out:
            self.proc = procs.start("smtp-sink", argv, stdout=out)
        wait_for_port(host, self.port)

    def log_text(self):
        return read_text(self.log)

    def commands(self, verb=None):
        """SMTP commands received, in order (needs verbose=True); only `verb` ones if given."""
        out = []
        for m in re.finditer(r"smtp-sink: (.*)$", self.log_text(), re.M):
            line = m.group(1)
            word = line.split(" ", 1)[0]
            if not word.isupper() and line != ".":
                continue
            if verb is None or word.upper() == verb.upper():
                out.append(line)
        return out

    def _files(self):
        found = []
        for root, _, files in os.walk(self.dir):
            found += [os.path.join(root, f) for f in files]
        return sorted(found, key=lambda p: (os.path.getmtime(p), p))

    def messages(self):
        """The dumped messages' text, oldest first."""
        return [read_text(p) for p in self._files()]

    def wait_messages(self, n, timeout=20.0):
        """Wait for at least n dumped messages whose files stopped growing; return them."""
        last = {}

        def ready():
            files = self._files()
            if len(files) < n:
                return None
            sizes = {p: os.path.getsize(p) for p in files}
            stable = sizes == last
            last.clear()
            last.update(sizes)
            return [read_text(p) for p in files] if stable else None
        return wait_until(ready, timeout, 0.1, "%d message(s) at the sink" % n)


# ---------------------------------------------------------------- xproxy-depositd

DEPOSIT_KEYRING = "k1 hex:00112233445566778899aabbccddeeff\n"


class Depositd:
    """xproxy-depositd (doc/deposit.md) on https://localhost:port (127.0.0.1) in front of
    the MTA at 127.0.0.1:mta_port, logging to NAME.log; stopped by PID with the test's
    processes.

    cert/key: its server certificate (for localhost and 127.0.0.1); issuer/audience: the
    tokens it takes; keys from the issuer's discovery document (jwks_ca: the identity
    provider's CA) unless jwks_file names a JWK Set file. It makes its own Ed25519 receipt
    key (receipt_key, 0600; receipt_pub: the public key for receipt-verify, kid
    receipt_kid) and trace-header key ring (ring, 0600, as xproxy-milter's: verify the
    X-Original-Source field with `xproxy-wire trace-verify --keyring ring`).
    extra: more options (limits ...). start() waits until it listens; a daemon that exits
    instead fails the test with its log."""

    def __init__(self, sandbox, procs, mta_port, cert, key, issuer, directory, audience="xproxy-deposit",
                 jwks_ca=None, jwks_file=None, port=None, extra=(), name="depositd",
                 server_name="deposit.test.invalid", log_level="debug", start=True):
        self.sandbox, self.procs, self.name = sandbox, procs, name
        self.port = port or free_port()
        self.server_name = server_name
        keydir = sandbox.mkdir(name + "-keys", mode=0o700)
        self.receipt_key = os.path.join(keydir, "receipt.key")
        self.receipt_pub = os.path.join(keydir, "receipt.pub")
        self.receipt_kid = "r1"
        subprocess.run(["openssl", "genpkey", "-algorithm", "ED25519", "-out", self.receipt_key], check=True,
                       capture_output=True)
        os.chmod(self.receipt_key, 0o600)
        subprocess.run(["openssl", "pkey", "-in", self.receipt_key, "-pubout", "-out", self.receipt_pub],
                       check=True, capture_output=True)
        self.ring = os.path.join(keydir, "trace.keyring")
        with open(self.ring, "w") as f:
            f.write(DEPOSIT_KEYRING)
        os.chmod(self.ring, 0o600)
        self.log_path = sandbox.path(name + ".log")
        sandbox.logs.append(self.log_path)
        self.argv = [binary("depositd/xproxy-depositd"), "--log", "stderr", "--log-level", log_level,
                     "--listen", "inet:127.0.0.1:%d" % self.port, "--tls-cert", cert, "--tls-key", key,
                     "--issuer", issuer, "--audience", audience,
                     "--mta", "inet:127.0.0.1:%d" % mta_port, "--helo-name", "deposit.test.invalid",
                     "--keyring", self.ring, "--server-name", server_name,
                     "--receipt-key", self.receipt_key, "--receipt-kid", self.receipt_kid,
                     "--directory", directory]
        if jwks_file:
            self.argv += ["--jwks-file", jwks_file]
        else:
            self.argv += ["--jwks-discovery"] + (["--jwks-ca-file", jwks_ca] if jwks_ca else [])
        self.argv += list(extra)
        self.proc = None
        if start:
            self.start()

    def start(self, timeout=15):
        with open(self.log_path, "ab") as out:
            self.proc = self.procs.start(self.name, self.argv, stdout=out, stderr=subprocess.STDOUT)
        proc = self.proc

        def up():
            if proc.poll() is not None:
                raise AssertionError("%s exited with status %s at start:\n%s\ncommand: %s" % (
                    self.name, proc.returncode, read_text(self.log_path)[-3000:], " ".join(self.argv)))
            with socket.socket() as s:
                s.settimeout(0.5)
                return s.connect_ex(("127.0.0.1", self.port)) == 0
        wait_until(up, timeout, 0.05, "%s to listen on port %d" % (self.name, self.port))
        return self

    def stop(self):
        if self.proc:
            self.procs.stop(self.proc)
            self.proc = None

    def log(self):
        return read_text(self.log_path)

    def wait_log(self, regex, timeout=10.0, start=0):
        return wait_for_log(self.log_path, regex, timeout, start)


# ---------------------------------------------------------------- Dovecot

DOVECOT_CONF = """
protocols = %(protocols)s
base_dir = %(root)s/run
state_dir = %(root)s/state
log_path = %(log)s
ssl = no
disable_plaintext_auth = no
auth_mechanisms = %(mechanisms)s
auth_failure_delay = %(failure_delay)s
%(masters)spassdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %(passwd)s
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=%(home)s
}
service auth {
  inet_listener auth-inet {
    address = 127.0.0.1
    port = %(port)d
  }
}
%(penalty)s%(imap)s%(extra)s"""
# Master users (Dovecot.masters): "USER*MASTER" with MASTER's password logs in as USER.
# pass = yes: USER must then exist in the ordinary passdb too (its password is not checked).
DOVECOT_MASTERS = """auth_master_user_separator = *
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %(passwd)s
  master = yes
  pass = yes
}
"""
# IMAP on 127.0.0.1 (Dovecot.imap_port): mailboxes under the sandbox, imaps off.
DOVECOT_IMAP = """mail_location = maildir:~/Maildir
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %(imap_port)d
  }
  inet_listener imaps {
    port = 0
  }
}
"""
# Dovecot's own slow-down of failed logins per client address (2 s, 4 s ... 15 s), off
# unless a test asks for it: the tests and benchmarks fail logins from 127.0.0.1 on purpose.
DOVECOT_NO_PENALTY = """service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
"""


class Dovecot:
    """A standalone Dovecot that only authenticates: its auth service on an inet listener
    127.0.0.1:auth_port (what Postfix's smtpd_sasl_type=dovecot and xproxyd's Dovecot
    client speak to), checking the passwords of `users` ({login: password}, stored
    {PLAIN} in a passwd-file). Runs in the foreground (dovecot -F) from the sandbox's
    NAME/ directory, logging to .log; stopped by PID with the test's processes. Dovecot's
    master does not wait for its children on SIGTERM: stop() waits for their PIDs too.
    penalty=True keeps Dovecot's delays after failed logins per client address (off by
    default: a test's wrong password must not slow down the next login from 127.0.0.1);
    failure_delay: its auth_failure_delay (every failure answered that much later; "0").
    imap=True also serves IMAP on 127.0.0.1:imap_port (mailboxes under NAME/home, owned by
    nobody); `extra` is appended to dovecot.conf (auth_policy_* settings, for instance).
    masters={name: password} adds Dovecot's master users (a passwd-file passdb with
    master = yes and pass = yes, auth_master_user_separator = *): "alice@example.com*admin"
    with admin's password logs in as alice@example.com, who must be one of `users`.

        dv = Dovecot(self.sandbox, self.procs, {"alice@example.com": "secret"})
        main_cf["smtpd_sasl_path"] = dv.sasl_path  # inet:127.0.0.1:PORT
    """

    def __init__(self, sandbox, procs, users=None, port=None, name="dovecot", mechanisms="plain login",
                 penalty=False, failure_delay="0", imap=False, extra="", masters=None):
        self.procs = procs
        self.users = dict(users if users is not None else {"alice@example.com": "secret",
                                                            "bob@example.com": "bob-secret"})
        self.root = sandbox.mkdir(name)
        for d in ("run", "state"):
            sandbox.mkdir(name, d)
        # Read by the auth process, which runs as user dovecot: group dovecot, not world.
        self.passwd = sandbox.write(name + "/passwd", "".join("%s:{PLAIN}%s\n" % kv for kv in self.users.items()),
                                    mode=0o640)
        os.chown(self.passwd, 0, pwd.getpwnam("dovecot").pw_gid)
        self.masters = dict(masters or {})
        masters_conf = ""
        if self.masters:
            self.master_passwd = sandbox.write(name + "/master-passwd",
                                               "".join("%s:{PLAIN}%s\n" % kv for kv in self.masters.items()),
                                               mode=0o640)
            os.chown(self.master_passwd, 0, pwd.getpwnam("dovecot").pw_gid)
            masters_conf = DOVECOT_MASTERS % {"passwd": self.master_passwd}
        self.auth_port = port or free_port()
        self.sasl_path = "inet:127.0.0.1:%d" % self.auth_port
        self.log = os.path.join(self.root, "dovecot.log")
        sandbox.logs.append(self.log)
        self.imap_port = free_port() if imap else None
        home = "/nonexistent"
        if imap:
            home = os.path.join(sandbox.mkdir(name, "home", mode=0o755), "%u")
            os.chown(os.path.dirname(home), pwd.getpwnam("nobody").pw_uid, -1)
        self.conf = sandbox.write(name + "/dovecot.conf", DOVECOT_CONF % {
            "root": self.root, "log": self.log, "passwd": self.passwd, "port": self.auth_port,
            "mechanisms": mechanisms, "penalty": "" if penalty else DOVECOT_NO_PENALTY,
            "failure_delay": failure_delay, "protocols": "imap" if imap else "", "home": home,
            "imap": DOVECOT_IMAP % {"imap_port": self.imap_port} if imap else "", "extra": extra,
            "masters": masters_conf})
        self.proc = procs.start(name, ["dovecot", "-F", "-c", self.conf], stop=self._stop_master)
        try:
            wait_for_port("127.0.0.1", self.auth_port, 20)
            if imap:
                wait_for_port("127.0.0.1", self.imap_port, 20)
        except TimeoutError:
            sandbox.dump_logs()
            raise

    def _stop_master(self):
        """SIGTERM to the master, then wait for it and for every process it had started."""
        family, todo = [], [self.proc.pid]
        while todo:
            kids = children_of(todo.pop())
            family += kids
            todo += kids
        self.proc.terminate()
        self.proc.wait(timeout=10)
        try:
            wait_until(lambda: not any(pid_alive(p) for p in family), 10, 0.05, "dovecot's processes to exit")
        except TimeoutError:
            for p in family:
                if pid_alive(p):
                    os.kill(p, signal.SIGKILL)

    def stop(self):
        self.procs.stop(self.proc)

    def log_text(self):
        return read_text(self.log)


# ---------------------------------------------------------------- OpenLDAP slapd

LDAP_SCHEMA_DIR = "/etc/ldap/schema"
XPROXY_SCHEMA = os.path.join(SOURCE_DIR, "packaging", "ldap", "xproxy.schema")
LDAP_ROOT_PW = "Kq7-test-only-pw"


def ssha(password):
    """{SSHA} hash of password, as slappasswd makes it."""
    import base64
    import hashlib
    salt = os.urandom(8)
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()


class Slapd:
    """A private OpenLDAP slapd (Debian's 2.5) on 127.0.0.1:port, from the sandbox's NAME/
    directory (slapd.conf, db/, run/, all owned by openldap): schemas core, cosine, nis,
    inetorgperson and xproxy's packaging/ldap/xproxy.schema, one back_mdb database for
    `suffix` with rootdn cn=admin,SUFFIX (password LDAP_ROOT_PW), no size or time limits,
    and the syncprov overlay (every instance can serve RFC 4533 content sync: xproxy's
    backend needs it, a consumer too). provider=another Slapd makes this one its
    refreshAndPersist syncrepl consumer (read-only: writes go to the provider); schemas:
    more schema files to include. tls=(cert, key, ca) (e.g. from xproxyd_helpers.TestPki):
    StartTLS on the ldap:// port and ldaps:// on self.ldaps_port, the tools trusting ca.
    ldapi=True: also ldapi:// on NAME/run/ldapi (self.ldapi_url, URL-encoded path), where
    SASL EXTERNAL binds as gidNumber=G+uidNumber=U,cn=peercred,cn=external,cn=auth
    (map it with an authz-regexp line in global_conf, which goes before the database).
    slapd runs in the foreground (-d), started as its own process so that its PID is
    slapd's; stop()/kill() by that PID, start() again on the same database.

        ldap = Slapd(self.sandbox, self.procs).start()
        ldap.add(directory_ldif(ldap.suffix, "domain example.com\\nuser alice@example.com\\n"))
        ldap.modify("dn: ...\\nchangetype: modify\\nreplace: xproxyStatus\\nxproxyStatus: inactive\\n")
    """

    def __init__(self, sandbox, procs, name="slapd", suffix="dc=example,dc=com", port=None, provider=None,
                 server_id=1, debug="none", extra_conf="", maxsize=2 * 1024 ** 3, schemas=(), tls=None, ldapi=False,
                 global_conf=""):
        self.procs = procs
        self.name = name
        self.suffix = suffix
        self.rootdn = "cn=admin," + suffix
        self.rootpw = LDAP_ROOT_PW
        self.port = port or free_port()
        self.url = "ldap://127.0.0.1:%d/" % self.port
        self.listen = [self.url]
        self.tls_env = {}
        self.provider = provider
        self.debug = debug
        self.proc = None
        self.root = sandbox.mkdir(name)
        self.db = sandbox.mkdir(name, "db", mode=0o700)
        self.run = sandbox.mkdir(name, "run", mode=0o755)
        self.log = sandbox.path(name, "slapd.log")
        sandbox.logs.append(self.log)
        includes = "".join("include %s/%s.schema\n" % (LDAP_SCHEMA_DIR, s)
                           for s in ("core", "cosine", "nis", "inetorgperson"))
        includes += "".join("include %s\n" % p for p in (XPROXY_SCHEMA,) + tuple(schemas))
        if tls is not None:
            # slapd reads them as openldap: copies in its own directory.
            paths = []
            for src, base in zip(tls, ("server.crt", "server.key", "ca.crt")):
                paths.append(sandbox.path(name, base))
                shutil.copyfile(src, paths[-1])
                os.chmod(paths[-1], 0o600)
            global_conf = "TLSCertificateFile %s\nTLSCertificateKeyFile %s\nTLSCACertificateFile %s\n" % tuple(
                paths) + global_conf
            self.ldaps_port = free_port()
            self.ldaps_url = "ldaps://127.0.0.1:%d/" % self.ldaps_port
            self.listen.append(self.ldaps_url)
            self.tls_env = {"LDAPTLS_CACERT": tls[2]}
        if ldapi:
            self.ldapi_path = os.path.join(self.run, "ldapi")
            self.ldapi_url = "ldapi://%s/" % self.ldapi_path.replace("/", "%2F")
            self.listen.append(self.ldapi_url)
        conf = (includes +
                "pidfile %s/slapd.pid\nargsfile %s/slapd.args\n" % (self.run, self.run) +
                "modulepath /usr/lib/ldap\nmoduleload back_mdb\nmoduleload syncprov\n"
                "serverID %d\nsizelimit unlimited\ntimelimit unlimited\n" % server_id + global_conf +
                "database mdb\nmaxsize %d\nsuffix \"%s\"\nrootdn \"%s\"\nrootpw %s\ndirectory %s\n"
                % (maxsize, suffix, self.rootdn, ssha(self.rootpw), self.db) +
                "index objectClass,entryCSN,entryUUID eq\n"
                "index mail,uid,xproxyDomainName,xproxyAlias,xproxyLogin,cn eq\n"
                "limits * size=unlimited time=unlimited\n")
        if provider is not None:
            conf += ("syncrepl rid=001\n  provider=%s\n  type=refreshAndPersist\n  retry=\"1 +\"\n"
                     "  searchbase=\"%s\"\n  bindmethod=simple\n  binddn=\"%s\"\n  credentials=%s\n"
                     % (provider.url, provider.suffix, provider.rootdn, provider.rootpw))
        conf += "overlay syncprov\nsyncprov-checkpoint 100 1\n" + extra_conf
        self.conf = sandbox.write(os.path.join(name, "slapd.conf"), conf, mode=0o640)
        subprocess.run(["chown", "-R", "openldap:openldap", self.root], check=True)
        r = subprocess.run(["slaptest", "-u", "-f", self.conf], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("slaptest %s: %s" % (self.conf, r.stderr.strip()))

    def start(self, timeout=20):
        """Start slapd and wait until it answers a search of the root DSE."""
        with open(self.log, "ab") as out:
            argv = ["/usr/sbin/slapd", "-d", self.debug, "-h", " ".join(self.listen), "-f", self.conf, "-u", "openldap",
                    "-g", "openldap"]
            self.proc = self.procs.start(self.name, argv, stdout=out)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("slapd %s exited with %s; see %s" % (self.name, self.proc.returncode, self.log))
            return self._tool("ldapsearch", "-LLL", "-s", "base", "-b", "", "(objectClass=*)", "1.1",
                              check=False, bind=False, timeout=5).returncode == 0
        wait_until(up, timeout, 0.05, "slapd %s on %s" % (self.name, self.url))
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def stop(self):
        """SIGTERM by PID and wait (slapd flushes and exits)."""
        if self.proc is not None:
            self.procs.stop(self.proc)
            self.proc = None

    def kill(self):
        """SIGKILL by PID: a crash, no clean shutdown."""
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.procs.stop(self.proc)
            self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def _tool(self, tool, *args, stdin=None, check=True, bind=True, timeout=60):
        argv = [tool, "-x", "-H", self.url]
        if bind:
            argv += ["-D", self.rootdn, "-w", self.rootpw]
        r = subprocess.run(argv + list(args), input=stdin, capture_output=True, text=True, timeout=timeout,
                           env=dict(os.environ, **self.tls_env))
        if check and r.returncode != 0:
            raise RuntimeError("%s on %s: exit %d: %s" % (tool, self.url, r.returncode, r.stderr.strip()))
        return r

    def add(self, ldif, check=True):
        """ldapadd the LDIF text (entries separated by blank lines)."""
        return self._tool("ldapadd", stdin=ldif, check=check)

    def modify(self, ldif, check=True):
        """ldapmodify the LDIF text (changetype records)."""
        return self._tool("ldapmodify", stdin=ldif, check=check)

    def replace(self, dn, attribute, *values, check=True):
        """Replace (or with no values remove) every value of one attribute of dn."""
        ldif = "dn: %s\nchangetype: modify\nreplace: %s\n" % (dn, attribute)
        ldif += "".join("%s: %s\n" % (attribute, v) for v in values)
        return self.modify(ldif, check=check)

    def delete(self, *dns, check=True):
        return self._tool("ldapdelete", *dns, check=check)

    def modrdn(self, dn, newrdn, new_superior=None, check=True):
        """Rename dn to newrdn (the old RDN value removed), optionally under new_superior."""
        args = ["-r"] + (["-s", new_superior] if new_superior else []) + [dn, newrdn]
        return self._tool("ldapmodrdn", *args, check=check)

    def search(self, base=None, flt="(objectClass=*)", *attrs, scope="sub"):
        """ldapsearch -LLL: the LDIF text of the matching entries."""
        return self._tool("ldapsearch", "-LLL", "-o", "ldif-wrap=no", "-s", scope, "-b", base or self.suffix,
                          flt, *attrs).stdout

    def context_csn(self):
        """The suffix's contextCSNs (sorted), or [] before the first write."""
        out = self._tool("ldapsearch", "-LLL", "-s", "base", "-b", self.suffix, "(objectClass=*)", "contextCSN",
                         check=False).stdout
        return sorted(l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("contextCSN:"))

    def wait_in_sync(self, other, timeout=10.0):
        """Wait until this server and `other` report the same non-empty contextCSN."""
        return wait_until(lambda: (lambda a: a and a == other.context_csn() and a)(self.context_csn()), timeout,
                          0.05, "%s in sync with %s" % (self.name, other.name))

    def load_offline(self, ldif_path):
        """slapadd -q an LDIF file into the (stopped) database: fast bulk loading. Not -w:
        slapadd 2.5.13 -w aborts now and then (double free); syncprov finds the contextCSN
        from the entries' entryCSN when slapd starts."""
        assert self.proc is None, "slapadd needs slapd stopped"
        r = subprocess.run(["slapadd", "-q", "-f", self.conf, "-l", ldif_path], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("slapadd: %s" % r.stderr.strip()[-2000:])
        subprocess.run(["chown", "-R", "openldap:openldap", self.db], check=True)


# The LDAP tree of the tests and benchmarks, from the directory file's compact format
# (doc/directory.md): each `domain`, `user` and `mta` line becomes one entry with the
# default mapping of the LDAP backend (xproxyDomain, xproxyUser, xproxyMta):
#   SUFFIX                                   dcObject + organization
#   ou=domains,SUFFIX  /  ou=mtas,SUFFIX     organizationalUnit
#   ou=DOMAIN,ou=domains,SUFFIX              organizationalUnit + xproxyDomain
#   uid=LOCAL,ou=DOMAIN,ou=domains,SUFFIX    inetOrgPerson + xproxyUser (mail: LOCAL@DOMAIN)
#   cn=NAME,ou=mtas,SUFFIX                   xproxyMta
_LDIF_ATTRS = {"state": "xproxyStatus", "services": "xproxyServices", "require_tls": "xproxyRequireTLS",
               "admin": "xproxyAdmin", "postmaster": "xproxyPostmaster", "home": "xproxyHome",
               "alias": "xproxyAlias", "login": "xproxyLogin", "cert": "xproxyCertFingerprint",
               "destinations": "xproxyDestination", "encoding": "xproxyEncoding", "tls": "xproxyTLS",
               "tls-name": "xproxyTLSName"}
_LDIF_LISTS = ("alias", "login", "cert")  # multi-valued: one value each


def domain_dn(suffix, domain):
    return "ou=%s,ou=domains,%s" % (domain, suffix)


def user_dn(suffix, address):
    local, domain = address.rsplit("@", 1)
    return "uid=%s,%s" % (local, domain_dn(suffix, domain))


def mta_dn(suffix, name):
    return "cn=%s,ou=mtas,%s" % (name, suffix)


def ldif_base(suffix):
    """The suffix entry and the two containers."""
    dc = suffix.split(",")[0].split("=", 1)[1]
    return ("dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: %s\no: %s\n\n"
            "dn: ou=domains,%s\nobjectClass: organizationalUnit\nou: domains\n\n"
            "dn: ou=mtas,%s\nobjectClass: organizationalUnit\nou: mtas\n\n" % (suffix, dc, dc, suffix, suffix))


def ldif_entries(suffix, directory_text):
    """Yield one LDIF entry (text ending in a blank line) per line of a directory-file text."""
    for raw in directory_text.splitlines():
        words = []
        for w in raw.split():
            if w.startswith("#"):
                break
            words.append(w)
        if not words:
            continue
        kind, name, attrs = words[0], words[1], []
        for w in words[2:]:
            k, v = w.split("=", 1)
            attr = _LDIF_ATTRS[k]
            if k == "require_tls":
                v = "TRUE" if v.lower() in ("yes", "true", "on", "1") else "FALSE"
            values = v.split(",") if k in _LDIF_LISTS else [v]
            if k == "alias":  # the file names local parts, LDAP full addresses
                values = [a if "@" in a else a + "@" + name.rsplit("@", 1)[1] for a in values]
            attrs += ["%s: %s" % (attr, x) for x in values]
        if kind == "domain":
            head = ["dn: " + domain_dn(suffix, name), "objectClass: organizationalUnit", "objectClass: xproxyDomain",
                    "ou: " + name, "xproxyDomainName: " + name]
        elif kind == "user":
            local = name.rsplit("@", 1)[0]
            head = ["dn: " + user_dn(suffix, name), "objectClass: inetOrgPerson", "objectClass: xproxyUser",
                    "uid: " + local, "cn: " + local, "sn: " + local, "mail: " + name]
        elif kind == "mta":
            head = ["dn: " + mta_dn(suffix, name), "objectClass: xproxyMta", "cn: " + name]
        else:
            raise ValueError("unknown line %r" % raw)
        yield "\n".join(head + attrs) + "\n\n"


def directory_ldif(suffix, directory_text, base=True):
    """The whole LDIF text for a directory-file text (with the suffix and containers)."""
    return (ldif_base(suffix) if base else "") + "".join(ldif_entries(suffix, directory_text))


# ---------------------------------------------------------------- HAProxy

def haproxy_config(sandbox, port, backend_port, mode=None, backend_host="127.0.0.1", listen_host="127.0.0.1",
                   server_options="", frontend_lines=()):
    """Writes and checks HAProxy's tcp-mode configuration (see HAProxy); returns its path."""
    bind = "[%s]" % listen_host if ":" in listen_host else listen_host
    backend = "[%s]" % backend_host if ":" in backend_host else backend_host
    fe_extra = "".join("    %s\n" % l for l in frontend_lines)
    cfg = sandbox.write("haproxy-%d.cfg" % port, """global
    maxconn 1000
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind %s:%d
%s    default_backend be
backend be
    server s1 %s:%d %s %s
""" % (bind, port, fe_extra, backend, backend_port, mode or "", server_options))
    r = subprocess.run(["haproxy", "-c", "-f", cfg], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("haproxy config invalid: %s%s" % (r.stdout, r.stderr))
    return cfg


class HAProxy:
    """HAProxy in tcp mode: listen on listen_host:port, forward to the backend.

    mode: "send-proxy-v2", "send-proxy" or None (plain TCP); server_options: more words on
    the server line (e.g. "proxy-v2-options crc32c,unique-id", "check check-send-proxy
    inter 200ms"); frontend_lines: extra lines in the frontend (e.g. unique-id-format).
    """

    def __init__(self, sandbox, procs, backend_port, mode="send-proxy-v2", port=None, backend_host="127.0.0.1",
                 listen_host="127.0.0.1", server_options="", frontend_lines=()):
        self.listen_host = listen_host
        self.port = port or free_port(listen_host)
        self.cfg = haproxy_config(sandbox, self.port, backend_port, mode, backend_host, listen_host, server_options,
                                  frontend_lines)
        self.log = sandbox.path("haproxy-%d.log" % self.port)
        sandbox.logs.append(self.log)
        with open(self.log, "wb") as out:
            self.proc = procs.start("haproxy", ["haproxy", "-db", "-f", self.cfg], stdout=out)
        # The probe is a connection too: the backend sees one session without payload.
        wait_for_port(listen_host, self.port)


class Nginx:
    """nginx's stream module answering every connection with "$remote_addr\\n".

    An unmodified event-driven server (accept4, non-blocking, epoll, forked workers);
    env: the master's environment (LD_PRELOAD and XPROXY_* for the shim, which must name
    the port: pass one from free_port()). access: the
    access log, one "$remote_addr:$remote_port" line per connection.
    """

    def __init__(self, sandbox, procs, env=None, port=None, workers=2, worker_connections=1024):
        self.port = port or free_port()
        self.root = sandbox.mkdir("nginx-%d" % self.port)
        os.makedirs(os.path.join(self.root, "logs"), exist_ok=True)
        self.access = os.path.join(self.root, "logs", "stream.log")
        sandbox.logs.append(self.access)
        conf = sandbox.write("nginx-%d/nginx.conf" % self.port, """
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes %(workers)d;
pid %(root)s/nginx.pid;
error_log %(root)s/logs/error.log;
events { worker_connections %(wc)d; }
stream {
    log_format peer '$remote_addr:$remote_port';
    access_log %(access)s peer;
    server {
        listen 127.0.0.1:%(port)d;
        return "$remote_addr\\n";
    }
}
""" % {"root": self.root, "port": self.port, "access": self.access, "workers": workers,
       "wc": worker_connections})
        self.master = procs.start("nginx", ["nginx", "-p", self.root + "/", "-c", conf, "-g", "daemon off;"],
                                  env=env)
        wait_for_port("127.0.0.1", self.port)


# ---------------------------------------------------------------- capture server

class CaptureServer:
    """Listens on host:port; records each connection's raw bytes (self.sessions[i]) and
    peer address (self.peers[i]).

    greeting: bytes sent first on every connection; respond(conn_index, data_so_far) ->
    bytes or None is called after each read and may answer. Runs in daemon threads;
    close() stops it (also registered as a cleanup by E2ETestCase.capture()).
    """

    def __init__(self, port=None, greeting=None, respond=None, host="127.0.0.1"):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port or 0))
        self.sock.listen(64)
        self.host = host
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
            try:
                if self.greeting:
                    conn.sendall(self.greeting)
                while not self.closed:
                    data = conn.recv(65536)
                    if not data:
                        return
                    with self.lock:
                        self.sessions[idx] += data
                        so_far = self.sessions[idx]
                    if self.respond:
                        out = self.respond(idx, so_far)
                        if out:
                            conn.sendall(out)
            except OSError:
                return

    def wait_bytes(self, idx, n, timeout=10.0):
        return wait_until(lambda: len(self.sessions) > idx and len(self.sessions[idx]) >= n, timeout, 0.02,
                          "%d bytes on capture connection %d" % (n, idx))

    def wait_session(self, pred, timeout=10.0, what="a matching capture session"):
        """The first session whose bytes satisfy pred(bytes)."""
        def find():
            with self.lock:
                return next((s for s in self.sessions if pred(s)), None)
        return wait_until(find, timeout, 0.02, what)

    def close(self):
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def policy_responder(action="DUNNO"):
    """A CaptureServer respond function answering every complete Postfix policy request
    (terminated by an empty line) exactly once with action=ACTION."""
    answered = {}

    def respond(idx, data):
        complete = data.count(b"\n\n")
        todo = complete - answered.get(idx, 0)
        answered[idx] = complete
        return ("action=%s\n\n" % action).encode() * todo if todo > 0 else None
    return respond


def split_requests(data):
    """Raw policy-protocol bytes -> list of {name: value} dicts, one per request."""
    out = []
    for block in data.decode("utf-8", "replace").split("\n\n"):
        if block.strip():
            out.append(dict(line.split("=", 1) for line in block.split("\n") if "=" in line))
    return out


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


class SmtpClient:
    """An interactive SMTP client: connects from `source` (any 127.0.0.x, or ::1), sends
    `preamble` raw bytes first (e.g. a PROXY header), then reads the greeting
    (self.greeting = (code, text)).

        c = SmtpClient(port, source="127.0.0.5")
        c.ehlo("client.example")   # -> (code, text); c.extensions {"XCLIENT": "NAME ADDR ..."}
        c.cmd("MAIL FROM:<a@example.org>")
        c.data("Subject: x\\r\\n\\r\\nbody\\r\\n")   # DATA + body + "."
        c.close()                 # QUIT
    """

    def __init__(self, port, source="127.0.0.1", host="127.0.0.1", preamble=b"", timeout=15.0,
                 read_greeting=True):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.extensions = {}
        try:
            self.sock.bind((source, 0))
            self.local = self.sock.getsockname()
            self.sock.connect((host, port))
            if preamble:
                self.sock.sendall(preamble)
            self.file = self.sock.makefile("rb")
            self.greeting = self.reply() if read_greeting else None
        except BaseException:
            self.sock.close()
            raise

    def reply(self):
        return read_reply(self.file)

    def send(self, data):
        """Raw bytes (or str) without waiting for a reply."""
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def cmd(self, line):
        """One command line (CRLF added when missing); returns (code, text)."""
        data = line.encode() if isinstance(line, str) else line
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        self.sock.sendall(data)
        return self.reply()

    def ehlo(self, name="client.example"):
        r = self.cmd("EHLO " + name)
        self.extensions = {}
        for l in r[1].splitlines()[1:]:
            words = l[4:].split(" ", 1)
            if words[0]:
                self.extensions[words[0].upper()] = words[1] if len(words) > 1 else ""
        return r

    def data(self, body):
        """DATA, then body (dot-stuffed by the caller) and the terminating dot."""
        r = self.cmd("DATA")
        if r[0] != 354:
            return r
        if isinstance(body, str):
            body = body.encode()
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        self.sock.sendall(body + b".\r\n")
        return self.reply()

    def close(self, quit=True):
        try:
            if quit:
                self.cmd("QUIT")
        except (OSError, SmtpReplyError):
            pass
        finally:
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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
              body="Subject: test\r\n\r\nhello\r\n", preamble=b"", helo="client.example.org", extra=(),
              host="127.0.0.1"):
    """One message through a raw SMTP session; returns the replies (greeting first)."""
    cmds = ["EHLO %s" % helo] + list(extra) + ["MAIL FROM:<%s>" % sender, "RCPT TO:<%s>" % rcpt, "DATA",
                                             body + ".\r\n", "QUIT"]
    return smtp_session(port, cmds, source=source, preamble=preamble, host=host)


def queued(replies):
    """The queue id from a '250 2.0.0 Ok: queued as ID' reply, or None."""
    for _, text in replies:
        m = re.match(r"250 2\.0\.0 Ok: queued as (\w+)", text)
        if m:
            return m.group(1)
    return None


def swaks(port, source="127.0.0.1", sender="sender@example.org", rcpt="rcpt@example.net", extra=(),
          server="127.0.0.1", timeout=30, helo=None, headers=(), body=None):
    """Run swaks from `source` (--local-interface); headers: ["Name: value", ...].
    Returns (exit code, transcript)."""
    argv = ["swaks", "--server", server, "--port", str(port), "--local-interface", source,
            "--from", sender, "--to", rcpt, "--timeout", "15"]
    if helo:
        argv += ["--helo", helo]
    for h in headers:
        argv += ["--add-header", h]
    if body is not None:
        argv += ["--body", body]
    argv += list(extra)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout + r.stderr


def wire(args, stdin=b""):
    """Run xproxy-wire; returns (rc, stdout bytes, stderr text)."""
    r = subprocess.run([binary("tools/xproxy-wire")] + list(args), input=stdin, capture_output=True, timeout=30)
    return r.returncode, r.stdout, r.stderr.decode("utf-8", "replace")


def parse_kv(text):
    """key=value lines -> dict (repeated keys: the first under key, all under key + '*')."""
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
    On failure the sandbox is kept (its path printed) and its logs are printed."""

    def setUp(self):
        if os.geteuid() != 0:
            self.fail("end-to-end tests need root (Postfix, smtp-sink -u nobody)")
        self.procs = Procs()
        self.sandbox = Sandbox(self.id().split(".")[-1][:40])

    def capture(self, **kw):
        """A CaptureServer closed after the test."""
        cap = CaptureServer(**kw)
        self.addCleanup(cap.close)
        return cap

    def _failed(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return False
        result = getattr(outcome, "result", None)
        errors = list(getattr(outcome, "errors", []) or [])
        if result is not None:
            errors += [(t, e) for t, e in result.errors + result.failures
                       if t is self or getattr(t, "test_case", None) is self]
        return any(e for _, e in errors)

    def tearDown(self):
        try:
            self.procs.stop_all()
        finally:
            if self._failed():
                self.sandbox.keep()
                self.sandbox.dump_logs()
            else:
                self.sandbox.remove()
            if self.procs in Procs._all:
                Procs._all.remove(self.procs)


def main():
    unittest.main(verbosity=2)
