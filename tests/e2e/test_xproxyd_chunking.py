"""CHUNKING (RFC 3030) through xproxyd, both directions.

A client sends its body with BDAT: xproxyd advertises CHUNKING, reads each chunk by its
size (pipelined with the commands around it), answers intermediate chunks 250 and BDAT
LAST with the downstream's final reply. A downstream that advertises CHUNKING gets the
chunks as BDAT, byte for byte (a fake one recording them, and real Postfix, whose
disconnect line counts the BDAT commands); one without it (smtp-sink, the fake one) gets
DATA with the body in DATA's form: dot-stuffed, CRLF line ends, CRLF added at the end.
Refusals of a chunk or of the last chunk are the client's reply to that BDAT; a
destination lost after the first chunk is replaced by the next one from the body copy.
Exim 4.96, a real BDAT sender that pipelines QUIT behind BDAT LAST, delivers through
xproxyd to targets with and without CHUNKING (fetched with apt-get download and
extracted under /var/tmp, once)."""

import glob
import os
import socket
import subprocess
import tempfile
import threading

from harness import E2ETestCase, Postfix, SmtpClient, SmtpSink, _uid, free_port, main, read_text, wait_until
from xproxyd_helpers import Xproxyd

# Lines starting with ".", a "." line, bare LF, and no final line end.
TRICKY = (b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <bdat@example.org>\r\nFrom: <s@example.org>\r\n"
          b"To: <r@example.net>\r\nSubject: chunks\r\n\r\n.leading dot\r\n.\r\nbare lf\n..two dots\nend")


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
    return b"".join(l[1:] if l.startswith(b".") else l for l in wire.splitlines(keepends=True))


class ChunkServer:
    """A scriptable SMTP downstream on 127.0.0.1 that reads BDAT chunks by their size.

    chunking: advertise CHUNKING; refuse_chunk: {n: reply} answers the n-th BDAT of a
    transaction (1-based) with that reply; refuse_last: the reply to BDAT LAST; die_after:
    close the connection after reading this many BDAT chunks (no reply to the last one).
    bdats: every BDAT line received; messages: (how, body) of accepted messages, the body
    raw for BDAT and as it came (dot-stuffed, without the final dot) for DATA."""

    def __init__(self, chunking=True, refuse_chunk=None, refuse_last=None, die_after=None):
        self.chunking, self.refuse_chunk, self.refuse_last, self.die_after = chunking, refuse_chunk or {}, refuse_last, die_after
        self.bdats, self.messages, self.commands = [], [], []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
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
        f = conn.makefile("rb")

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
                            say(self.refuse_last)
                        elif last:
                            self.messages.append(("bdat", body))
                            say("250 2.0.0 Ok: queued as CHUNK%d" % len(self.messages))
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
                            say(self.refuse_last)
                        else:
                            self.messages.append(("data", data))
                            say("250 2.0.0 Ok: queued as DATA%d" % len(self.messages))
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


class Tap:
    """A TCP relay from 127.0.0.1:port to target_port that records what the client sends
    (self.sent: bytes of each connection)."""

    def __init__(self, target_port):
        self.target_port, self.sent = target_port, []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._run, daemon=True).start()

    def close(self):
        self.sock.close()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.target_port))
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


def split3(raw):
    """TRICKY in three chunks, cut inside lines and around the line ends."""
    return [(raw[:50], False), (raw[50:130], False), (raw[130:], True)]


class XproxydChunking(E2ETestCase):
    def server(self, **kw):
        s = ChunkServer(**kw)
        self.addCleanup(s.close)
        return s

    def xproxyd(self, ports, name="xproxyd", extra=()):
        dests = ",".join("127.0.0.1:%d" % p for p in ports)
        return Xproxyd(self.sandbox, self.procs, ["d destinations=%s encoding=none" % dests], name=name, extra=extra)

    def test_chunks_relayed_as_bdat_byte_for_byte(self):
        ds = self.server()
        xp = self.xproxyd([ds.port])
        replies = bdat_session(xp.port, split3(TRICKY))
        self.assertEqual([r[0] for r in replies], [250, 250, 250, 250, 250, 221], replies)
        self.assertIn("CHUNK1", replies[4][1])  # the downstream's reply to BDAT LAST
        self.assertEqual(ds.messages, [("bdat", TRICKY)])
        self.assertEqual(ds.bdats, ["BDAT 50", "BDAT 80", "BDAT %d LAST" % (len(TRICKY) - 130)])
        xp.wait_log(r"event=relayed .*code=250 .*body_in=bdat body_out=bdat chunks=3")

    def test_chunks_relayed_as_data_without_chunking(self):
        ds = self.server(chunking=False)
        xp = self.xproxyd([ds.port])
        replies = bdat_session(xp.port, split3(TRICKY))
        self.assertEqual([r[0] for r in replies], [250, 250, 250, 250, 250, 221], replies)
        self.assertIn("DATA1", replies[4][1])
        self.assertEqual(ds.messages, [("data", to_data_form(TRICKY))])
        self.assertTrue(ds.messages[0][1].endswith(b"..two dots\r\nend\r\n"))
        self.assertIn(b"\r\n..\r\n", ds.messages[0][1])
        self.assertEqual(ds.bdats, [])
        xp.wait_log(r"event=relayed .*code=250 .*body_in=bdat body_out=data chunks=3")

    def test_bdat_zero_last_and_pipelined_transactions(self):
        for chunking in (True, False):
            with self.subTest(chunking=chunking):
                ds = self.server(chunking=chunking)
                xp = self.xproxyd([ds.port], name="xproxyd-%s" % chunking)
                c = SmtpClient(xp.port)
                c.ehlo("client.example")
                # One write: a message ending with BDAT 0 LAST, RSET, a second message in one
                # chunk, a transaction abandoned after a chunk by RSET, a third, then QUIT.
                c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<r@example.net>\r\nBDAT 6\r\nfirst\nBDAT 0 LAST\r\n"
                       b"RSET\r\nMAIL FROM:<b@example.org>\r\nRCPT TO:<r@example.net>\r\nBDAT 8 LAST\r\nsecond\r\n"
                       b"MAIL FROM:<c@example.org>\r\nRCPT TO:<r@example.net>\r\nBDAT 6\r\nRSET\r\nRSET\r\n"
                       b"MAIL FROM:<d@example.org>\r\nRCPT TO:<r@example.net>\r\nBDAT 0 LAST\r\nQUIT\r\n")
                codes = [c.reply()[0] for _ in range(16)]
                c.sock.close()
                self.assertEqual(codes, [250] * 15 + [221])
                how = "bdat" if chunking else "data"
                want = [b"first\n", b"second\r\n", b""] if chunking else [b"first\r\n", b"second\r\n", b""]
                wait_until(lambda: len(ds.messages) == 3, 10, what="three messages")
                self.assertEqual(ds.messages, [(how, m) for m in want])

    def test_command_errors(self):
        ds = self.server()
        xp = self.xproxyd([ds.port])
        c = SmtpClient(xp.port)
        c.ehlo("client.example")
        # BDAT before MAIL: the chunk is read and dropped, never taken for commands.
        c.send(b"BDAT 6\r\nNOOP\r\n")
        self.assertEqual(c.reply()[0], 503)
        self.assertEqual(c.cmd("MAIL FROM:<s@example.org>")[0], 250)
        c.send(b"BDAT 6 LAST\r\nQUIT\r\n")
        self.assertEqual(c.reply(), (554, "554 5.5.1 Error: no valid recipients"))
        self.assertEqual(c.cmd("RCPT TO:<r@example.net>")[0], 250)
        # A bad argument with a known size: its chunk is dropped, 501.
        c.send(b"BDAT 6 FIRST\r\nQUIT\r\n")
        self.assertEqual(c.reply()[0], 501)
        c.send(b"BDAT 3\r\nabc")
        self.assertEqual(c.reply()[0], 250)
        self.assertEqual(c.cmd("DATA"), (503, "503 5.5.1 Error: DATA after BDAT"))
        self.assertEqual(c.cmd("RCPT TO:<x@example.net>")[0], 503)
        c.send(b"BDAT 3 LAST\r\ndef")
        self.assertEqual(c.reply()[0], 250)
        self.assertEqual(ds.messages, [("bdat", b"abcdef")])
        # Without a size nobody knows where the chunk ends: 501, then 421 and the end.
        self.assertEqual(c.cmd("MAIL FROM:<s@example.org>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<r@example.net>")[0], 250)
        self.assertEqual(c.cmd("BDAT x LAST")[0], 501)
        self.assertEqual(c.reply()[0], 421)
        self.assertEqual(c.file.read(), b"")
        c.sock.close()
        self.assertEqual(len(ds.messages), 1)

    def test_chunk_over_max_message_size(self):
        ds = self.server()
        xp = self.xproxyd([ds.port], extra=["--max-message-size", "100"])
        replies = bdat_session(xp.port, [(b"x" * 60, False), (b"y" * 60, False), (b"z", True)])
        # MAIL, RCPT, 250 for the first chunk, 552 for the one that goes over: the
        # transaction is over, so the last BDAT has no MAIL.
        self.assertEqual([r[0] for r in replies], [250, 250, 250, 552, 503, 221], replies)
        self.assertEqual(ds.messages, [])

    def test_refused_chunk_is_the_reply_to_that_bdat(self):
        for reply in ("452 4.3.1 Insufficient system storage", "554 5.6.0 Content refused"):
            with self.subTest(reply=reply):
                ds = self.server(refuse_chunk={2: reply})
                xp = self.xproxyd([ds.port], name="xproxyd-%s" % reply[:3])
                replies = bdat_session(xp.port, split3(TRICKY))
                # The second chunk's refusal is its reply; the rest of the transaction is
                # dropped and answered with its code, as Postfix's smtpd does.
                code = reply[:3]
                later = "%s %s.0.0 Discarded %d bytes after earlier error" % (code, code[0], len(TRICKY) - 130)
                self.assertEqual([r[1] for r in replies[2:5]], ["250 2.0.0 Ok: 50 bytes", reply, later], replies)
                self.assertEqual(replies[5][0], 221)
                self.assertEqual(ds.messages, [])
                self.assertEqual(len(ds.bdats), 2)  # the chunks after the refusal stay here
                xp.wait_log(r"event=not_relayed .*code=%s .*body_in=bdat body_out=bdat chunks=3" % code)

    def test_refused_last_chunk(self):
        for chunking in (True, False):
            with self.subTest(chunking=chunking):
                ds = self.server(chunking=chunking, refuse_last="550 5.7.1 Message refused")
                xp = self.xproxyd([ds.port], name="xproxyd-%s" % chunking)
                replies = bdat_session(xp.port, split3(TRICKY))
                self.assertEqual([r[1] for r in replies[2:5]],
                                 ["250 2.0.0 Ok: 50 bytes", "250 2.0.0 Ok: 80 bytes", "550 5.7.1 Message refused"])
                xp.wait_log(r"event=relayed .*code=550 .*body_in=bdat")

    def test_failover_after_the_first_chunk(self):
        for second_chunking in (True, False):
            with self.subTest(second_chunking=second_chunking):
                first = self.server(die_after=2)
                second = self.server(chunking=second_chunking)
                xp = self.xproxyd([first.port, second.port], name="xproxyd-%s" % second_chunking)
                replies = bdat_session(xp.port, split3(TRICKY))
                self.assertEqual([r[0] for r in replies], [250, 250, 250, 250, 250, 221], replies)
                self.assertEqual(sum(1 for r in replies[2:5] if "queued as" in r[1]), 1)
                self.assertEqual(first.messages, [])
                want = ("bdat", TRICKY) if second_chunking else ("data", to_data_form(TRICKY))
                self.assertEqual(second.messages, [want])
                if second_chunking:  # the copy of the first two chunks as one BDAT, then the last
                    self.assertEqual(second.bdats, ["BDAT 130", "BDAT %d LAST" % (len(TRICKY) - 130)])
                xp.wait_log(r"event=relayed .*failover=yes body_in=bdat")

    def test_failover_of_a_spilled_copy(self):
        # 200 kB in two chunks: the copy of the first is in the spill file (threshold 32 kB)
        # when the first destination dies without answering it.
        body = b"".join(b"%06d .line with a leading dot? no: " % i + (b"." if i % 7 == 0 else b"") + b"x" * 60 +
                        (b"\n" if i % 5 == 0 else b"\r\n") for i in range(2400))
        chunks = [(body[:100000], False), (body[100000:], True)]
        for second_chunking in (True, False):
            with self.subTest(second_chunking=second_chunking):
                first = self.server(die_after=1)
                second = self.server(chunking=second_chunking)
                xp = self.xproxyd([first.port, second.port], name="xproxyd-big-%s" % second_chunking)
                replies = bdat_session(xp.port, chunks)
                self.assertEqual([r[0] for r in replies], [250, 250, 250, 250, 221], replies)
                want = ("bdat", body) if second_chunking else ("data", to_data_form(body))
                self.assertEqual(second.messages, [want])
                if second_chunking:
                    self.assertEqual(second.bdats, ["BDAT 100000", "BDAT %d LAST" % (len(body) - 100000)])
                xp.wait_log(r"event=relayed .*spilled=yes failover=yes body_in=bdat")

    def test_stream_through_destination_lost_is_451(self):
        first = self.server(die_after=1)
        second = self.server()
        xp = self.xproxyd([first.port, second.port], extra=["--stream-through-if", "always"])
        replies = bdat_session(xp.port, split3(TRICKY))
        # No copy, no failover: 451 to the chunk that was lost, the rest dropped.
        self.assertEqual([r[1] for r in replies[2:5]],
                         ["451 4.4.2 Error: downstream failed during BDAT, try again later",
                          "451 4.0.0 Discarded 80 bytes after earlier error",
                          "451 4.0.0 Discarded %d bytes after earlier error" % (len(TRICKY) - 130)], replies)
        self.assertEqual(second.messages, [])

    def test_no_destination_left_is_451(self):
        first = self.server(die_after=1)
        xp = self.xproxyd([first.port])
        replies = bdat_session(xp.port, split3(TRICKY))
        self.assertEqual([r[0] for r in replies], [250, 250, 451, 451, 451, 221], replies)
        self.assertEqual(first.messages, [])

    def test_client_gone_inside_a_chunk_delivers_nothing(self):
        for chunking in (True, False):
            with self.subTest(chunking=chunking):
                ds = self.server(chunking=chunking)
                xp = self.xproxyd([ds.port], name="xproxyd-%s" % chunking)
                c = SmtpClient(xp.port)
                c.ehlo("client.example")
                self.assertEqual(c.cmd("MAIL FROM:<s@example.org>")[0], 250)
                self.assertEqual(c.cmd("RCPT TO:<r@example.net>")[0], 250)
                c.send(b"BDAT 10\r\n0123456789")
                self.assertEqual(c.reply()[0], 250)
                c.send(b"BDAT 100 LAST\r\nonly part")
                wait_until(lambda: any(b.startswith("BDAT 100") for b in ds.bdats) or not chunking, 10)
                c.sock.shutdown(socket.SHUT_RDWR)
                c.sock.close()
                xp.wait_log(r"event=data_aborted .*client disconnected.*body_in=bdat")
                self.assertEqual(ds.messages, [])

    # ---- real servers

    def exim_send(self, port, message):
        """Exim 4.96 delivers `message` (one recipient) to 127.0.0.1:port over SMTP, in the
        foreground; returns its stderr (-v: the SMTP dialogue)."""
        exe = exim_binary()
        d = self.sandbox.mkdir("exim")
        for sub in ("spool", "log"):
            os.chown(self.sandbox.mkdir("exim", sub), _uid("mail"), _gid("mail"))
        conf = self.sandbox.write("exim/exim.conf", EXIM_CONF % {"exe": exe, "dir": d, "port": port})
        r = subprocess.run([exe, "-C", conf, "-odf", "-v", "-f", "s@example.org", "r@example.net"], input=message,
                           capture_output=True, timeout=120)
        # Having dropped privileges for -C, the delivery logs to stderr ("LOG: MAIN").
        err = r.stderr.decode("latin-1")
        self.assertEqual(r.returncode, 0, err)
        self.assertRegex(err, r"=> r@example.net .* K C=\"250 ")  # K: delivered with CHUNKING
        return err

    def test_exim_sends_bdat_through_xproxyd(self):
        # Exim pipelines QUIT behind BDAT LAST; the message arrives as Exim sent it, as BDAT
        # or in DATA's form.
        message = (b"Subject: from exim\n\n.leading dot\n.\nline\n" + b"x" * 70 + b"\n") * 40 + b"end\n"
        for chunking in (True, False):
            with self.subTest(chunking=chunking):
                ds = self.server(chunking=chunking)
                xp = self.xproxyd([ds.port], name="xproxyd-exim-%s" % chunking)
                tap = Tap(xp.port)
                self.addCleanup(tap.close)
                dialogue = self.exim_send(tap.port, message)
                self.assertIn("CHUNKING", dialogue)
                wait_until(lambda: ds.messages, 10, what="the message at the target")
                cmds, sent = bdat_chunks(bytes(tap.sent[0]))
                self.assertTrue(cmds and cmds[-1].endswith(" LAST"), cmds)
                self.assertTrue(bytes(tap.sent[0]).endswith(b"QUIT\r\n"))
                self.assertRegex(dialogue, r"SMTP\+> QUIT")  # pipelined behind BDAT LAST
                self.assertIn(b"Subject: from exim", sent)
                want = ("bdat", sent) if chunking else ("data", to_data_form(sent))
                self.assertEqual(ds.messages, [want])
                xp.wait_log(r"event=relayed .*code=250 .*body_in=bdat body_out=%s" % ("bdat" if chunking else "data"))

    def test_postfix_takes_bdat_and_smtp_sink_gets_data(self):
        sink = SmtpSink(self.sandbox, self.procs)
        pf = Postfix(self.sandbox, self.procs, "target", free_port(), relay_port=sink.port,
                     main_cf={"smtpd_authorized_xclient_hosts": "127.0.0.1"})
        pf.start()
        direct_sink = SmtpSink(self.sandbox, self.procs, name="direct-sink")
        xp_pf = self.xproxyd([pf.port], name="xproxyd-postfix", extra=["--downstream-pool", "0"])
        xp_sink = self.xproxyd([direct_sink.port], name="xproxyd-sink")
        body = TRICKY
        for xp in (xp_pf, xp_sink):
            replies = bdat_session(xp.port, split3(body))
            self.assertEqual([r[0] for r in replies], [250, 250, 250, 250, 250, 221], replies)
        # Postfix counted three BDAT commands (its disconnect line) and passed the message on.
        pf.wait_log(r"disconnect from .* bdat=3 quit=1", timeout=20)
        xp_pf.wait_log(r"event=relayed .*body_out=bdat chunks=3")
        xp_sink.wait_log(r"event=relayed .*body_out=data chunks=3")
        # smtp-sink dumps the message unstuffed, with LF line ends, and one LF more.
        want = unstuff(to_data_form(body)).replace(b"\r\n", b"\n") + b"\n"
        for s in (sink, direct_sink):
            s.wait_messages(1, timeout=30)
            raw = open(s._files()[0], "rb").read()
            self.assertEqual(raw[raw.index(b"Date: "):], want)


if __name__ == "__main__":
    main()
