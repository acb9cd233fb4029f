"""xproxyd's outbound mode (a downstream with destinations=mx) between a real Postfix that
uses it as its relayhost and "internet" MX hosts on 127.0.0.31-35: smtp-sink instances, a
Postfix with a certificate from a test CA, and a scriptable server that refuses. NSD,
started by the test, answers MX and A for the test domains under out.test. xproxyd binds
each transaction's connections to the egress address of its risk class: the listener
Postfix connected to (sender_dependent_relayhost_maps sends bulk senders to the bulk
listener) picks the pool, and the MX host sees that address.

  alpha.out.test, gamma.out.test  MX mx1 (127.0.0.31, smtp-sink)
  beta.out.test                   MX mx2 (127.0.0.32, smtp-sink)
  tls.out.test                    MX mx3 (127.0.0.33, Postfix, certificate for mx3.out.test)
  badcert.out.test                MX wrong.out.test (the same Postfix: its certificate does not match)
  refuse.out.test                 MX mx4 (127.0.0.34, refusals chosen per test)
  failover.out.test               MX 10 dead (127.0.0.35, nothing listens), MX 20 mx1
  nullmx.out.test                 MX 0 . (RFC 7505)
  bounces.out.test                MX mxb (127.0.0.36, smtp-sink): the senders' domain
"""

import re
import signal
import socket
import ssl

from harness import (E2ETestCase, Postfix, SmtpClient, SmtpSink, free_port, main, read_reply, smtp_session,
                     wait_until)
from xproxyd_helpers import FakeDownstream, Nsd, TestPki, Xproxyd

ZONE = """$ORIGIN out.test.
$TTL 300
@         IN SOA ns1 hostmaster 1 3600 600 86400 60
@         IN NS  ns1
ns1       IN A   127.0.0.1
mx1       IN A   127.0.0.31
mx2       IN A   127.0.0.32
mx3       IN A   127.0.0.33
wrong     IN A   127.0.0.33
mx4       IN A   127.0.0.34
dead      IN A   127.0.0.35
mxb       IN A   127.0.0.36
alpha     IN MX 10 mx1
gamma     IN MX 10 mx1
beta      IN MX 10 mx2
tls       IN MX 10 mx3
badcert   IN MX 10 wrong
refuse    IN MX 10 mx4
failover  IN MX 10 dead
failover  IN MX 20 mx1
nullmx    IN MX 0 .
bounces   IN MX 10 mxb
"""

CLEAN, BULK, WARM, BROKEN = "127.0.0.41", "127.0.0.42", "127.0.0.43", "192.0.2.1"


class XproxydOutbound(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.nsd = Nsd(self.sandbox, self.procs, {"out.test": ZONE})
        self.pki = TestPki(self.sandbox)
        # Every MX host listens on the same port of its own address, as on the internet.
        self.mx_port = free_port("127.0.0.31")
        self.mx1 = SmtpSink(self.sandbox, self.procs, port=self.mx_port, host="127.0.0.31", name="mx1")
        self.mx2 = SmtpSink(self.sandbox, self.procs, port=self.mx_port, host="127.0.0.32", name="mx2")
        self.mxb = SmtpSink(self.sandbox, self.procs, port=self.mx_port, host="127.0.0.36", name="mxb")
        self.mx4 = FakeDownstream(port=self.mx_port, host="127.0.0.34")
        self.addCleanup(self.mx4.close)
        # mx3: a Postfix MX host with STARTTLS, relaying what it takes to a sink of its own.
        crt, key = self.pki.issue("mx3", dns=["mx3.out.test"])
        self.behind_mx3 = SmtpSink(self.sandbox, self.procs, name="behind-mx3")
        self.mx3 = Postfix(self.sandbox, self.procs, "mx3", self.mx_port, host="127.0.0.33",
                           relay_port=self.behind_mx3.port,
                           main_cf={"smtpd_tls_cert_file": crt, "smtpd_tls_key_file": key,
                                    "smtpd_tls_security_level": "may", "smtpd_tls_loglevel": "1",
                                    "inet_interfaces": "127.0.0.1"}).start()  # Postfix cannot check 127.0.0.33
        # xproxyd: default listener (pool "default"), a bulk one, one whose egress cannot be bound.
        self.front_crt, self.front_key = self.pki.issue("front", dns=["xproxyd.test.invalid"])
        self.bulk_port, self.broken_port, self.splice_port = free_port(), free_port(), free_port()
        self.xp = Xproxyd(
            self.sandbox, self.procs,
            ["internet destinations=mx mx-port=%d tls=may tls-ca=%s connect-timeout=3" % (self.mx_port, self.pki.ca)],
            extra=["--listen", "inet:127.0.0.1:%d internet risk=bulk" % self.bulk_port,
                   "--listen", "inet:127.0.0.1:%d internet risk=broken" % self.broken_port,
                   "--listen", "inet:127.0.0.1:%d internet risk=bulk xproxyto=splice" % self.splice_port,
                   "--egress", "clean address=%s helo=clean.out.test" % CLEAN,
                   "--egress", "bulk address=%s helo=bulk.out.test" % BULK,
                   "--egress", "warm address=%s helo=warm.out.test" % WARM,
                   "--egress", "broken address=%s helo=broken.out.test" % BROKEN,
                   "--pool", "default clean", "--pool", "bulk bulk,warm:0", "--pool", "broken broken",
                   "--refused-destinations", "none", "--tls-cert", self.front_crt, "--tls-key", self.front_key]
            + self.nsd.dns_args)
        # The source: Postfix with xproxyd as relayhost, bulk senders to the bulk listener.
        self.src_port = free_port()
        self.src = Postfix(self.sandbox, self.procs, "source", self.src_port, relay_port=self.xp.port,
                           main_cf={"sender_dependent_relayhost_maps":
                                    "inline:{ bulk@bounces.out.test=[127.0.0.1]:%d }" % self.bulk_port,
                                    "queue_run_delay": "1s", "minimal_backoff_time": "1s",
                                    "maximal_backoff_time": "2s", "smtp_connect_timeout": "5s"}).start()

    def submit(self, sender, rcpts, subject="t"):
        """One message into the source Postfix, which must take it."""
        rcpts = [rcpts] if isinstance(rcpts, str) else rcpts
        replies = smtp_session(self.src_port, ["EHLO client.example", "MAIL FROM:<%s>" % sender]
                               + ["RCPT TO:<%s>" % r for r in rcpts]
                               + ["DATA", "Subject: %s\r\n\r\nbody of %s\r\n.\r\n" % (subject, subject), "QUIT"])
        self.assertEqual([code for code, _ in replies[2:-1]], [250] * (len(rcpts) + 1) + [354, 250], replies)

    def sent(self, rcpt, timeout=30.0):
        """Wait for the source Postfix's status=sent line for rcpt; return it."""
        return self.src.wait_log(r"to=<%s>.*status=sent.*" % re.escape(rcpt), timeout)

    def test_each_message_reaches_its_mx_from_the_pool_of_its_class(self):
        self.submit("a@bounces.out.test", "u1@alpha.out.test", "alpha")
        self.submit("bulk@bounces.out.test", "u2@beta.out.test", "beta")
        self.sent("u1@alpha.out.test")
        self.sent("u2@beta.out.test")
        m1 = self.mx1.wait_messages(1)
        m2 = self.mx2.wait_messages(1)
        self.assertEqual(len(m1), 1)
        self.assertEqual(len(m2), 1)
        # The MX host sees the egress address and HELO name of the class's pool.
        self.assertIn("X-Client-Addr: %s" % CLEAN, m1[0])
        self.assertIn("X-Helo-Args: clean.out.test", m1[0])
        self.assertIn("u1@alpha.out.test", m1[0])
        self.assertIn("X-Client-Addr: %s" % BULK, m2[0])  # weight 0: "warm" is never chosen
        self.assertIn("X-Helo-Args: bulk.out.test", m2[0])
        log = self.xp.log()
        self.assertRegex(log, r"event=downstream_open .*destination=127\.0\.0\.31:%d mx=mx1\.out\.test .*"
                              r"pool=default egress=clean source=%s" % (self.mx_port, re.escape(CLEAN)))
        self.assertRegex(log, r"event=relayed .*pool=bulk egress=bulk source=%s" % re.escape(BULK))
        self.assertNotIn("egress=warm ", log)
        # SIGHUP writes the figures: per egress what it relayed, and the MX cache's use.
        self.xp.proc.send_signal(signal.SIGHUP)
        self.xp.wait_log(r"event=egress_stats pool=broken")
        log = self.xp.log()
        self.assertRegex(log, r"event=egress_stats pool=default egress=clean source=%s weight=1 relayed=1" % CLEAN)
        self.assertRegex(log, r"event=egress_stats pool=bulk egress=bulk source=%s weight=1 relayed=1" % BULK)
        self.assertRegex(log, r"event=egress_stats pool=bulk egress=warm source=%s weight=0 relayed=0" % WARM)
        self.assertRegex(log, r"event=outbound_stats mx_cache_hits=\d+ mx_cache_misses=[1-9]\d* mx_cache_hit_rate=")

    def test_recipients_of_two_destinations_are_split_without_loss(self):
        # alpha and gamma share mx1: one transaction; beta's mx2 gets 452 and a later transaction.
        self.submit("a@bounces.out.test", ["u3@alpha.out.test", "u4@gamma.out.test", "u5@beta.out.test"], "split")
        for r in ("u3@alpha.out.test", "u4@gamma.out.test", "u5@beta.out.test"):
            self.sent(r)
        m1, m2 = self.mx1.wait_messages(1), self.mx2.wait_messages(1)
        self.assertEqual(len(m1), 1, m1)
        self.assertEqual(len(m2), 1, m2)
        rcpts1 = re.search(r"^X-Rcpt-Args: (.*)$", m1[0], re.M)
        self.assertRegex(m1[0], r"u3@alpha\.out\.test")
        self.assertRegex(m1[0], r"u4@gamma\.out\.test")
        self.assertNotIn("u5@beta", m1[0], rcpts1)
        self.assertIn("u5@beta.out.test", m2[0])
        self.assertRegex(self.xp.log(), r"event=other_destination .*domain=beta\.out\.test first=alpha\.out\.test")
        self.assertRegex(self.src.log(), r"to=<u5@beta\.out\.test>.*452 4\.5\.3")
        # Delivered exactly once each.
        self.assertEqual(len(re.findall(r"to=<u5@beta\.out\.test>.*status=sent", self.src.log())), 1)

    def test_postfix_mx_with_certificate_and_failover_past_a_dead_mx(self):
        self.submit("a@bounces.out.test", "u6@tls.out.test", "tls")
        self.submit("a@bounces.out.test", "u7@failover.out.test", "failover")
        self.sent("u6@tls.out.test")
        self.sent("u7@failover.out.test")
        self.mx3.wait_log(r"TLS connection established from \S+\[%s\]" % re.escape(CLEAN))
        self.assertIn("u6@tls.out.test", self.behind_mx3.wait_messages(1)[0])
        self.assertIn("u7@failover.out.test", self.mx1.wait_messages(1)[0])
        log = self.xp.log()
        self.assertRegex(log, r"event=downstream_open .*mx=mx3\.out\.test .*tls=yes verified=no")
        self.assertRegex(log, r"event=downstream_failed .*destination=127\.0\.0\.35:%d mx=dead\.out\.test" % self.mx_port)

    def refusal_round(self, replies, rcpt, want):
        """Postfix sees exactly the target's refusal; a 4xx is retried and delivered once."""
        self.mx4.replies = dict(replies)
        mark = self.src.log_mark()
        self.submit("a@bounces.out.test", rcpt, rcpt)
        line = self.src.wait_log(r"to=<%s>.*status=(deferred|bounced).*" % re.escape(rcpt), 30, start=mark).group(0)
        self.assertIn(want, line)
        if want.startswith("5"):
            self.assertIn("status=bounced", line)
            return
        self.assertIn("status=deferred", line)
        before = len(self.mx4.messages)
        self.mx4.replies = {}
        self.sent(rcpt)
        wait_until(lambda: len(self.mx4.messages) == before + 1, 10, what="one delivery")

    def test_target_refusals_reach_postfix_exactly(self):
        cases = [({"RCPT": "550 5.1.1 no such user here"}, "rcpt550@refuse.out.test", "550 5.1.1 no such user here"),
                 ({"RCPT": "450 4.2.1 mailbox busy"}, "rcpt450@refuse.out.test", "450 4.2.1 mailbox busy"),
                 ({"DATA": "554 5.7.1 no data for you"}, "data554@refuse.out.test", "554 5.7.1 no data for you"),
                 ({"DATA": "451 4.3.0 data later"}, "data451@refuse.out.test", "451 4.3.0 data later"),
                 ({".": "552 5.3.4 message too big"}, "dot552@refuse.out.test", "552 5.3.4 message too big"),
                 ({".": "452 4.3.1 disk full"}, "dot452@refuse.out.test", "452 4.3.1 disk full")]
        for replies, rcpt, want in cases:
            with self.subTest(rcpt=rcpt):
                self.refusal_round(replies, rcpt, want)
        # Nothing delivered twice: one accepted body per 4xx case, none for the 5xx ones.
        self.assertEqual(len(self.mx4.messages), 3)
        for rcpt in ("rcpt450", "data451", "dot452"):
            self.assertEqual(len(re.findall(r"to=<%s@refuse\.out\.test>.*status=sent" % rcpt, self.src.log())), 1)

    def tls_client(self):
        c = SmtpClient(self.xp.port)
        c.ehlo()
        self.assertEqual(c.cmd("STARTTLS")[0], 220)
        s = ssl.create_default_context(cafile=self.pki.ca).wrap_socket(c.sock, server_hostname="xproxyd.test.invalid")
        f = s.makefile("rb")

        def cmd(line):
            s.sendall(line.encode() + b"\r\n")
            return read_reply(f)
        self.addCleanup(s.close)
        self.assertIn("REQUIRETLS", cmd("EHLO client.example")[1])
        return cmd

    def test_requiretls_never_goes_in_clear_or_to_a_wrong_certificate(self):
        mark = self.mx3.log_mark()
        cmd = self.tls_client()
        self.assertEqual(cmd("MAIL FROM:<rt@bounces.out.test> REQUIRETLS")[0], 250)
        # The certificate of the MX host is for mx3.out.test, not wrong.out.test: 4.7.5.
        code, text = cmd("RCPT TO:<u@badcert.out.test>")
        self.assertEqual(code, 451, text)
        self.assertIn("4.7.5", text)
        # Verified, but Postfix does not offer REQUIRETLS: RFC 8689's 5.7.30.
        code, text = cmd("RCPT TO:<u@tls.out.test>")
        self.assertEqual(code, 550, text)
        self.assertIn("5.7.30", text)
        self.assertEqual(cmd("QUIT")[0], 221)
        log = self.xp.log()
        self.assertRegex(log, r"event=downstream_failed .*mx=wrong\.out\.test .*TLS handshake")
        self.assertNotRegex(self.mx3.log()[mark:], r"from=<rt@bounces\.out\.test>")

    def test_untrusted_client_bad_domains_and_an_unbindable_egress(self):
        with SmtpClient(self.xp.port, source="127.0.0.66") as c:
            c.ehlo()
            code, text = c.cmd("MAIL FROM:<x@bounces.out.test>")
            self.assertEqual((code, text[:9]), (550, "550 5.7.1"))
        with SmtpClient(self.xp.port) as c:
            c.ehlo()
            self.assertEqual(c.cmd("MAIL FROM:<x@bounces.out.test>")[0], 250)
            self.assertEqual(c.cmd("RCPT TO:<u@nullmx.out.test>")[1][:10], "556 5.1.10")
            self.assertEqual(c.cmd("RCPT TO:<u@nope.out.test>")[1][:9], "550 5.1.2")
            self.assertEqual(c.cmd("RCPT TO:<postmaster>")[1][:9], "550 5.1.3")
        with SmtpClient(self.broken_port) as c:
            c.ehlo()
            self.assertEqual(c.cmd("MAIL FROM:<x@bounces.out.test>")[0], 250)
            code, text = c.cmd("RCPT TO:<u@alpha.out.test>")
            self.assertEqual(code, 451, text)
            self.assertIn("4.4.0", text)
        self.assertRegex(self.xp.log(), r"event=downstream_failed .*bind 192\.0\.2\.1 \(egress broken\)")
        # Never from another address: mx1 saw no connection from the broken pool.
        self.assertEqual(self.mx1.messages(), [])

    # ------------------------------------------------------------------ XPROXYTO

    def xproxyto_client(self, source="127.0.0.1"):
        c = SmtpClient(self.xp.port, source=source)
        self.addCleanup(c.close, quit=False)
        c.ehlo()
        return c

    def test_xproxyto_skips_a_dead_destination_and_says_what_is_left(self):
        c = self.xproxyto_client()
        self.assertIn("XPROXYTO", c.extensions)
        code, text = c.cmd("XPROXYTO DESTINATIONS=[127.0.0.35],[127.0.0.31],[127.0.0.32] PORT=%d FORCEHELO=False "
                           "SHOULDSKIPTLS=False REQUIRETLS=False REQUIREOORG=False RISK=bulk SESSIONID=08CE6D0E "
                           "LAST=True" % self.mx_port)
        self.assertEqual(code, 250, text)
        lines = text.split("\n")
        self.assertEqual(lines[0], "250-DESTINATIONLEFT=[127.0.0.32]")
        # Then the target's EHLO options (smtp-sink's), without what belongs to xproxyd's hop.
        self.assertIn("PIPELINING", text)
        self.assertNotIn("XCLIENT", text)
        self.assertNotIn("XFORWARD", text)
        self.assertEqual(c.cmd("MAIL FROM:<a@bounces.out.test>")[0], 250)
        # The source chose the destination: any recipient domain goes there.
        self.assertEqual(c.cmd("RCPT TO:<x1@beta.out.test>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<x2@elsewhere.example>")[0], 250)
        self.assertEqual(c.data("Subject: xproxyto\r\n\r\nhello\r\n")[0], 250)
        # A second transaction on the same destination.
        self.assertEqual(c.cmd("MAIL FROM:<a@bounces.out.test>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<x3@alpha.out.test>")[0], 250)
        self.assertEqual(c.data("Subject: second\r\n\r\nhello\r\n")[0], 250)
        msgs = self.mx1.wait_messages(2)
        self.assertEqual(len(msgs), 2)
        for m in msgs:
            self.assertIn("X-Client-Addr: %s" % BULK, m)  # RISK=bulk: the bulk pool
        self.assertEqual(len([m for m in msgs if "x2@elsewhere.example" in m and "x1@beta.out.test" in m]), 1)
        self.assertEqual(self.mx2.messages(), [])
        log = self.xp.log()
        self.assertRegex(log, r"event=xproxyto .*source_session=\"08CE6D0E\" destinations=3 .*risk=\"bulk\"")
        self.assertRegex(log, r"event=downstream_failed .*destination=127\.0\.0\.35:%d .*pool=bulk" % self.mx_port)
        self.assertRegex(log, r"event=xproxyto_connected .*destination=127\.0\.0\.31:%d left=1" % self.mx_port)

    def test_xproxyto_split_over_commands(self):
        c = self.xproxyto_client()
        self.assertEqual(c.cmd("XPROXYTO DESTINATIONS=[127.0.0.31] RISK=bulk LAST=False")[0], 250)
        code, text = c.cmd("XPROXYTO DESTINATIONS=[127.0.0.32] PORT=%d SESSIONID=S2 LAST=True" % self.mx_port)
        self.assertEqual(code, 250, text)
        self.assertTrue(text.startswith("250-DESTINATIONLEFT=[127.0.0.32]\n"), text)
        self.assertEqual(c.cmd("MAIL FROM:<a@bounces.out.test>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<s@beta.out.test>")[0], 250)
        self.assertEqual(c.data("Subject: split\r\n\r\nhello\r\n")[0], 250)
        self.assertIn("s@beta.out.test", self.mx1.wait_messages(1)[0])
        # An unfinished sequence is abandoned by any other command.
        self.assertEqual(c.cmd("RSET")[0], 250)
        self.assertEqual(c.cmd("XPROXYTO DESTINATIONS=[127.0.0.32] LAST=False")[0], 250)
        self.assertEqual(c.cmd("NOOP")[0], 250)
        code, text = c.cmd("XPROXYTO PORT=%d LAST=True" % self.mx_port)
        self.assertEqual(code, 501, text)  # no DESTINATIONS: the first half was forgotten

    def test_malformed_or_refused_xproxyto_changes_nothing(self):
        c = self.xproxyto_client()
        for bad in ("XPROXYTO DESTINATIONS=nope LAST=True",
                    "XPROXYTO DESTINATIONS=[127.0.0.31] PORT=0 LAST=True",
                    "XPROXYTO DESTINATIONS=[127.0.0.31] LAST=True LAST=True",
                    "XPROXYTO DESTINATIONS=[127.0.0.31] TLSAUTHLEVEL=Bogus LAST=True",
                    "XPROXYTO DESTINATIONS=[127.0.0.31] SHOULDSKIPTLS=True REQUIRETLS=True LAST=True"):
            with self.subTest(command=bad):
                code, text = c.cmd(bad)
                self.assertEqual(code, 501, text)
        code, text = c.cmd("XPROXYTO DESTINATIONS=[127.0.0.31] RISK=gold LAST=True")
        self.assertEqual((code, text[:9]), (451, "451 4.3.5"))
        # Still the MX mode: alpha goes to mx1 from the default pool, beta is refused for now.
        self.assertEqual(c.cmd("MAIL FROM:<a@bounces.out.test>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<m@alpha.out.test>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<m@beta.out.test>")[0], 452)
        self.assertEqual(c.data("Subject: mx\r\n\r\nhello\r\n")[0], 250)
        self.assertIn("X-Client-Addr: %s" % CLEAN, self.mx1.wait_messages(1)[0])
        # Untrusted clients may not use it; on a listener without destinations=mx it does not exist.
        u = self.xproxyto_client(source="127.0.0.66")
        self.assertNotIn("XPROXYTO", u.extensions)
        code, text = u.cmd("XPROXYTO DESTINATIONS=[127.0.0.31] LAST=True")
        self.assertEqual((code, text[:9]), (550, "550 5.7.0"))

    def test_xproxyto_tls_levels_refuse_a_wrong_certificate_and_never_send_in_clear(self):
        other = TestPki(self.sandbox, name="otherca")
        crt, key = other.issue("rogue", dns=["mx3.out.test"])  # the right name, an unknown CA
        rogue = FakeDownstream(port=self.mx_port, host="127.0.0.37", tls=other.server_context(crt, key))
        self.addCleanup(rogue.close)
        for args in ("TLSAUTHLEVEL=CertificateValidation", "REQUIRETLS=True", "TLSAUTHLEVEL=DomainValidation"):
            with self.subTest(args=args):
                c = self.xproxyto_client()
                code, text = c.cmd("XPROXYTO DESTINATIONS=[127.0.0.37] PORT=%d %s LAST=True" % (self.mx_port, args))
                self.assertEqual((code, text[:9]), (451, "451 4.7.5"), text)
        self.assertEqual([x for x in rogue.commands if x.split(" ")[0].upper() in ("MAIL", "RCPT", "DATA")], [])
        # EncryptionOnly takes any certificate, but never plain text.
        c = self.xproxyto_client()
        code, text = c.cmd("XPROXYTO DESTINATIONS=[127.0.0.37] PORT=%d TLSAUTHLEVEL=EncryptionOnly LAST=True"
                           % self.mx_port)
        self.assertEqual(code, 250, text)
        self.assertEqual(rogue.tls_versions[-1:], ["TLSv1.3"])
        c = self.xproxyto_client()
        code, text = c.cmd("XPROXYTO DESTINATIONS=[127.0.0.31] PORT=%d TLSAUTHLEVEL=EncryptionOnly LAST=True"
                           % self.mx_port)  # smtp-sink offers no STARTTLS
        self.assertEqual((code, text[:9]), (451, "451 4.7.5"), text)
        # DomainValidation: the chain at connection, then each recipient domain against the certificate.
        c = self.xproxyto_client()
        code, text = c.cmd("XPROXYTO DESTINATIONS=[127.0.0.33] PORT=%d TLSAUTHLEVEL=DomainValidation "
                           "REQUIRETLS=True LAST=True" % self.mx_port)
        self.assertEqual(code, 250, text)
        self.assertEqual(c.cmd("MAIL FROM:<a@bounces.out.test>")[0], 250)
        code, text = c.cmd("RCPT TO:<d@tls.out.test>")
        self.assertEqual((code, text[:9]), (451, "451 4.7.5"), text)
        self.assertEqual(c.cmd("RCPT TO:<d@mx3.out.test>")[0], 250)
        self.assertEqual(c.data("Subject: dv\r\n\r\nhello\r\n")[0], 250)
        self.assertIn("d@mx3.out.test", self.behind_mx3.wait_messages(1)[0])
        self.mx3.wait_log(r"TLS connection established from \S+\[%s\]" % re.escape(CLEAN))

    def tls_fake(self, host, name, **kw):
        crt, key = self.pki.issue(name.split(".")[0] + host.split(".")[-1], dns=[name])
        f = FakeDownstream(port=self.mx_port, host=host, tls=self.pki.server_context(crt, key), **kw)
        self.addCleanup(f.close)
        return f

    def test_domain_validation_also_holds_on_failover(self):
        # The first destination names d.out.test and dies after the dot; the second has a
        # valid chain for another name: never a failover there.
        first = self.tls_fake("127.0.0.39", "d.out.test", die_in_data=10)
        second = self.tls_fake("127.0.0.38", "evil.out.test")
        c = self.xproxyto_client()
        code, text = c.cmd("XPROXYTO DESTINATIONS=[127.0.0.39],[127.0.0.38] PORT=%d TLSAUTHLEVEL=DomainValidation "
                           "LAST=True" % self.mx_port)
        self.assertEqual(code, 250, text)
        self.assertEqual(c.cmd("MAIL FROM:<a@bounces.out.test>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<u@d.out.test>")[0], 250)
        code, text = c.data("Subject: dv\r\n\r\n" + "x" * 100 + "\r\n")
        self.assertEqual(code, 451, text)
        self.assertEqual(second.messages, [])
        self.assertEqual([x for x in second.commands if x.upper().startswith(("MAIL", "RCPT"))], [])
        self.assertRegex(self.xp.log(), r"event=failover_refused .*127\.0\.0\.38.*certificate does not name")
        # A domain that is not a host name is never checked against a certificate (".org"
        # would match any subdomain); a source route is dropped.
        c = self.xproxyto_client()
        self.assertEqual(c.cmd("XPROXYTO DESTINATIONS=[127.0.0.38] PORT=%d TLSAUTHLEVEL=DomainValidation LAST=True"
                               % self.mx_port)[0], 250)
        self.assertEqual(c.cmd("MAIL FROM:<a@bounces.out.test>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<u@.out.test>")[1][:9], "550 5.1.2")
        self.assertEqual(c.cmd("RCPT TO:<@relay.elsewhere:u@evil.out.test>")[0], 250)
        self.assertIn("RCPT TO:<u@evil.out.test>", second.commands)

    def test_requiretls_through_xproxyto_needs_the_recipient_domain_in_the_certificate(self):
        evil = self.tls_fake("127.0.0.38", "evil.out.test", ehlo=("PIPELINING", "8BITMIME", "REQUIRETLS"))
        cmd = self.tls_client()
        code, text = cmd("XPROXYTO DESTINATIONS=[127.0.0.38] PORT=%d REQUIRETLS=True LAST=True" % self.mx_port)
        self.assertEqual(code, 250, text)
        self.assertEqual(cmd("MAIL FROM:<rt@bounces.out.test> REQUIRETLS")[0], 250)
        code, text = cmd("RCPT TO:<u@d.out.test>")
        self.assertEqual((code, text[:9]), (451, "451 4.7.5"), text)
        self.assertEqual(cmd("RCPT TO:<u@evil.out.test>")[0], 250)
        self.assertNotIn("RCPT TO:<u@d.out.test>", evil.commands)

    def test_starttls_forgets_an_xproxyto_sent_in_clear(self):
        # An on-path attacker's XPROXYTO before STARTTLS must not route the TLS session's mail.
        c = SmtpClient(self.xp.port)
        c.ehlo()
        code, text = c.cmd("XPROXYTO DESTINATIONS=[127.0.0.34] PORT=%d SHOULDSKIPTLS=True LAST=True" % self.mx_port)
        self.assertEqual(code, 250, text)
        self.assertEqual(c.cmd("STARTTLS")[0], 220)
        s = ssl.create_default_context(cafile=self.pki.ca).wrap_socket(c.sock, server_hostname="xproxyd.test.invalid")
        self.addCleanup(s.close)
        f = s.makefile("rb")

        def cmd(line):
            s.sendall(line.encode() + b"\r\n")
            return read_reply(f)
        cmd("EHLO client.example")
        self.assertEqual(cmd("MAIL FROM:<a@bounces.out.test>")[0], 250)
        self.assertEqual(cmd("RCPT TO:<t@alpha.out.test>")[0], 250)
        self.assertEqual(cmd("DATA")[0], 354)
        self.assertEqual(cmd("Subject: t\r\n\r\nhello\r\n.")[0], 250)
        self.assertIn("t@alpha.out.test", self.mx1.wait_messages(1)[0])  # the MX, not 127.0.0.34
        self.assertEqual([x for x in self.mx4.commands if x.upper().startswith("MAIL")], [])

    def test_a_refused_data_does_not_spoil_the_next_xproxyto_transaction(self):
        self.mx4.replies = {"DATA": "554 5.7.1 not this one"}
        c = self.xproxyto_client()
        self.assertEqual(c.cmd("XPROXYTO DESTINATIONS=[127.0.0.34] PORT=%d LAST=True" % self.mx_port)[0], 250)
        self.assertEqual(c.cmd("MAIL FROM:<a@bounces.out.test>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<r1@refuse.out.test>")[0], 250)
        self.assertEqual(c.data("Subject: one\r\n\r\nx\r\n")[0], 554)
        self.mx4.replies = {}
        self.assertEqual(c.cmd("MAIL FROM:<a@bounces.out.test>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<r2@refuse.out.test>")[0], 250)
        self.assertEqual(c.data("Subject: two\r\n\r\nx\r\n")[0], 250)
        self.assertEqual(len(self.mx4.messages), 1)

    def test_xproxyto_splice_hands_the_target_to_the_source(self):
        # xproxyto=splice: after the exchange, bytes go both ways unchanged; a MAIL pipelined
        # behind XPROXYTO reaches the target too.
        s = socket.create_connection(("127.0.0.1", self.splice_port))
        self.addCleanup(s.close)
        f = s.makefile("rb")
        self.assertEqual(read_reply(f)[0], 220)
        s.sendall(b"EHLO source.example\r\n")
        self.assertIn("XPROXYTO", read_reply(f)[1])
        s.sendall(b"XPROXYTO DESTINATIONS=[127.0.0.34] PORT=%d LAST=True\r\nMAIL FROM:<sp@bounces.out.test>\r\n"
                  % self.mx_port)
        code, text = read_reply(f)
        self.assertEqual(code, 250, text)
        self.assertTrue(text.startswith("250-DESTINATIONLEFT=\n"), text)
        self.assertEqual(read_reply(f), (250, "250 2.0.0 Ok"))  # the target's own text
        s.sendall(b"RCPT TO:<sp@anywhere.example>\r\nDATA\r\n")
        self.assertEqual(read_reply(f), (250, "250 2.0.0 Ok"))
        self.assertEqual(read_reply(f), (354, "354 go ahead"))  # the target's, not xproxyd's
        s.sendall(b"Subject: spliced\r\n\r\n..dot\r\n.\r\nQUIT\r\n")
        self.assertEqual(read_reply(f), (250, "250 2.0.0 Ok: queued as FAKE1"))
        self.assertEqual(read_reply(f), (221, "221 2.0.0 Bye"))
        self.assertEqual(f.read(), b"")  # the target closed, so did xproxyd
        self.assertEqual(self.mx4.messages, [b"Subject: spliced\r\n\r\n..dot\r\n.\r\n"])
        self.assertEqual(self.mx4.peers, [BULK])
        self.xp.wait_log(r"event=splice_end .*to_target=\d+ to_source=\d+ reason=\"target closed\"")


if __name__ == "__main__":
    main()
