"""xproxyd_helpers: start xproxyd for the end-to-end tests, and a scriptable SMTP
downstream for fault injection (dies in the middle of DATA, answers slowly, rejects some
recipients), a CHUNKING-capable one, Exim as a BDAT sender, a recording TCP relay, the
"home" Postfix of the submission mode (XCLIENT from xproxyd, AUTH and TLS for clients). Used by
test_xproxyd_*.py; not a test itself."""

import glob
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time

from harness import Postfix, SmtpClient, _uid, binary, free_port, read_text, wait_for_log, wait_for_port

NSD_CONF = """server:
  ip-address: 127.0.0.1@{port}
  do-ip6: no
  username: ""
  chroot: ""
  zonesdir: "{dir}"
  database: ""
  zonelistfile: "{dir}/zone.list"
  xfrdfile: "{dir}/xfrd.state"
  xfrdir: "{dir}"
  pidfile: "{dir}/nsd.pid"
  logfile: "{dir}/nsd.log"
  server-count: 1
  verbosity: 1
remote-control:
  control-enable: no
"""


def tool(name):
    """The path of an installed program; a missing one fails the test (scripts/bootstrap installs it)."""
    path = shutil.which(name)
    if path is None:
        raise AssertionError("%s is not installed: run scripts/bootstrap" % name)
    return path


def free_udp_tcp_port():
    """A port free for both TCP (free_port checks that) and UDP on 127.0.0.1."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no port free for both UDP and TCP")


class Nsd:
    """NSD, authoritative for the given zones ({name: zone text}), on 127.0.0.1 and a free
    port, from the sandbox's nsd/ directory; stopped by PID with the test's processes.
    signed: {name: zone text} signed at start with fresh ldns keys (they expire four weeks
    after signing); anchors[name] is the DS file of each. dns_args: xproxyd's options to
    ask it (test. is a special-use name libunbound serves itself unless told)."""

    def __init__(self, sandbox, procs, zones, signed=None):
        nsd, checkconf = tool("nsd"), tool("nsd-checkconf")
        d = sandbox.mkdir("nsd")
        conf = NSD_CONF
        self.anchors = {}
        for name, text in zones.items():
            sandbox.write("nsd/%s.zone" % name, text)
            conf += "zone:\n  name: %s\n  zonefile: %s.zone\n" % (name, name)
        if signed:
            keygen, signzone = tool("ldns-keygen"), tool("ldns-signzone")
            run = lambda *argv: subprocess.run(argv, cwd=d, check=True, capture_output=True, text=True).stdout.strip()
            for name, text in signed.items():
                sandbox.write("nsd/%s.zone" % name, text)
                ksk = run(keygen, "-a", "ECDSAP256SHA256", "-k", name)
                zsk = run(keygen, "-a", "ECDSAP256SHA256", name)
                run(signzone, "%s.zone" % name, zsk, ksk)
                self.anchors[name] = sandbox.path("nsd", ksk + ".ds")
                conf += "zone:\n  name: %s\n  zonefile: %s.zone.signed\n" % (name, name)
        self.port = free_udp_tcp_port()
        path = sandbox.write("nsd/nsd.conf", conf.format(port=self.port, dir=d))
        subprocess.run([checkconf, path], check=True)
        sandbox.logs.append(sandbox.path("nsd", "nsd.log"))
        out = open(sandbox.path("nsd.out"), "w")
        self.proc = procs.start("nsd", [nsd, "-d", "-c", path], stdout=out)
        out.close()
        sandbox.logs.append(sandbox.path("nsd.out"))
        wait_for_port("127.0.0.1", self.port)
        self.dns_args = ["--dns-server", "127.0.0.1@%d" % self.port, "--dns-option", "local-zone: test. transparent"]


class Xproxyd:
    """xproxyd on 127.0.0.1:port with the given --downstream specs; logs to a file.
    listen_options: words after that --listen's address (e.g. "mode=submission")."""

    def __init__(self, sandbox, procs, downstreams, trusted="127.0.0.1/32", port=None, extra=(), name="xproxyd",
                 log_level="debug", env=None, listen_options=""):
        self.port = port or free_port()
        self.log_path = sandbox.path(name + ".log")
        sandbox.logs.append(self.log_path)
        self.spool = sandbox.mkdir(name + "-spool", mode=0o700)
        argv = [binary("xproxyd/xproxyd"), "--log", "stderr", "--log-level", log_level,
                "--listen", ("inet:127.0.0.1:%d " % self.port + listen_options).strip(), "--spool-dir", self.spool,
                "--hostname", "xproxyd.test.invalid"]
        if trusted:
            argv += ["--trusted-upstreams", trusted]
        for d in downstreams:
            argv += ["--downstream", d]
        argv += list(extra)
        self.out = open(self.log_path, "wb")
        self.proc = procs.start(name, argv, stdout=self.out, env=env)
        wait_for_port("127.0.0.1", self.port)

    def log(self):
        return read_text(self.log_path)

    def wait_log(self, regex, timeout=10.0):
        return wait_for_log(self.log_path, regex, timeout)


class _LoopbackServer:
    """Accepts on host:port (127.0.0.1, port 0: any) and serves each connection with
    self._serve in a daemon thread until close()."""

    def __init__(self, port=0, host="127.0.0.1"):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._run, daemon=True).start()

    def close(self):
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def _run(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        raise NotImplementedError


class FakeDownstream(_LoopbackServer):
    """A minimal SMTP server on host (127.0.0.1) whose faults are chosen per test.

    die_in_data: close the connection after this many body bytes (no reply to the dot);
    reject: recipients matching this regex get 550 5.1.1; data_reply: the answer to DATA
    instead of 354 ("close": the connection is closed without one); delay: seconds before
    every reply; greeting_delay: seconds before the greeting. messages: bodies completed with a
    250; replies_250: how many messages it acknowledged; body_bytes: body bytes received.

    tls: an ssl.SSLContext (server side): STARTTLS is offered and served with it; sni and
    tls_versions record what each handshake saw, tls_errors why one failed. after_220: raw
    bytes sent in the same write as "220" to STARTTLS, before the handshake (what an
    on-path attacker injects); after_tls: the reply to every command but EHLO and QUIT once
    TLS is up (e.g. a refusal). replies: {"MAIL"/"RCPT"/"DATA"/".": reply} answers that
    command (".": the end of data, the body being read) instead; change it while running to
    make the server recover. peers: the client address of every connection."""

    def __init__(self, die_in_data=None, reject=None, delay=0.0, greeting_delay=0.0, port=0,
                 ehlo=("PIPELINING", "SIZE 100000000", "8BITMIME"), data_reply=None, tls=None, after_220=b"",
                 after_tls=None, host="127.0.0.1", replies=None):
        self.die_in_data, self.reject, self.delay, self.greeting_delay = die_in_data, reject, delay, greeting_delay
        self.data_reply = data_reply
        self.ehlo_lines = list(ehlo) + (["STARTTLS"] if tls else [])
        self.tls, self.after_220, self.after_tls = tls, after_220, after_tls
        self.sni, self.tls_versions, self.tls_errors = [], [], []
        if tls:
            tls.sni_callback = lambda sock, name, ctx: self.sni.append(name)
        self.messages = []
        self.commands = []
        self.replies = dict(replies or {})
        self.peers = []
        self.data_started = 0
        self.body_bytes = 0  # body bytes received so far, all connections
        super().__init__(port, host)

    def _serve(self, conn):
        raw = conn
        f = conn.makefile("rb")
        secure = False
        in_mail = False
        try:
            self.peers.append(conn.getpeername()[0])
        except OSError:
            pass

        def say(text):
            if self.delay:
                time.sleep(self.delay)
            conn.sendall(text.encode() + b"\r\n")
        try:
            with raw:
                if self.greeting_delay:
                    time.sleep(self.greeting_delay)
                say("220 fake.test ESMTP")
                while True:
                    line = f.readline()
                    if not line:
                        return
                    cmd = line.decode("latin-1").rstrip("\r\n")
                    self.commands.append(cmd)
                    verb = cmd.split(" ", 1)[0].upper()
                    if verb == "STARTTLS" and self.tls and not secure:
                        raw.sendall(b"220 2.0.0 Ready to start TLS\r\n" + self.after_220)
                        try:
                            conn = self.tls.wrap_socket(raw, server_side=True)
                        except (ssl.SSLError, OSError) as e:
                            self.tls_errors.append(str(e))
                            return
                        self.tls_versions.append(conn.version())
                        f = conn.makefile("rb")
                        secure = True
                    elif secure and self.after_tls and verb not in ("EHLO", "QUIT"):
                        say(self.after_tls)
                    elif verb == "EHLO":
                        lines = ["fake.test"] + [l for l in self.ehlo_lines if not (secure and l == "STARTTLS")]
                        say("\r\n".join(("250-" if i + 1 < len(lines) else "250 ") + l
                                         for i, l in enumerate(lines)))
                    elif verb in ("MAIL", "RCPT") and verb in self.replies:
                        say(self.replies[verb])
                    elif verb == "MAIL" and in_mail:  # as Postfix: MAIL inside a transaction
                        say("503 5.5.1 Error: nested MAIL command")
                    elif verb == "MAIL":
                        in_mail = True
                        say("250 2.0.0 Ok")
                    elif verb == "RCPT" and self.reject and re.search(self.reject, cmd):
                        say("550 5.1.1 <%s>: Recipient address rejected" % cmd[8:].strip("<>"))
                    elif verb == "DATA" and self.data_reply == "close":
                        self.data_started += 1
                        conn.shutdown(socket.SHUT_RDWR)
                        return
                    elif verb == "DATA" and (self.data_reply or "DATA" in self.replies):
                        self.data_started += 1
                        say(self.replies.get("DATA") or self.data_reply)
                    elif verb == "DATA":
                        self.data_started += 1
                        say("354 go ahead")
                        body = b""
                        while not body.endswith(b"\r\n.\r\n") and body != b".\r\n":
                            chunk = f.readline()
                            if not chunk:
                                return
                            body += chunk
                            self.body_bytes += len(chunk)
                            if self.die_in_data is not None and len(body) >= self.die_in_data:
                                conn.shutdown(socket.SHUT_RDWR)
                                return
                        in_mail = False  # the end of data ends the transaction, whatever the reply
                        if "." in self.replies:
                            say(self.replies["."])
                            continue
                        self.messages.append(body)
                        in_mail = False
                        say("250 2.0.0 Ok: queued as FAKE%d" % len(self.messages))
                    elif verb == "QUIT":
                        say("221 2.0.0 Bye")
                        return
                    else:
                        if verb in ("RSET", "EHLO", "HELO"):
                            in_mail = False
                        say("250 2.0.0 Ok")
        except OSError:
            return


class RewritingRelay(_LoopbackServer):
    """An on-path attacker between xproxyd and its downstream: forwards both directions,
    replacing `old` with `new` (same length) in the first bytes xproxyd sends (the PROXY
    header, in plain text before any STARTTLS). rewritten: how many headers it changed."""

    def __init__(self, target_port, old, new):
        assert len(old) == len(new)
        self.target_port, self.old, self.new = target_port, old, new
        self.rewritten = 0
        super().__init__()

    def _serve(self, conn):
        try:
            up = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            conn.close()
            return
        threading.Thread(target=self._pipe, args=(up, conn, False), daemon=True).start()
        self._pipe(conn, up, True)

    def _pipe(self, src, dst, rewrite):
        first = rewrite
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if first and self.old in data:
                    data = data.replace(self.old, self.new, 1)
                    self.rewritten += 1
                first = False
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


class RecordingMilter(_LoopbackServer):
    """A minimal milter (Sendmail milter protocol v6, spoken by Postfix) that records, per
    MTA connection, the client address of each connect event and the MAIL FROM events,
    and lets everything through. events: list of lists of ("connect", addr) / ("mail",
    sender)."""

    def __init__(self):
        self.events = []
        super().__init__()

    @staticmethod
    def _read(conn, n):
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def _serve(self, conn):
        log = []
        self.events.append(log)

        def send(cmd, data=b""):
            conn.sendall(struct.pack("!I", len(data) + 1) + cmd + data)
        try:
            with conn:
                while True:
                    (length,) = struct.unpack("!I", self._read(conn, 4))
                    packet = self._read(conn, length)
                    cmd, data = packet[:1], packet[1:]
                    if cmd == b"O":
                        send(b"O", struct.pack("!III", 6, 0, 0))
                    elif cmd == b"C":
                        host, rest = data.split(b"\0", 1)
                        addr = rest[3:].split(b"\0", 1)[0].decode() if rest[:1] in (b"4", b"6") else ""
                        log.append(("connect", addr))
                        send(b"c")
                    elif cmd == b"M":
                        log.append(("mail", data.split(b"\0", 1)[0].decode("latin-1")))
                        send(b"c")
                    elif cmd == b"E":
                        send(b"a")
                    elif cmd in (b"D", b"A"):
                        continue
                    elif cmd == b"Q":
                        return
                    else:
                        send(b"c")
        except (EOFError, OSError):
            return


class TestPki:
    """A private CA and certificates it signs, made with openssl in the sandbox.

        pki = TestPki(sandbox)
        crt, key = pki.issue("mx", dns=["mx.test.invalid"], ips=["127.0.0.1"])
        pki.ca  # the CA certificate (PEM file) to trust"""

    def __init__(self, sandbox, name="ca"):
        self.sandbox = sandbox
        self.ca, self.ca_key = sandbox.path(name + ".crt"), sandbox.path(name + ".key")
        self._run(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=xproxy test CA " + name,
                   "-keyout", self.ca_key, "-out", self.ca])

    @staticmethod
    def _run(args):
        subprocess.run(["openssl"] + args, check=True, capture_output=True)

    def issue(self, name, dns=(), ips=(), cn=None):
        """A leaf certificate for these names and addresses: (cert, key), key mode 0600."""
        crt, key, csr = (self.sandbox.path(name + ext) for ext in (".crt", ".key", ".csr"))
        ext = self.sandbox.path(name + ".ext")
        sans = ["DNS:" + d for d in dns] + ["IP:" + i for i in ips]
        with open(ext, "w") as out:
            out.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                      "extendedKeyUsage=serverAuth\n" + ("subjectAltName=" + ",".join(sans) + "\n" if sans else ""))
        self._run(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + (cn or (list(dns) + list(ips) + [name])[0]),
                   "-keyout", key, "-out", csr])
        self._run(["x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key, "-CAcreateserial", "-days", "2",
                   "-extfile", ext, "-out", crt])
        os.chmod(key, 0o600)
        return crt, key

    def server_context(self, crt, key, versions=None):
        """An ssl server context with this certificate; versions=(min, max) ssl.TLSVersion."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        if versions:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # TLS 1.0/1.1 need it with OpenSSL 3
            ctx.minimum_version, ctx.maximum_version = versions
        return ctx


class HomePostfix:
    """The "home" Postfix of the submission mode: a private Postfix (harness.Postfix) that
    relays only authenticated mail, to [127.0.0.1]:relay_port (an SmtpSink that dumps to
    files, or a benchmark's CountingSink), and logs to pf.maillog.

      port             the listener xproxyd relays to: plain SMTP, XCLIENT allowed from
                       xclient_hosts (default 127.0.0.1/32); XCLIENT LOGIN= authenticates
                       the session (sasl_method=XCLIENT in the log), ADDR= and PORT= are
                       logged as the client (smtpd_client_port_logging)
      submission_port  (submission=True) what mail clients use directly: STARTTLS
                       (smtpd_tls_security_level=may) and AUTH only after it
                       (smtpd_tls_auth_only), checked by `dovecot`
      smtps_port       (smtps=True) the same with implicit TLS (smtpd_tls_wrappermode)

    Relay needs permit_sasl_authenticated: AUTH, or XCLIENT LOGIN= (which Postfix honours
    only with SASL enabled, hence SASL on every listener, with `dovecot` (a
    harness.Dovecot) as its server). The TLS certificate is issued for 127.0.0.1 and
    home.test.invalid by `pki` (a TestPki; a new one when not given): trust pki.ca.
    main_cf: more main.cf settings."""

    def __init__(self, sandbox, procs, relay_port, dovecot, pki=None, submission=False, smtps=False, name="home",
                 xclient_hosts="127.0.0.1/32", main_cf=None, services=()):
        self.pki = pki or TestPki(sandbox, name + "-ca")
        self.cert, self.key = self.pki.issue(name, dns=["%s.test.invalid" % name], ips=["127.0.0.1"])
        self.port = free_port()
        cfg = {
            "smtpd_authorized_xclient_hosts": xclient_hosts,
            "smtpd_client_port_logging": "yes",
            "smtpd_sasl_auth_enable": "yes",
            "smtpd_sasl_type": "dovecot",
            "smtpd_sasl_path": dovecot.sasl_path,
            "smtpd_sasl_security_options": "noanonymous",
            "smtpd_sasl_tls_security_options": "noanonymous",
            "smtpd_tls_cert_file": self.cert,
            "smtpd_tls_key_file": self.key,
            "smtpd_tls_security_level": "none",
            # Only authenticated sessions relay, whatever their address (mynetworks is not asked).
            "smtpd_relay_restrictions": "permit_sasl_authenticated, reject_unauth_destination",
            "smtpd_recipient_restrictions": "permit_sasl_authenticated, reject",
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_connection_rate_limit": "0",
        }
        cfg.update(main_cf or {})
        extra = list(services)
        tls = " -o smtpd_tls_security_level=may -o smtpd_tls_auth_only=yes"
        self.submission_port = self.smtps_port = None
        if submission:
            self.submission_port = free_port()
            extra.append("127.0.0.1:%d inet n - n - - smtpd%s -o syslog_name=postfix/submission"
                         % (self.submission_port, tls))
        if smtps:
            self.smtps_port = free_port()
            extra.append("127.0.0.1:%d inet n - n - - smtpd%s -o smtpd_tls_wrappermode=yes -o syslog_name=postfix/smtps"
                         % (self.smtps_port, tls))
        self.pf = Postfix(sandbox, procs, name, self.port, relay_port=relay_port, main_cf=cfg, services=extra,
                          ipv6=True).start()
        for p in (self.submission_port, self.smtps_port):
            if p:
                wait_for_port("127.0.0.1", p)

    def client_context(self):
        """An ssl client context that trusts this Postfix's certificate."""
        return ssl.create_default_context(cafile=self.pki.ca)

    def log(self):
        return self.pf.log()

    def wait_log(self, regex, timeout=10.0, start=0):
        return self.pf.wait_log(regex, timeout, start)


def to_data_form(raw):
    """What xproxyd sends as DATA for a chunked body (BdatToData), without the final dot."""
    out, bol, cr, i = bytearray(), True, False, 0
    for c in raw:
        ch = bytes([c])
        if cr:
            if ch == b"\r":
                continue
            out += b"\r\n"
            cr, bol = False, True
            if ch == b"\n":
                continue
        if ch == b"\r":
            cr = True
        elif ch == b"\n":
            out += b"\r\n"
            bol = True
        else:
            if bol and ch == b".":
                out += b"."
            out += ch
            bol = False
    if cr or not bol:
        out += b"\r\n"
    return bytes(out)


def unstuff(wire):
    """DATA's body without its dot-stuffing."""
    return b"".join(l[1:] if l.startswith(b".") else l for l in wire.splitlines(keepends=True))


class ChunkServer(_LoopbackServer):
    """A scriptable SMTP downstream on host (127.0.0.1) that reads BDAT chunks by their size.

    chunking: advertise CHUNKING; refuse_chunk: {n: reply} answers the n-th BDAT of a
    transaction (1-based) with that reply; refuse_last: the reply to BDAT LAST; die_after:
    close the connection after reading this many BDAT chunks (no reply to the last one).
    bdats: every BDAT line received; messages: (how, body) of accepted messages, the body
    raw for BDAT and as it came (dot-stuffed, without the final dot) for DATA; finals: its
    reply to every BDAT LAST and end of DATA; peers: the client address of every connection.
    refuse_last may be changed while it runs."""

    def __init__(self, chunking=True, refuse_chunk=None, refuse_last=None, die_after=None, port=0, host="127.0.0.1"):
        self.chunking, self.refuse_chunk, self.refuse_last, self.die_after = chunking, refuse_chunk or {}, refuse_last, die_after
        self.bdats, self.messages, self.commands, self.finals, self.peers = [], [], [], [], []
        super().__init__(port, host)

    def _serve(self, conn):
        f = conn.makefile("rb")
        self.peers.append(conn.getpeername()[0])

        def say(text):
            conn.sendall(text.encode() + b"\r\n")
        body, n, failed = b"", 0, None
        try:
            with conn:
                say("220 chunks.test ESMTP")
                while True:
                    line = f.readline()
                    if not line:
                        return
                    cmd = line.decode("latin-1").rstrip("\r\n")
                    self.commands.append(cmd)
                    verb = cmd.split(" ", 1)[0].upper()
                    if verb == "EHLO":
                        ext = ["chunks.test", "PIPELINING", "8BITMIME"] + (["CHUNKING"] if self.chunking else [])
                        say("\r\n".join(("250-" if i + 1 < len(ext) else "250 ") + e for i, e in enumerate(ext)))
                    elif verb == "BDAT" and self.chunking:
                        self.bdats.append(cmd)
                        words = cmd.split()
                        size, last = int(words[1]), len(words) > 2
                        data = f.read(size)
                        if len(data) < size:  # the client went away inside the chunk: nothing is kept
                            return
                        n += 1
                        if self.die_after is not None and n >= self.die_after:
                            conn.shutdown(socket.SHUT_RDWR)
                            return
                        body += data
                        if failed:
                            say(failed)
                        elif n in self.refuse_chunk:
                            failed = self.refuse_chunk[n]
                            say(failed)
                        elif last and self.refuse_last:
                            self.finals.append(self.refuse_last)
                            say(self.refuse_last)
                        elif last:
                            self.messages.append(("bdat", body))
                            self.finals.append("250 2.0.0 Ok: queued as CHUNK%d" % len(self.messages))
                            say(self.finals[-1])
                        else:
                            say("250 2.0.0 Ok: %d octets" % size)
                        if last:
                            body, n, failed = b"", 0, None
                    elif verb == "DATA":
                        say("354 go ahead")
                        data = b""
                        while True:
                            l = f.readline()
                            if not l:
                                return
                            if l == b".\r\n":
                                break
                            data += l
                        if self.refuse_last:
                            self.finals.append(self.refuse_last)
                        else:
                            self.messages.append(("data", data))
                            self.finals.append("250 2.0.0 Ok: queued as DATA%d" % len(self.messages))
                        say(self.finals[-1])
                    elif verb == "RSET":
                        body, n, failed = b"", 0, None
                        say("250 2.0.0 Ok")
                    elif verb == "QUIT":
                        say("221 2.0.0 Bye")
                        return
                    else:
                        say("250 2.0.0 Ok")
        except OSError:
            return


def bdat_session(port, chunks, rcpts=("r@example.net",), quit=True, extra=b""):
    """EHLO, MAIL, RCPT, then every (bytes, last) chunk with its BDAT, all in one write
    (PIPELINING); returns the replies after EHLO."""
    c = SmtpClient(port)
    c.ehlo("client.example")
    assert "CHUNKING" in c.extensions, c.extensions
    out = b"MAIL FROM:<s@example.org>\r\n" + b"".join(b"RCPT TO:<%s>\r\n" % r.encode() for r in rcpts)
    n = 1 + len(rcpts)
    for data, last in chunks:
        out += b"BDAT %d%s\r\n" % (len(data), b" LAST" if last else b"") + data
        n += 1
    out += extra
    if quit:
        out += b"QUIT\r\n"
        n += 1
    c.send(out)
    replies = []
    for _ in range(n):
        replies.append(c.reply())
    c.sock.close()
    return replies


EXIM_DIR = "/var/tmp/xproxy-exim4"  # extracted once, kept between runs


def exim_binary():
    """Exim 4.96 from Debian's archive (apt-get download + dpkg -x: it is never installed,
    so it does not replace the system's MTA); needs libidn12 (scripts/bootstrap). The binary
    looks up its compiled-in user at start, before reading any configuration: the system
    user exim4-base's postinst would create is created here (the test runs Exim as
    exim_user = mail)."""
    exe = os.path.join(EXIM_DIR, "root", "usr", "sbin", "exim4")
    if subprocess.run(["getent", "passwd", "Debian-exim"], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", "Debian-exim"], check=True)
    if os.path.exists(exe):
        return exe
    tmp = tempfile.mkdtemp(dir="/var/tmp", prefix="xproxy-exim4-")
    os.chmod(tmp, 0o755)
    r = subprocess.run(["apt-get", "download", "exim4-daemon-light", "exim4-base"], cwd=tmp, capture_output=True,
                       text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError("apt-get download exim4-daemon-light exim4-base failed: " + r.stderr)
    for deb in glob.glob(os.path.join(tmp, "*.deb")):
        subprocess.run(["dpkg", "-x", deb, os.path.join(tmp, "root")], check=True)
    try:
        os.rename(tmp, EXIM_DIR)
    except OSError:  # another run got there first
        pass
    return exe


EXIM_CONF = """
primary_hostname = exim.test.invalid
exim_path = %(exe)s
exim_user = mail
exim_group = mail
spool_directory = %(dir)s/spool
log_file_path = %(dir)s/log/%%slog
keep_environment =
begin routers
to_xproxyd:
  driver = manualroute
  route_list = * 127.0.0.1 byname
  self = send
  transport = to_xproxyd
begin transports
to_xproxyd:
  driver = smtp
  port = %(port)d
  allow_localhost
  hosts_try_chunking = *
begin retry
* * F,1m,1m
"""


def _gid(group):
    import grp
    return grp.getgrnam(group).gr_gid


class Exim:
    """Exim 4.96 (exim_binary()) with its own configuration, spool and log under the
    sandbox's `name` directory, routing every address to 127.0.0.1:port over SMTP with
    CHUNKING. Run as root with -C, it drops its privileges: what it logs goes to stderr
    ("LOG: MAIN"), which send() and queue_run() return with the -v dialogue."""

    def __init__(self, sandbox, port, name="exim"):
        self.exe = exim_binary()
        d = sandbox.mkdir(name)
        for sub in ("spool", "log"):
            os.chown(sandbox.mkdir(name, sub), _uid("mail"), _gid("mail"))
        self.conf = sandbox.write(name + "/exim.conf", EXIM_CONF % {"exe": self.exe, "dir": d, "port": port})

    def run(self, args, stdin=b""):
        """Exim with this configuration; (exit code, stderr as text)."""
        r = subprocess.run([self.exe, "-C", self.conf] + list(args), input=stdin, capture_output=True, timeout=120)
        return r.returncode, r.stderr.decode("latin-1")

    def deliver(self, message, rcpts, sender="s@example.org"):
        """Take `message` (all of it: a line with a lone dot is text, -oi) and deliver it in
        the foreground (-odf); (exit code, stderr)."""
        return self.run(["-odf", "-oi", "-v", "-f", sender] + list(rcpts), message)

    def send(self, message, rcpts=("r@example.net",), sender="s@example.org"):
        """deliver(), which must succeed; its stderr."""
        code, err = self.deliver(message, rcpts, sender)
        if code != 0:
            raise AssertionError("exim failed (%d): %s" % (code, err))
        return err

    def queue_run(self):
        """Deliver every queued message now, whatever the retry times (-qff); its stderr."""
        return self.run(["-qff", "-v"])[1]

    def queued(self):
        """How many messages are on its queue."""
        r = subprocess.run([self.exe, "-C", self.conf, "-bpc"], capture_output=True, text=True, timeout=30)
        return int(r.stdout)


class Tap:
    """A TCP relay from 127.0.0.1:port to target_port that records what the client sends
    (self.sent: bytes of each connection)."""

    def __init__(self, target_port):
        self.target_port, self.sent, self.conns = target_port, [], []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._run, daemon=True).start()

    def close(self):
        self.sock.close()
        for s in self.conns:
            s.close()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.target_port))
            self.conns += [conn, up]
            rec = bytearray()
            self.sent.append(rec)
            threading.Thread(target=self._pipe, args=(up, conn, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(conn, up, rec), daemon=True).start()

    @staticmethod
    def _pipe(src, dst, rec):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if rec is not None:
                    rec += data
                dst.sendall(data)
        except OSError:
            pass
        for s in (dst,):
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass


def bdat_chunks(stream):
    """The BDAT commands and the concatenated chunks of a recorded client stream."""
    cmds, body, i = [], b"", 0
    while i < len(stream):
        j = stream.index(b"\r\n", i)
        line = stream[i:j].decode("latin-1")
        i = j + 2
        if line.upper().startswith("BDAT "):
            cmds.append(line)
            n = int(line.split()[1])
            body += stream[i:i + n]
            i += n
    return cmds, body
