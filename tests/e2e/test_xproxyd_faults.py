"""xproxyd under faults: relay without loss.

Every test counts the 250 replies the client got for a message against the messages the
downstream stored: xproxyd never acknowledges a message the downstream did not accept,
and a message the client was told to retry is delivered exactly once when retried.
Downstreams are smtp-sink, a real Postfix, and a scriptable SMTP server that dies in the
middle of DATA, answers slowly or rejects some recipients. Resource limits: sessions in
all and per client (421 beyond them, the others still served) and the spill space shared
by all sessions (452 for the message that would exceed it, never a loss)."""

import hashlib
import os
import re
import signal
import socket
import subprocess
import time

from harness import E2ETestCase, Postfix, SmtpClient, SmtpSink, free_port, main, swaks, wait_until
from xproxyd_helpers import FakeDownstream, Xproxyd


def body_of(size):
    """A message of about `size` bytes whose lines include dot-stuffing cases."""
    lines = ["Subject: big", ""]
    n = 0
    while sum(len(l) + 2 for l in lines) < size:
        lines.append("..stuffed line %d" % n if n % 50 == 0 else "line %06d %s" % (n, "x" * 60))
        n += 1
    return "\r\n".join(lines) + "\r\n"


def sink_body(msg):
    """The message text after smtp-sink's own header lines."""
    return msg.split("Subject:", 1)[1] if "Subject:" in msg else msg


class XproxydFaults(E2ETestCase):
    def sink_behind_xproxyd(self, extra=(), verbose=False):
        """A real smtp-sink and an xproxyd relaying to it with XFORWARD: (sink, xproxyd)."""
        sink = SmtpSink(self.sandbox, self.procs, verbose=verbose)
        xp = Xproxyd(self.sandbox, self.procs, ["d destinations=127.0.0.1:%d encoding=xforward" % sink.port],
                     extra=list(extra))
        return sink, xp

    def fake(self, **kw):
        f = FakeDownstream(**kw)
        self.addCleanup(f.close)
        return f

    def mail(self, port, body="Subject: t\r\n\r\nhello\r\n", rcpts=("r@example.net",), source="127.0.0.1"):
        """One transaction; returns (replies to RCPTs, reply to the final dot or DATA)."""
        c = SmtpClient(port, source=source)
        try:
            c.ehlo("client.example")
            mail = c.cmd("MAIL FROM:<s@example.org>")
            if mail[0] != 250:
                return [], mail
            rr = [c.cmd("RCPT TO:<%s>" % r) for r in rcpts]
            return rr, c.data(body)
        finally:
            c.close()

    def test_acceptance4_downstream_killed_mid_data_upstream_retries_once(self):
        port = free_port()
        dying = self.fake(die_in_data=3000, port=port)
        xp = Xproxyd(self.sandbox, self.procs, ["d destinations=127.0.0.1:%d encoding=none" % port])
        a = Postfix(self.sandbox, self.procs, "gateway", free_port(), relay_port=xp.port,
                    main_cf={"smtp_send_xforward_command": "yes"})
        a.start()
        rc, out = swaks(a.port, source="127.0.0.66", body=body_of(20000))
        self.assertEqual(rc, 0, out)
        a.wait_log(r"status=deferred .*451 4\.4\.2", timeout=30)
        self.assertEqual(dying.data_started, 1)
        self.assertEqual(dying.messages, [])  # nothing was acknowledged
        self.assertIn("event=deferred", xp.log())
        # The downstream comes back as a real smtp-sink on the same port; A retries.
        dying.close()
        sink = SmtpSink(self.sandbox, self.procs, port=port)
        subprocess.run(["postqueue", "-c", a.conf, "-f"], check=True, capture_output=True)
        msgs = sink.wait_messages(1, timeout=40)
        a.wait_log(r"status=sent", timeout=20)
        time.sleep(1.5)
        msgs = sink.messages()
        self.assertEqual(len(msgs), 1)  # exactly once
        self.assertEqual(len(re.findall(r"status=sent", a.log())), 1)
        self.assertEqual(len(re.findall(r"event=relayed .*code=250", xp.log())), 1)
        self.assertIn("..stuffed line 50".replace("..", "."), msgs[0])

    def test_acceptance4_real_smtp_sink_killed_during_data(self):
        # smtp-sink waits 3 s before answering DATA (-w 3) and is killed (SIGKILL) in that
        # window: xproxyd has the message's DATA outstanding and no destination left.
        port = free_port()
        sink = SmtpSink(self.sandbox, self.procs, port=port, extra_args=("-w", "3"), name="sink1")
        xp = Xproxyd(self.sandbox, self.procs, ["d destinations=127.0.0.1:%d encoding=xforward" % port])
        a = Postfix(self.sandbox, self.procs, "gateway", free_port(), relay_port=xp.port,
                    main_cf={"smtp_send_xforward_command": "yes"})
        a.start()
        rc, out = swaks(a.port, source="127.0.0.66", body=body_of(5000))
        self.assertEqual(rc, 0, out)
        xp.wait_log(r"event=downstream_open", timeout=20)
        time.sleep(1)
        os.kill(sink.proc.pid, signal.SIGKILL)
        # xproxyd answered 354 at once and learns of the loss while the body comes in: the
        # 451 is the reply to the end of data.
        a.wait_log(r"status=deferred .*451 4\.4\.[12] ", timeout=30)
        self.procs.stop(sink.proc)
        # smtp-sink opens its dump file before the body: at most an empty file is left.
        self.assertEqual([m for m in sink.messages() if m.strip()], [])
        sink2 = SmtpSink(self.sandbox, self.procs, port=port, name="sink2")
        subprocess.run(["postqueue", "-c", a.conf, "-f"], check=True, capture_output=True)
        sink2.wait_messages(1, timeout=40)
        a.wait_log(r"status=sent", timeout=20)
        time.sleep(1.5)
        self.assertEqual(len(sink2.messages()), 1)
        self.assertEqual(len(re.findall(r"status=sent", a.log())), 1)
        self.assertIn("X-Client-Addr: 127.0.0.1", sink2.messages()[0])

    def test_failover_mid_data_to_next_destination_from_spill_file(self):
        dying = self.fake(die_in_data=40000)
        sink = SmtpSink(self.sandbox, self.procs)
        xp = Xproxyd(self.sandbox, self.procs,
                     ["d destinations=127.0.0.1:%d,127.0.0.1:%d encoding=none" % (dying.port, sink.port)],
                     extra=["--fast-path-threshold", "16384"])
        body = body_of(100 * 1024)
        rr, fin = self.mail(xp.port, body)
        self.assertEqual(fin[0], 250, fin)
        msgs = sink.wait_messages(1)
        time.sleep(0.5)
        self.assertEqual(len(sink.messages()), 1)
        self.assertEqual(dying.messages, [])
        # smtp-sink stores LF line ends and one extra empty line at the end.
        got = sink_body(msgs[0]).replace("\n", "\r\n").rstrip()
        want = sink_body(body.replace("\r\n..", "\r\n.")).rstrip()
        self.assertEqual(hashlib.sha256(got.encode()).hexdigest(), hashlib.sha256(want.encode()).hexdigest())
        xp.wait_log(r"event=relayed .*code=250 size=\d+ fast_path=yes spilled=yes failover=yes")

    def test_downstream_refusing_data_is_the_reply_to_the_final_dot(self):
        # 354 goes to the client at once; the downstream's refusal of DATA arrives while the
        # body does, and becomes the reply to the final dot. Nothing reaches any sink, and the
        # session's next transaction is relayed (the refused one is reset downstream first).
        for refusal in ("451 4.3.0 Try again later", "554 5.5.1 No thanks"):
            with self.subTest(refusal=refusal):
                refusing = self.fake(data_reply=refusal)
                xp = Xproxyd(self.sandbox, self.procs, ["d destinations=127.0.0.1:%d encoding=none" % refusing.port],
                             name="xproxyd-" + refusal[:3])
                c = SmtpClient(xp.port)
                c.ehlo("client.example")
                self.assertEqual(c.cmd("MAIL FROM:<s@example.org>")[0], 250)
                self.assertEqual(c.cmd("RCPT TO:<r@example.net>")[0], 250)
                fin = c.data("Subject: t\r\n\r\nhello\r\n")
                self.assertEqual(fin[1], refusal, fin)
                refusing.data_reply = None
                self.assertEqual(c.cmd("MAIL FROM:<s2@example.org>")[0], 250)
                self.assertEqual(c.cmd("RCPT TO:<r@example.net>")[0], 250)
                self.assertEqual(c.data("Subject: t2\r\n\r\nhello\r\n")[0], 250)
                c.close()
                self.assertEqual(len(refusing.messages), 1)
                self.assertIn(b"Subject: t2", refusing.messages[0])
                self.assertIn("RSET", refusing.commands)

    def test_destination_lost_at_data_fails_over_with_the_body_copy(self):
        # The first destination closes the connection instead of answering DATA, after
        # xproxyd already gave the client 354: the body is kept and goes to the next one.
        lost = self.fake(data_reply="close")
        sink = SmtpSink(self.sandbox, self.procs)
        xp = Xproxyd(self.sandbox, self.procs,
                     ["d destinations=127.0.0.1:%d,127.0.0.1:%d encoding=none" % (lost.port, sink.port)])
        rr, fin = self.mail(xp.port, body_of(5000))
        self.assertEqual(fin[0], 250, fin)
        self.assertEqual(len(sink.wait_messages(1)), 1)
        time.sleep(0.5)
        self.assertEqual(len(sink.messages()), 1)
        self.assertEqual((lost.data_started, lost.messages), (1, []))
        xp.wait_log(r"event=downstream_lost .*stage=DATA")
        xp.wait_log(r"event=relayed .*code=250 .*failover=yes")

    def test_stream_through_mode_defers_instead_of_failing_over(self):
        dying = self.fake(die_in_data=4000)
        sink = SmtpSink(self.sandbox, self.procs)
        xp = Xproxyd(self.sandbox, self.procs,
                     ["d destinations=127.0.0.1:%d,127.0.0.1:%d encoding=none" % (dying.port, sink.port)],
                     extra=["--stream-through-if", "always"])
        rr, fin = self.mail(xp.port, body_of(30000))
        self.assertEqual(fin[0], 451, fin)
        self.assertTrue(fin[1].startswith("451 4.4.2"), fin)
        time.sleep(1)
        self.assertEqual(sink.messages(), [])
        self.assertEqual(dying.messages, [])
        xp.wait_log(r"event=deferred .*fast_path=no")

    def test_client_stalls_in_data(self):
        sink, xp = self.sink_behind_xproxyd(["--client-timeout", "2"])
        c = SmtpClient(xp.port)
        c.ehlo()
        self.assertEqual(c.cmd("MAIL FROM:<s@example.org>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<r@example.net>")[0], 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send("Subject: stalled\r\n\r\nhalf a message\r\n")
        code, text = c.reply()  # arrives after the timeout, without our sending anything
        self.assertEqual(code, 421, text)
        c.close(quit=False)
        xp.wait_log(r"event=data_aborted .*client timeout")
        time.sleep(0.5)
        self.assertEqual(sink.messages(), [])

    def test_client_disconnects_mid_data(self):
        sink, xp = self.sink_behind_xproxyd(verbose=True)
        c = SmtpClient(xp.port)
        c.ehlo()
        c.cmd("MAIL FROM:<s@example.org>")
        c.cmd("RCPT TO:<r@example.net>")
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send("Subject: cut\r\n\r\n" + "x" * 5000 + "\r\n")
        c.sock.shutdown(socket.SHUT_RDWR)
        c.file.close()
        c.close(quit=False)
        xp.wait_log(r"event=data_aborted .*client disconnected")
        time.sleep(0.5)
        self.assertEqual(sink.messages(), [])
        # The next client is not affected.
        rr, fin = self.mail(xp.port)
        self.assertEqual(fin[0], 250, fin)
        self.assertEqual(len(sink.wait_messages(1)), 1)

    def test_oversize_line_and_syntax_errors(self):
        sink, xp = self.sink_behind_xproxyd(["--max-errors", "5"])
        c = SmtpClient(xp.port)
        c.ehlo()
        code, text = c.cmd("NOOP " + "y" * 5000)
        self.assertEqual(code, 500, text)
        self.assertTrue(text.startswith("500 5.5.2"), text)
        self.assertTrue(c.cmd("MAIL FROM:a@b")[1].startswith("501 5.5.4"))
        self.assertTrue(c.cmd("RCPT TO:<r@example.net>")[1].startswith("503 5.5.1"))
        self.assertEqual(c.cmd("ETRN example.org")[0], 502)  # unknown: an error (BDAT is known now)
        self.assertEqual(c.cmd("MAIL FROM:<s@example.org>")[0], 250)  # the session goes on
        self.assertEqual(c.cmd("RCPT TO:<r@example.net>")[0], 250)
        self.assertEqual(c.data("Subject: ok\r\n\r\nfine\r\n")[0], 250)
        # Fifth error: 421 and the connection is closed.
        self.assertEqual(c.cmd("FOO")[0], 502)
        code, text = c.cmd("BAR")
        self.assertEqual(code, 502)
        code, text = c.reply()
        self.assertEqual(code, 421, text)
        c.close(quit=False)
        self.assertEqual(len(sink.wait_messages(1)), 1)

    def test_message_over_the_size_limit_is_never_delivered(self):
        sink, xp = self.sink_behind_xproxyd(["--max-message-size", "4000"])
        c = SmtpClient(xp.port)
        c.ehlo()
        self.assertEqual(c.extensions.get("SIZE"), "4000")
        self.assertTrue(c.cmd("MAIL FROM:<s@example.org> SIZE=5000")[1].startswith("552 5.3.4"))
        self.assertEqual(c.cmd("MAIL FROM:<s@example.org>")[0], 250)  # undeclared size
        self.assertEqual(c.cmd("RCPT TO:<r@example.net>")[0], 250)
        code, text = c.data(body_of(10000))
        self.assertEqual(code, 552, text)
        self.assertEqual(c.cmd("NOOP")[0], 250)  # the session goes on
        c.close()
        time.sleep(0.5)
        self.assertEqual(sink.messages(), [])

    def test_dot_stuffing_and_bare_lf_end_of_data(self):
        sink, xp = self.sink_behind_xproxyd()
        c = SmtpClient(xp.port)
        c.ehlo()
        c.cmd("MAIL FROM:<s@example.org>")
        c.cmd("RCPT TO:<r@example.net>")
        self.assertEqual(c.cmd("DATA")[0], 354)
        # "..": one dot at the sink. Only CRLF.CRLF ends the data: "\r.\r" and "\n.\n" are
        # bare line ends around a "." line, which is dropped (as Postfix 3.9 does), so what
        # follows stays body; the sink gets CRLF line ends only.
        c.send(b"Subject: dots\r\n\r\n..one\r\n...two\r\nx\r.\rstill body\r\nlast\n.\nNOOP\r\n.\r\n")
        code, text = c.reply()
        self.assertEqual(code, 250, text)
        # A second transaction in the same session: one 250 per message stored.
        self.assertEqual(c.cmd("MAIL FROM:<s@example.org>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<r@example.net>")[0], 250)
        self.assertEqual(c.data("..\r\n")[0], 250)
        c.close()
        msgs = sink.wait_messages(2)
        time.sleep(0.3)
        self.assertEqual(len(sink.messages()), 2)
        first = next(m for m in msgs if "Subject: dots" in m)
        self.assertIn("\n.one\n..two\n", first)
        self.assertIn("\nx\nstill body\nlast\nNOOP\n", first)

    def test_downstream_rejects_some_recipients(self):
        fake = self.fake(reject=r"bad")
        xp = Xproxyd(self.sandbox, self.procs, ["d destinations=127.0.0.1:%d encoding=none" % fake.port])
        rr, fin = self.mail(xp.port, rcpts=("good@example.net", "bad@example.net", "good2@example.net"))
        self.assertEqual([r[0] for r in rr], [250, 550, 250])
        self.assertTrue(rr[1][1].startswith("550 5.1.1"), rr[1])
        self.assertEqual(fin[0], 250, fin)
        self.assertEqual(len(fake.messages), 1)
        # Every recipient rejected: no DATA downstream, 554 to the client.
        rr, fin = self.mail(xp.port, rcpts=("bad1@example.net", "bad2@example.net"))
        self.assertEqual([r[0] for r in rr], [550, 550])
        self.assertEqual(fin[0], 554, fin)
        self.assertEqual(len(fake.messages), 1)
        self.assertEqual(fake.data_started, 1)

    def test_slow_downstream(self):
        slow = self.fake(delay=0.4)
        xp = Xproxyd(self.sandbox, self.procs,
                     ["d destinations=127.0.0.1:%d encoding=none command-timeout=5" % slow.port])
        rr, fin = self.mail(xp.port)
        self.assertEqual(fin[0], 250, fin)
        self.assertEqual(len(slow.messages), 1)
        # Too slow to greet: the next destination takes the message; with none left, 451.
        mute = self.fake(greeting_delay=4)
        sink = SmtpSink(self.sandbox, self.procs)
        xp2 = Xproxyd(self.sandbox, self.procs,
                      ["d destinations=127.0.0.1:%d,127.0.0.1:%d encoding=xforward command-timeout=1"
                       % (mute.port, sink.port)], name="xproxyd2")
        rr, fin = self.mail(xp2.port)
        self.assertEqual(fin[0], 250, fin)
        self.assertEqual(len(sink.wait_messages(1)), 1)
        xp3 = Xproxyd(self.sandbox, self.procs,
                      ["d destinations=127.0.0.1:%d encoding=none command-timeout=1" % mute.port], name="xproxyd3")
        rr, fin = self.mail(xp3.port)
        self.assertEqual([r[0] for r in rr], [250])  # no destination to ask: taken on trust
        self.assertEqual(fin[0], 451, fin)  # ... and the 4xx comes at DATA
        self.assertTrue(fin[1].startswith("451 4.4.1"), fin)
        self.assertEqual(mute.messages, [])

    def test_no_destination_gives_4xx_at_data_and_upstream_delivers_later(self):
        # doc/design.md, "No destination at MAIL": with every destination down, MAIL and RCPT are answered 250
        # and DATA 451, so the upstream MTA keeps the message; once a destination is back,
        # the retry is delivered exactly once.
        port = free_port()  # nobody listens here yet
        xp = Xproxyd(self.sandbox, self.procs, ["d destinations=127.0.0.1:%d encoding=xforward connect-timeout=1"
                                                % port])
        a = Postfix(self.sandbox, self.procs, "gateway", free_port(), relay_port=xp.port,
                    main_cf={"smtp_send_xforward_command": "yes"})
        a.start()
        rc, out = swaks(a.port, source="127.0.0.66", body=body_of(3000))
        self.assertEqual(rc, 0, out)
        a.wait_log(r"status=deferred .*451 4\.4\.1 .*in reply to DATA", timeout=30)
        xp.wait_log(r"event=unrouted .*stage=MAIL")
        sink = SmtpSink(self.sandbox, self.procs, port=port, verbose=True)
        subprocess.run(["postqueue", "-c", a.conf, "-f"], check=True, capture_output=True)
        sink.wait_messages(1, timeout=40)
        a.wait_log(r"status=sent", timeout=20)
        time.sleep(1.5)
        self.assertEqual(len(sink.messages()), 1)  # exactly once
        self.assertEqual(len(re.findall(r"status=sent", a.log())), 1)
        self.assertRegex("\n".join(sink.commands()), r"XFORWARD .*ADDR=127\.0\.0\.66")

    def test_extensions_the_downstream_lacks_are_refused(self):
        legacy = self.fake(ehlo=("PIPELINING", "SIZE 100000"))
        xp = Xproxyd(self.sandbox, self.procs, ["d destinations=127.0.0.1:%d encoding=none" % legacy.port])
        c = SmtpClient(xp.port)
        c.ehlo()
        for key in ("PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES"):
            self.assertIn(key, c.extensions)
        self.assertNotIn("XCLIENT", SmtpClient(xp.port, source="127.0.0.9").ehlo()[1])
        for mail, want in (("MAIL FROM:<s@example.org> SMTPUTF8", "553 5.6.7"),
                           ("MAIL FROM:<s@example.org> BODY=8BITMIME", "554 5.6.3"),
                           ("MAIL FROM:<s@example.org> SIZE=200000", "552 5.3.4"),
                           ("MAIL FROM:<s@example.org> RET=HDRS", "555 5.5.4")):
            code, text = c.cmd(mail)
            self.assertTrue(text.startswith(want), (mail, text))
        self.assertEqual(c.cmd("MAIL FROM:<s@example.org> SIZE=1000")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<r@example.net>")[0], 250)
        self.assertEqual(c.data("Subject: ok\r\n\r\nfine\r\n")[0], 250)
        c.close()
        self.assertEqual(len(legacy.messages), 1)
        self.assertNotIn("MAIL FROM:<s@example.org> SMTPUTF8", legacy.commands)


    def clients(self, port, n, source):
        """n sessions from `source` that got their 220 greeting; closed at cleanup."""
        out = []
        for _ in range(n):
            c = SmtpClient(port, source=source)
            self.addCleanup(c.close, False)
            self.assertEqual(c.greeting[0], 220, c.greeting)
            out.append(c)
        return out

    def refused(self, port, source):
        """A session over a limit: its 421 greeting, then the connection closes."""
        c = SmtpClient(port, source=source)
        try:
            code, text = c.greeting
            if code == 421:
                self.assertEqual(c.file.read(), b"")  # closed after the 421
            return code, text
        finally:
            c.sock.close()

    def wait_disconnects(self, xp, n):
        wait_until(lambda: len(re.findall(r"event=disconnect", xp.log())) >= n, what="%d disconnects" % n)

    def test_sessions_per_client_are_limited_and_others_still_served(self):
        fake = self.fake()
        xp = Xproxyd(self.sandbox, self.procs, ["d destinations=127.0.0.1:%d encoding=none" % fake.port],
                     extra=["--max-sessions-per-client", "3"])
        held = self.clients(xp.port, 3, "127.0.0.66")
        code, text = self.refused(xp.port, "127.0.0.66")
        self.assertEqual(code, 421, text)
        self.assertIn("4.7.0", text)
        self.assertIn("too many connections from 127.0.0.66", text)
        xp.wait_log(r"event=limit client=127\.0\.0\.66 limit=max-sessions-per-client active=3")
        # Another client is served while 127.0.0.66 holds its three sessions.
        rr, fin = self.mail(xp.port, source="127.0.0.77")
        self.assertEqual(fin[0], 250, fin)
        self.assertEqual(len(fake.messages), 1)
        # A session that ends gives its place back.
        held[0].close()
        self.wait_disconnects(xp, 2)
        self.clients(xp.port, 1, "127.0.0.66")

    def test_sessions_in_all_are_limited(self):
        fake = self.fake()
        xp = Xproxyd(self.sandbox, self.procs, ["d destinations=127.0.0.1:%d encoding=none" % fake.port],
                     extra=["--max-sessions", "3", "--max-sessions-per-client", "10"])
        held = self.clients(xp.port, 1, "127.0.0.66") + self.clients(xp.port, 2, "127.0.0.77")
        code, text = self.refused(xp.port, "127.0.0.88")
        self.assertEqual(code, 421, text)
        self.assertTrue(text.startswith("421 4.7.0"), text)
        xp.wait_log(r"event=limit client=127\.0\.0\.88 limit=max-sessions active=3")
        held[1].close()
        self.wait_disconnects(xp, 1)
        rr, fin = self.mail(xp.port, source="127.0.0.88")
        self.assertEqual(fin[0], 250, fin)
        self.assertEqual(len(fake.messages), 1)

    def test_spill_quota_across_sessions_tempfails_the_message_that_exceeds_it(self):
        fake = self.fake()
        xp = Xproxyd(self.sandbox, self.procs, ["d destinations=127.0.0.1:%d encoding=none" % fake.port],
                     extra=["--fast-path-threshold", "4096", "--spill-quota", "300000"])
        first_head = body_of(150000)
        first_tail = "".join("tail %05d %s\r\n" % (i, "y" * 60) for i in range(700))  # 50 KB more
        a = SmtpClient(xp.port, source="127.0.0.66")
        self.addCleanup(a.close, False)
        a.ehlo()
        self.assertEqual(a.cmd("MAIL FROM:<a@example.org>")[0], 250)
        self.assertEqual(a.cmd("RCPT TO:<r@example.net>")[0], 250)
        self.assertEqual(a.cmd("DATA")[0], 354)
        a.send(first_head)
        # Counted in bytes: the downstream has what xproxyd copied to its spill file.
        wait_until(lambda: fake.body_bytes >= len(first_head), what="the first body half way")
        # A second big message now: 150 KB + 200 KB would exceed the 300 KB quota.
        rr, fin = self.mail(xp.port, body=body_of(200000), source="127.0.0.77")
        self.assertEqual(fin[0], 452, fin)
        self.assertTrue(fin[1].startswith("452 4.3.1"), fin)
        xp.wait_log(r"event=spill_quota sid=\w+ size=\d+ quota=300000")
        # The first one completes: 200 KB fits.
        a.send(first_tail + ".\r\n")
        code, text = a.reply()
        self.assertEqual(code, 250, text)
        # Its space is given back: the next big message fits again.
        rr, fin = self.mail(xp.port, body=body_of(200000), source="127.0.0.77")
        self.assertEqual(fin[0], 250, fin)
        self.assertEqual(len(fake.messages), 2)  # the refused one was never completed downstream
        self.assertTrue(all(len(m) > 199000 for m in fake.messages))

if __name__ == "__main__":
    main()
