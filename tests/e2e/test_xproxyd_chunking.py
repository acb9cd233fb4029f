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

import socket

from harness import E2ETestCase, Postfix, SmtpClient, SmtpSink, free_port, main, smtp_session, wait_until
from xproxyd_helpers import (ChunkServer, Exim, FakeDownstream, Tap, Xproxyd, bdat_chunks, bdat_session,
                             to_data_form, unstuff)

# Lines starting with ".", a "." line, bare LF, and no final line end.
TRICKY = (b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <bdat@example.org>\r\nFrom: <s@example.org>\r\n"
          b"To: <r@example.net>\r\nSubject: chunks\r\n\r\n.leading dot\r\n.\r\nbare lf\n..two dots\nend")


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
        err = Exim(self.sandbox, port).send(message)
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

    def test_a_reply_to_data_other_than_354_is_never_the_reply_to_bdat_last(self):
        # A downstream out of step (250 to DATA: the body never went) must not make
        # xproxyd answer BDAT LAST with 250.
        fake = FakeDownstream(replies={"DATA": "250 2.0.0 not really"})
        self.addCleanup(fake.close)
        xp = self.xproxyd([fake.port])
        replies = smtp_session(xp.port, ["EHLO c.example", "MAIL FROM:<a@example.org>", "RCPT TO:<r@example.net>",
                                         b"BDAT 5 LAST\r\nhello"])
        self.assertEqual([code for code, _ in replies[2:]], [250, 250, 451], replies)
        self.assertEqual(fake.messages, [])

    def test_a_bdat_line_xproxyd_cannot_read_never_turns_its_chunk_into_commands(self):
        # Too long, with a NUL, or with a tab: the chunk's size is unknown, so the session
        # ends instead of reading the chunk's bytes as commands.
        srv = self.server()
        xp = self.xproxyd([srv.port])
        chunk = b"RSET\r\nMAIL FROM:<smuggled@evil.example>\r\nRCPT TO:<victim@example.net>\r\n"
        for line in (b"BDAT %d " % len(chunk) + b"X" * 3000, b"BDAT %d\0" % len(chunk), b"BDAT\t%d LAST" % len(chunk)):
            with self.subTest(line=line[:12]):
                replies = smtp_session(xp.port, ["EHLO c.example", "MAIL FROM:<a@example.org>",
                                                 "RCPT TO:<r@example.net>", line + b"\r\n" + chunk, "NOOP"])
                codes = [code for code, _ in replies[2:]]
                self.assertEqual(codes[:3], [250, 250, 501], replies)
                self.assertTrue(replies[5][1].startswith("421 4.5.0"), replies)  # then the session ends
        self.assertFalse(any("smuggled" in c for c in srv.commands), srv.commands)


if __name__ == "__main__":
    main()
