"""CHUNKING (RFC 3030) through xproxyd's outbound mode, with Exim 4.96 as the BDAT sender.

Exim (its smtp transport uses CHUNKING: hosts_try_chunking) hands a message to an inbound
xproxyd, which passes it with XPROXYFROM to an outbound xproxyd (destinations=mx, one
egress pool, trusting the inbound one), which delivers it to the MX hosts of each
recipient's domain, looked up in NSD (started by the test). A Tap between Exim and the
first xproxyd records the bytes Exim sent, and what each MX host received is compared with
them byte for byte. The MX hosts are scriptable servers (ChunkServer) on their own loopback
addresses, all on one port as on the internet:

  a.chunk.test       MX mxa (127.0.0.51): CHUNKING, gets the chunks as BDAT
  b.chunk.test       MX mxb (127.0.0.52): no CHUNKING, gets DATA
  refuse.chunk.test  MX mxr (127.0.0.53): CHUNKING, its answer to BDAT LAST chosen per test
  src.chunk.test     MX mxs (127.0.0.54): CHUNKING, the senders' domain (bounces)

One message for a. and b. is split by the outbound xproxyd (452 4.5.3 for the other MX
host's recipient, which Exim defers and sends in its next queue run). The target's refusal
of the last chunk is the source's reply: Exim logs exactly its text, keeps a 4xx message
queued and delivers it once when the target takes it again (the target's 250s to BDAT LAST
are counted), bounces a 5xx one to the sender; a client's BDAT LAST gets the target's reply
line itself. Exim is run in the foreground (-odf) and its queue with -qff, so no test waits
for a retry timer."""

import re

from harness import E2ETestCase, free_port, main, wait_until
from xproxyd_helpers import ChunkServer, Exim, Nsd, Tap, Xproxyd, bdat_chunks, bdat_session, to_data_form, unstuff

ZONE = """$ORIGIN chunk.test.
$TTL 300
@         IN SOA ns1 hostmaster 1 3600 600 86400 60
@         IN NS  ns1
ns1       IN A   127.0.0.1
mxa       IN A   127.0.0.51
mxb       IN A   127.0.0.52
mxr       IN A   127.0.0.53
mxs       IN A   127.0.0.54
a         IN MX 10 mxa
b         IN MX 10 mxb
refuse    IN MX 10 mxr
src       IN MX 10 mxs
"""

EGRESS = "127.0.0.61"

# LF line ends (Exim sends CRLF), lines starting with a dot, a lone dot, a line of spaces;
# about 200 kB, so Exim sends more than one chunk and xproxyd's body copy spills to disk.
MESSAGE = (b"Subject: chunks out\nMessage-ID: <chunks-out@src.chunk.test>\n\n"
           + b"".join(b".line %05d with a leading dot\n.\n   \n%s\n" % (i, b"x" * (i % 120)) for i in range(2000))
           + b"end\n")

FOUR = "452 4.3.1 Insufficient system storage"
FIVE = "554 5.6.0 Content refused"


class XproxydOutboundChunking(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.nsd = Nsd(self.sandbox, self.procs, {"chunk.test": ZONE})
        self.mx_port = port = free_port("127.0.0.51")
        self.mxa = self.server(True, "127.0.0.51")
        self.mxb = self.server(False, "127.0.0.52")
        self.mxr = self.server(True, "127.0.0.53")
        self.mxs = self.server(True, "127.0.0.54")
        self.out = Xproxyd(
            self.sandbox, self.procs, ["internet destinations=mx mx-port=%d connect-timeout=3" % port],
            name="xproxyd-out",
            extra=["--egress", "clean address=%s helo=clean.chunk.test" % EGRESS, "--pool", "default clean",
                   "--refused-destinations", "none"] + self.nsd.dns_args)
        # The inbound xproxyd trusts nobody (Exim is an internet client); the outbound one
        # trusts it (127.0.0.1) and takes its XPROXYFROM.
        self.inb = Xproxyd(self.sandbox, self.procs,
                           ["out destinations=127.0.0.1:%d encoding=xproxyfrom" % self.out.port],
                           name="xproxyd-in", trusted=None)

    def server(self, chunking, host):
        s = ChunkServer(chunking=chunking, port=self.mx_port, host=host)
        self.addCleanup(s.close)
        return s

    def tap(self, port):
        t = Tap(port)
        self.addCleanup(t.close)
        return t

    def sent_by_exim(self, tap):
        """The BDAT commands and the body of every connection Exim made through the tap."""
        out = []
        for stream in tap.sent:
            cmds, body = bdat_chunks(bytes(stream))
            if cmds:
                out.append((cmds, body))
        return out

    def test_exim_through_inbound_and_outbound_arrives_byte_identical(self):
        tap = self.tap(self.inb.port)
        exim = Exim(self.sandbox, tap.port)
        # One message for both domains: the outbound xproxyd keeps b.chunk.test (another MX
        # host) for another transaction with 452 4.5.3, which Exim defers; its queue run sends it.
        err = exim.send(MESSAGE, ["u@a.chunk.test", "u@b.chunk.test"], sender="s@src.chunk.test")
        # K: Exim sent it with CHUNKING; C=: the target's own 250, passed back over both hops.
        self.assertRegex(err, r"=> u@a\.chunk\.test .* K C=\"250 2\.0\.0 Ok: queued as CHUNK1\"")
        self.assertRegex(err, r"== u@b\.chunk\.test .*defer.* 452 4\.5\.3 ")
        self.assertEqual(exim.queued(), 1)
        err = exim.queue_run()
        self.assertRegex(err, r"=> u@b\.chunk\.test .* K C=\"250 2\.0\.0 Ok: queued as DATA1\"")
        self.assertEqual(exim.queued(), 0, err)
        sent = self.sent_by_exim(tap)
        self.assertEqual(len(sent), 2, [c for c, _ in sent])
        (cmds_a, body_a), (cmds_b, body_b) = sent
        self.assertGreater(len(cmds_a), 1, cmds_a)  # more than one chunk
        self.assertTrue(cmds_a[-1].endswith(" LAST"), cmds_a)
        self.assertIn(b"Subject: chunks out\r\n", body_a)
        # mxa (CHUNKING): the same chunks, byte for byte, as BDAT; nothing added on the way.
        self.assertEqual(self.mxa.messages, [("bdat", body_a)])
        self.assertEqual(self.mxa.bdats, cmds_a)
        self.assertNotIn("DATA", self.mxa.commands)
        # mxb (no CHUNKING): DATA, the same bytes once the dot-stuffing is taken off.
        self.assertEqual(self.mxb.bdats, [])
        self.assertIn("DATA", self.mxb.commands)
        self.assertEqual(self.mxb.messages, [("data", to_data_form(body_b))])
        self.assertEqual(unstuff(self.mxb.messages[0][1]), body_b)
        # Each went to its domain's MX host, from the pool's egress.
        self.assertIn("RCPT TO:<u@a.chunk.test>", self.mxa.commands)
        self.assertIn("RCPT TO:<u@b.chunk.test>", self.mxb.commands)
        self.assertNotIn("RCPT TO:<u@b.chunk.test>", self.mxa.commands)
        self.assertEqual(body_a, body_b)  # the same message, sent twice by Exim
        for mx in (self.mxa, self.mxb):
            self.assertEqual(mx.peers, [EGRESS])
            self.assertIn("EHLO clean.chunk.test", mx.commands)
        log_in, log_out = self.inb.log(), self.out.log()
        self.assertEqual(len(re.findall(r"event=relayed .*code=250 .*body_in=bdat body_out=bdat", log_in)), 2)
        # The outbound xproxyd knows the client from the inbound one's XPROXYFROM.
        self.assertEqual(len(re.findall(r"event=source .*command=XPROXYFROM .*helo=\"exim\.test\.invalid\"",
                                        log_out)), 2)
        self.assertRegex(log_out, r"event=downstream_open .*destination=127\.0\.0\.51:%d mx=mxa\.chunk\.test .*"
                                  r"egress=clean source=%s" % (self.mx_port, re.escape(EGRESS)))
        self.assertRegex(log_out, r"event=relayed .*code=250 .*body_in=bdat body_out=bdat chunks=%d" % len(cmds_a))
        self.assertRegex(log_out, r"event=relayed .*code=250 .*body_in=bdat body_out=data chunks=%d" % len(cmds_b))

    def test_exim_keeps_a_4xx_at_bdat_last_queued_and_delivers_it_once(self):
        self.mxr.refuse_last = FOUR
        tap = self.tap(self.out.port)
        exim = Exim(self.sandbox, tap.port)
        err = exim.deliver(MESSAGE, ["u@refuse.chunk.test"], sender="s@src.chunk.test")[1]
        # Exim saw the target's reply to BDAT LAST, word for word, and keeps the message.
        self.assertRegex(err, r"(?m)== u@refuse\.chunk\.test .* defer .*after end of data: %s$" % re.escape(FOUR))
        self.assertEqual(exim.queued(), 1, err)
        self.assertEqual(self.mxr.finals, [FOUR])
        self.assertEqual(self.mxr.messages, [])
        # The target recovers: the queue run delivers it once; another run finds nothing.
        self.mxr.refuse_last = None
        err = exim.queue_run()
        self.assertRegex(err, r"=> u@refuse\.chunk\.test .* K C=\"250 2\.0\.0 Ok: queued as CHUNK1\"")
        self.assertEqual(exim.queued(), 0, err)
        exim.queue_run()
        self.assertEqual(len([f for f in self.mxr.finals if f.startswith("250 ")]), 1, self.mxr.finals)
        self.assertEqual(self.mxr.finals, [FOUR, "250 2.0.0 Ok: queued as CHUNK1"])
        # What arrived is what Exim sent the second time, byte for byte.
        sent = self.sent_by_exim(tap)
        self.assertEqual(len(sent), 2, [c for c, _ in sent])
        self.assertEqual(self.mxr.messages, [("bdat", sent[1][1])])
        self.assertEqual(sent[0][1], sent[1][1])
        log = self.out.log()
        self.assertRegex(log, r"event=relayed .*code=452 .*body_in=bdat body_out=bdat")
        self.assertEqual(len(re.findall(r"event=relayed .*code=250 .*body_in=bdat body_out=bdat", log)), 1)

    def test_exim_bounces_a_5xx_at_bdat_last_with_its_text(self):
        self.mxr.refuse_last = FIVE
        exim = Exim(self.sandbox, self.out.port)
        err = exim.deliver(MESSAGE, ["u@refuse.chunk.test"], sender="s@src.chunk.test")[1]
        self.assertRegex(err, r"(?m)\*\* u@refuse\.chunk\.test .*after end of data: %s$" % re.escape(FIVE))
        self.assertEqual(self.mxr.finals, [FIVE])
        self.assertEqual(self.mxr.messages, [])
        # Exim's bounce goes the same way (BDAT, null sender) to the sender's MX host and
        # names the reason.
        self.assertRegex(err, r"=> s@src\.chunk\.test .* K C=\"250 2\.0\.0 Ok: queued as CHUNK1\"")
        wait_until(lambda: self.mxs.messages, 10, what="the bounce")
        how, bounce = self.mxs.messages[0]
        self.assertEqual(how, "bdat")
        self.assertIn(FIVE.encode(), bounce)
        self.assertIn("MAIL FROM:<>", " ".join(self.mxs.commands))
        self.assertEqual(self.mxr.finals, [FIVE])  # never tried again
        self.assertEqual(exim.queued(), 0)

    def test_client_gets_the_targets_reply_to_bdat_last(self):
        chunks = [(MESSAGE[:70000], False), (MESSAGE[70000:], True)]
        for reply in (FOUR, FIVE):
            with self.subTest(reply=reply):
                self.mxr.refuse_last = reply
                replies = bdat_session(self.out.port, chunks, rcpts=["p@refuse.chunk.test"])
                self.assertEqual([r[1] for r in replies[2:4]], ["250 2.0.0 Ok: 70000 bytes", reply], replies)
                self.assertEqual(replies[4][0], 221)
        # Then the target takes it: one 250, the body as the client sent it.
        self.mxr.refuse_last = None
        replies = bdat_session(self.out.port, chunks, rcpts=["p@refuse.chunk.test"])
        self.assertEqual(replies[3][1], "250 2.0.0 Ok: queued as CHUNK1", replies)
        self.assertEqual(self.mxr.finals, [FOUR, FIVE, "250 2.0.0 Ok: queued as CHUNK1"])
        self.assertEqual(self.mxr.messages, [("bdat", MESSAGE)])


if __name__ == "__main__":
    main()
