"""xproxyd in the chains it was built for, with real Postfix instances on loopback.

The chain of doc/design.md: swaks bound to 127.0.0.x -> Postfix A (the new gateway, XFORWARD on,
relayhost = xproxyd) -> xproxyd -> legacy Postfix B with libxproxy-preload.so reading the
PROXY v2 header xproxyd sends. B's access table rejects 127.0.0.66, which it can only do
if it sees the original client. The same chain with XCLIENT to a Postfix C that
authorizes xproxyd: C's access table and policy service see the original client. Two
clients' messages over one cached A -> xproxyd connection each arrive with their own
source. An untrusted client that sends XFORWARD/XCLIENT/XPROXYFROM gets 550 5.7.0 and is
seen downstream as itself. A source names one party: an XCLIENT without LOGIN after one
with LOGIN announces no login; an XFORWARD without IDENT or address still reaches an
XPROXYFROM downstream; an unfinished XPROXYFROM sequence dies with RSET and EHLO; and a
bare CR or LF in DATA never ends a message here or at the next hop."""

import re

from harness import (E2ETestCase, Postfix, SmtpSink, binary, free_port, main, policy_responder, read_text,
                     smtp_session, split_requests, swaks, wait_until)
from xproxyd_helpers import FakeDownstream, RecordingMilter, RewritingRelay, Xproxyd


class XproxydChain(E2ETestCase):
    def legacy_b(self, access=None, hmac_key_file=None):
        """Legacy Postfix B with the shim (trusting xproxyd's 127.0.0.1) relaying to a sink;
        with hmac_key_file, the shim accepts only headers signed with that key."""
        self.sink = SmtpSink(self.sandbox, self.procs)
        self.b_port = free_port()
        main_cf = {}
        if access:
            table = self.sandbox.write("access.cidr", access)
            main_cf["smtpd_client_restrictions"] = "check_client_access cidr:" + table
        self.shim_log = self.sandbox.path("shim.log")
        self.sandbox.logs.append(self.shim_log)
        self.b = Postfix(self.sandbox, self.procs, "legacy", self.b_port, relay_port=self.sink.port, main_cf=main_cf,
                         preload=binary("preload/libxproxy-preload.so"),
                         preload_env=dict({"XPROXY_TRUSTED": "127.0.0.1/32", "XPROXY_PORTS": str(self.b_port),
                                           "XPROXY_LOG": "file:" + self.shim_log,
                                           # debug: a line per connection (info writes a summary)
                                           "XPROXY_LOG_LEVEL": "debug"},
                                          **({"XPROXY_HMAC_KEY_FILE": hmac_key_file} if hmac_key_file else {})))
        self.b.start()

    def gateway_a(self, xproxyd_port, extra=None):
        cfg = {"smtp_send_xforward_command": "yes"}
        cfg.update(extra or {})
        self.a = Postfix(self.sandbox, self.procs, "gateway", free_port(), relay_port=xproxyd_port, main_cf=cfg)
        self.a.start()

    def test_acceptance1_seed003_chain_proxy_v2_to_legacy_postfix(self):
        self.legacy_b(access="127.0.0.66/32 REJECT blocked by the legacy gateway\n")
        xp = Xproxyd(self.sandbox, self.procs, ["legacy destinations=127.0.0.1:%d encoding=proxy-v2" % self.b_port])
        self.gateway_a(xp.port)

        # Null sender: A's bounce for the rejected message is not relayed through the chain.
        rc, out = swaks(self.a.port, source="127.0.0.66", helo="client-66.example", sender="<>")
        self.assertEqual(rc, 0, out)  # A queues it; B's verdict comes back to A
        self.b.wait_log(r"reject: RCPT from unknown\[127\.0\.0\.66\]: 554 5\.7\.1", timeout=30)
        self.a.wait_log(r"status=bounced .*554 5\.7\.1", timeout=30)

        rc, out = swaks(self.a.port, source="127.0.0.77", helo="client-77.example")
        self.assertEqual(rc, 0, out)
        self.b.wait_log(r"[0-9A-F]+: client=unknown\[127\.0\.0\.77\]", timeout=30)
        msgs = self.sink.wait_messages(1, timeout=30)
        self.assertEqual(len(msgs), 1, msgs)
        self.assertIn("(unknown [127.0.0.77])", msgs[0])
        # B never saw xproxyd or gateway A as the mail client.
        self.assertNotRegex(self.b.log(), r"client=unknown\[127\.0\.0\.1\]")
        self.assertIn("event=proxied", read_text(self.shim_log))
        xp.wait_log(r"event=relayed .* client=127\.0\.0\.77:\d+ .*code=250")
        xp.wait_log(r"event=source sid=\w+ command=XFORWARD client=127\.0\.0\.66:\d+")

    def test_signed_proxy_header_rewritten_on_the_way_is_dropped(self):
        # An on-path attacker rewrites the client address in the PROXY v2 header, which
        # travels in plain text. With hmac-key-file= xproxyd signs the header and the
        # legacy gateway's shim, holding the same key, drops the forged one: the message
        # is deferred (451), never accepted as coming from the attacker's choice.
        key = self.sandbox.write("hmac.key", "shared-secret-0123456789abcdef\n", mode=0o600)
        self.legacy_b(hmac_key_file=key)
        relay = RewritingRelay(self.b_port, bytes([127, 0, 0, 66]), bytes([10, 1, 2, 3]))
        self.addCleanup(relay.close)
        spec = "legacy destinations=127.0.0.1:%d encoding=proxy-v2 hmac-key-file=" + key
        forged = Xproxyd(self.sandbox, self.procs, [spec % relay.port], name="xproxyd-relay")
        msg = ["EHLO client-66.example", "MAIL FROM:<s@example.org>", "RCPT TO:<r@example.net>", "DATA", "QUIT"]
        replies = smtp_session(forged.port, msg, source="127.0.0.66")
        self.assertEqual([r[0] for r in replies], [220, 250, 250, 250, 451, 221], replies)
        self.assertGreaterEqual(relay.rewritten, 1)
        self.assertIn("PROXY header HMAC does not verify", read_text(self.shim_log))
        self.assertNotRegex(self.b.log(), r"10\.1\.2\.3")

        # Unaltered, the signed header is accepted and names the client.
        direct = Xproxyd(self.sandbox, self.procs, [spec % self.b_port], name="xproxyd-direct")
        replies = smtp_session(direct.port, msg[:4] + ["Subject: signed\r\n\r\nx\r\n.\r\n", "QUIT"],
                               source="127.0.0.66")
        self.assertEqual([r[0] for r in replies], [220, 250, 250, 250, 354, 250, 221], replies)
        self.b.wait_log(r"[0-9A-F]+: client=unknown\[127\.0\.0\.66\]", timeout=30)
        direct.wait_log(r"event=downstream_open .*encoding=proxy-v2 tls=no verified=no signed=yes")
        self.assertEqual(len(self.sink.wait_messages(1, timeout=30)), 1)

    def test_acceptance3_two_clients_over_one_cached_connection(self):
        self.legacy_b()
        xp = Xproxyd(self.sandbox, self.procs, ["legacy destinations=127.0.0.1:%d encoding=proxy-v2" % self.b_port])
        # A keeps its connection to xproxyd after the first delivery and reuses it for the
        # second message, which comes from another client.
        self.gateway_a(xp.port, {"smtp_connection_cache_destinations": "127.0.0.1",
                                 "smtp_connection_cache_time_limit": "20s"})
        for n, client in enumerate(("127.0.0.77", "127.0.0.88")):
            rc, out = swaks(self.a.port, source=client, helo="client-%s.example" % client.split(".")[-1])
            self.assertEqual(rc, 0, out)
            self.sink.wait_messages(n + 1, timeout=30)
        msgs = self.sink.wait_messages(2, timeout=40)
        self.assertEqual(len(msgs), 2)
        joined = "\n".join(msgs)
        self.assertIn("(unknown [127.0.0.77])", joined)
        self.assertIn("(unknown [127.0.0.88])", joined)
        for m in msgs:  # B's Received names the same client as A's: each its own source
            ips = re.findall(r"\(unknown \[(127\.0\.0\.\d+)\]\)", m)
            self.assertEqual(len(ips), 2, m)
            self.assertEqual(ips[0], ips[1], m)
        # A reused its connection (conn_use=2) and xproxyd saw both in one session.
        self.a.wait_log(r"conn_use=2.*status=sent", timeout=20)
        m = xp.wait_log(r"event=disconnect sid=(\w+) reason=\"[^\"]*\" transactions=2", timeout=20)
        sid = m.group(1)
        log = xp.log()
        self.assertRegex(log, r"event=relayed sid=%s txn=1 client=127\.0\.0\.(77|88):" % sid)
        clients = re.findall(r"event=relayed sid=%s txn=\d client=(127\.0\.0\.\d+):" % sid, log)
        self.assertEqual(sorted(clients), ["127.0.0.77", "127.0.0.88"])
        # One downstream connection per source identity.
        self.assertEqual(len(re.findall(r"event=downstream_open sid=%s " % sid, log)), 2)
        self.b.wait_log(r"client=unknown\[127\.0\.0\.77\]")
        self.b.wait_log(r"client=unknown\[127\.0\.0\.88\]")

    def test_acceptance2_xclient_to_postfix_that_authorizes_xproxyd(self):
        self.sink = SmtpSink(self.sandbox, self.procs)
        policy = self.capture(respond=policy_responder("DUNNO"))
        table = self.sandbox.write("access.cidr", "127.0.0.66/32 REJECT blocked by C\n")
        c_port = free_port()
        milter = RecordingMilter()
        self.addCleanup(milter.close)
        c = Postfix(self.sandbox, self.procs, "downstream", c_port, relay_port=self.sink.port, main_cf={
            "smtpd_milters": "inet:127.0.0.1:%d" % milter.port, "milter_default_action": "tempfail",
            "smtpd_authorized_xclient_hosts": "127.0.0.1",
            "smtpd_client_restrictions": "check_client_access cidr:" + table,
            "smtpd_recipient_restrictions": "check_policy_service inet:127.0.0.1:%d, permit_mynetworks, "
                                            "reject_unauth_destination" % policy.port})
        c.start()
        xp = Xproxyd(self.sandbox, self.procs, ["c destinations=127.0.0.1:%d encoding=xclient" % c_port])
        self.gateway_a(xp.port)

        rc, out = swaks(self.a.port, source="127.0.0.66", helo="client-66.example", sender="<>")
        self.assertEqual(rc, 0, out)
        c.wait_log(r"reject: RCPT from unknown\[127\.0\.0\.66\]: 554 5\.7\.1", timeout=30)
        self.a.wait_log(r"status=bounced .*554 5\.7\.1", timeout=30)

        rc, out = swaks(self.a.port, source="127.0.0.77", helo="client-77.example")
        self.assertEqual(rc, 0, out)
        msgs = self.sink.wait_messages(1, timeout=30)
        self.assertIn("(unknown [127.0.0.77])", msgs[0])
        self.assertIn("client-77.example", msgs[0])  # HELO survived the XCLIENT split
        reqs = wait_until(lambda: [r for s in policy.sessions for r in split_requests(s)
                                   if r.get("client_address") == "127.0.0.77"], 20, 0.1, "policy request for .77")
        self.assertEqual(reqs[0]["helo_name"], "client-77.example")
        self.assertFalse([r for s in policy.sessions for r in split_requests(s)
                          if r.get("client_address") == "127.0.0.1"])
        self.assertNotRegex(c.log(), r"client=unknown\[127\.0\.0\.1\]")
        # The milter: every MAIL FROM it saw belongs to a connect event naming the
        # original client (smtpd reports xproxyd's own connect first, then, after XCLIENT,
        # the client it names).
        mails = []
        for conn in milter.events:
            current = None
            for kind, value in conn:
                if kind == "connect":
                    current = value
                elif kind == "mail":
                    mails.append((current, value))
        self.assertIn(("127.0.0.77", "<sender@example.org>"), mails)
        self.assertTrue(all(addr in ("127.0.0.66", "127.0.0.77") for addr, _ in mails), mails)

    def xclient_two_sources_one_session(self, authorized):
        sink = SmtpSink(self.sandbox, self.procs)
        c_port = free_port()
        c = Postfix(self.sandbox, self.procs, "downstream", c_port, relay_port=sink.port,
                    main_cf={"smtpd_authorized_xclient_hosts": authorized})
        c.start()
        xp = Xproxyd(self.sandbox, self.procs, ["c destinations=127.0.0.1:%d encoding=xclient" % c_port])
        cmds = ["EHLO gateway.example"]
        for n in ("77", "88"):
            cmds += ["XFORWARD ADDR=127.0.0.%s PORT=10%s HELO=client-%s.example" % (n, n, n),
                     "MAIL FROM:<s@example.org>", "RCPT TO:<r@example.net>", "DATA",
                     "Subject: %s\r\n\r\nx\r\n.\r\n" % n]
        replies = smtp_session(xp.port, cmds + ["QUIT"])
        self.assertEqual([r[0] for r in replies[-7:-1]], [250, 250, 250, 250, 354, 250], "%r" % replies)
        self.assertEqual([r[0] for r in replies[3:7]], [250, 250, 354, 250], replies)
        msgs = sink.wait_messages(2)
        for n in ("77", "88"):
            m = next(m for m in msgs if "Subject: %s" % n in m)
            self.assertIn("from client-%s.example (unknown [127.0.0.%s])" % (n, n), m)
        return c, xp

    def test_xclient_resent_on_one_connection_when_the_downstream_allows_it(self):
        c, xp = self.xclient_two_sources_one_session("127.0.0.0/8")
        xp.wait_log(r"event=downstream_reannounce")
        self.assertEqual(len(re.findall(r"event=downstream_open", xp.log())), 1)

    def test_xclient_refused_on_reuse_means_a_new_connection(self):
        c, xp = self.xclient_two_sources_one_session("127.0.0.1")
        xp.wait_log(r"event=reannounce_refused")
        self.assertEqual(len(re.findall(r"event=downstream_open", xp.log())), 2)

    def test_acceptance5_untrusted_client_is_refused_and_seen_as_itself(self):
        self.legacy_b()
        xp = Xproxyd(self.sandbox, self.procs, ["legacy destinations=127.0.0.1:%d encoding=proxy-v2" % self.b_port])
        replies = smtp_session(xp.port, [
            "EHLO spoofer.example",
            "XFORWARD NAME=spoof.example ADDR=127.0.0.99 PORT=1234",
            "XCLIENT ADDR=127.0.0.99 PORT=1234",
            "XPROXYFROM SID=X1 IP=127.0.0.99 PORT=1234",
            "MAIL FROM:<s@example.org>", "RCPT TO:<r@example.net>", "DATA",
            "Subject: spoof\r\n\r\nhello\r\n.\r\n", "QUIT"], source="127.0.0.55")
        ehlo = replies[1][1]
        self.assertNotIn("XCLIENT", ehlo)
        self.assertNotIn("XFORWARD", ehlo)
        for code, text in replies[2:5]:
            self.assertEqual(code, 550, replies)
            self.assertTrue(text.startswith("550 5.7.0"), text)
        self.assertEqual(replies[8][0], 250, replies)
        msgs = self.sink.wait_messages(1, timeout=30)
        self.assertIn("(unknown [127.0.0.55])", msgs[0])
        self.assertNotIn("127.0.0.99", msgs[0])
        self.b.wait_log(r"client=unknown\[127\.0\.0\.55\]")
        self.assertNotIn("127.0.0.99", self.b.log())
        self.assertEqual(len(re.findall(r"event=source_refused", xp.log())), 3)

    def test_idle_downstream_connection_kept_only_where_the_source_allows(self):
        # XFORWARD: one downstream connection serves consecutive client sessions, each
        # message announced with its own client. One event-loop thread parks the connection
        # as it is; several threads park its descriptor: both are exercised.
        for threads in ("1", "2"):
            with self.subTest(threads=threads):
                sink = SmtpSink(self.sandbox, self.procs, verbose=True, name="sink-t" + threads)
                xp = Xproxyd(self.sandbox, self.procs, ["s destinations=127.0.0.1:%d encoding=xforward" % sink.port],
                             extra=["--threads", threads], name="xproxyd-t" + threads)
                for client in ("127.0.0.77", "127.0.0.88", "127.0.0.99"):
                    replies = smtp_session(xp.port, ["EHLO c.example", "MAIL FROM:<s@example.org>",
                                                     "RCPT TO:<r@example.net>", "DATA", "Subject: x\r\n\r\nx\r\n.\r\n",
                                                     "QUIT"], source=client)
                    self.assertEqual(replies[5][0], 250, replies)
                self.assertEqual(len(sink.wait_messages(3)), 3)
                xf = sink.commands("XFORWARD")
                for client in ("127.0.0.77", "127.0.0.88", "127.0.0.99"):
                    self.assertTrue(any("ADDR=%s" % client in l for l in xf), xf)
                self.assertEqual(len(sink.commands("EHLO")), 1)  # one downstream connection
                self.assertEqual(len(re.findall(r"event=downstream_reuse", xp.log())), 2)

    def test_xclient_without_login_announces_no_login(self):
        # Postfix's rule, which xproxyd follows: an XCLIENT that does not carry LOGIN (or
        # HELO, PROTO) resets it. The second client must not inherit alice's login.
        sink = SmtpSink(self.sandbox, self.procs)
        policy = self.capture(respond=policy_responder("DUNNO"))
        c_port = free_port()
        c = Postfix(self.sandbox, self.procs, "downstream", c_port, relay_port=sink.port, main_cf={
            "smtpd_authorized_xclient_hosts": "127.0.0.0/8", "smtpd_client_port_logging": "yes",
            "smtpd_recipient_restrictions": "check_policy_service inet:127.0.0.1:%d, permit_mynetworks, "
                                            "reject_unauth_destination" % policy.port})
        c.start()
        xp = Xproxyd(self.sandbox, self.procs, ["c destinations=127.0.0.1:%d encoding=xclient" % c_port])
        msg = ["MAIL FROM:<s@example.org>", "RCPT TO:<r@example.net>", "DATA"]
        replies = smtp_session(xp.port, [
            "EHLO gateway.example",
            "XCLIENT NAME=a.example ADDR=127.0.0.66 PORT=1066 HELO=a.example PROTO=ESMTP LOGIN=alice",
            "EHLO a.example"] + msg + ["Subject: 66\r\n\r\nx\r\n.\r\n",
            "XCLIENT ADDR=127.0.0.67 PORT=1067",
            "EHLO b.example"] + msg + ["Subject: 67\r\n\r\nx\r\n.\r\n",
            "XCLIENT ADDR=127.0.0.68 PORT=1068 HELO=[UNAVAILABLE]",
            "EHLO gateway.example"] + msg + ["Subject: 68\r\n\r\nx\r\n.\r\n", "QUIT"])
        self.assertEqual([r[0] for r in replies], [220, 250, 220, 250, 250, 250, 354, 250,
                                                   220, 250, 250, 250, 354, 250,
                                                   220, 250, 250, 250, 354, 250, 221], replies)
        msgs = sink.wait_messages(3)
        # No HELO known: the EHLO xproxyd sends after XCLIENT (which Postfix takes as the
        # client's HELO) is the client's address literal, not xproxyd's or the gateway's name.
        m68 = next(m for m in msgs if "Subject: 68" in m)
        self.assertRegex(m68, r"Received: from \[127\.0\.0\.68\] \([^)]*\[127\.0\.0\.68\]\)")
        m66 = next(m for m in msgs if "Subject: 66" in m)
        m67 = next(m for m in msgs if "Subject: 67" in m)
        self.assertIn("with ESMTPA", m66)  # alice authenticated
        self.assertNotIn("ESMTPA", m67)
        self.assertIn("from b.example (", m67)  # the EHLO after an XCLIENT without HELO
        c.wait_log(r"client=a\.example\[127\.0\.0\.66\]:1066, sasl_method=XCLIENT, sasl_username=alice")
        self.assertRegex(c.log(), r"client=[^\s\[]+\[127\.0\.0\.67\]:1067\n")
        reqs = wait_until(lambda: [r for s in policy.sessions for r in split_requests(s)
                                   if r.get("client_address") == "127.0.0.67"], 20, 0.1, "policy request for .67")
        self.assertEqual(reqs[0].get("sasl_username", ""), "")
        self.assertEqual(reqs[0].get("reverse_client_name"), "a.example")  # NAME persists, as in Postfix

    def fake_xproxyfrom(self):
        fake = FakeDownstream(ehlo=("PIPELINING", "8BITMIME", "XPROXYFROM"))
        self.addCleanup(fake.close)
        xp = Xproxyd(self.sandbox, self.procs, ["x destinations=127.0.0.1:%d encoding=xproxyfrom" % fake.port])
        return fake, xp

    def test_xforward_without_ident_or_address_reaches_an_xproxyfrom_downstream(self):
        # XPROXYFROM needs a session id and an address; an upstream may send neither (no
        # IDENT; ADDR=[UNAVAILABLE] for mail submitted on the upstream itself). The message
        # must be delivered, not deferred on every retry.
        fake, xp = self.fake_xproxyfrom()
        msg = ["MAIL FROM:<s@example.org>", "RCPT TO:<r@example.net>", "DATA"]
        replies = smtp_session(xp.port, ["EHLO gateway.example", "XFORWARD ADDR=127.0.0.77 PORT=1077 HELO=c.example"]
                               + msg + ["Subject: 1\r\n\r\nx\r\n.\r\n",
                                        "XFORWARD NAME=[UNAVAILABLE] ADDR=[UNAVAILABLE] PORT=[UNAVAILABLE] "
                                        "SOURCE=LOCAL"] + msg + ["Subject: 2\r\n\r\nx\r\n.\r\n", "QUIT"])
        self.assertEqual([r[0] for r in replies], [220, 250, 250, 250, 250, 354, 250, 250, 250, 250, 354, 250, 221],
                         replies)
        self.assertEqual(len(fake.messages), 2)
        sid = xp.wait_log(r"event=source sid=(\w+) command=XFORWARD").group(1)
        xpf = [c.split() for c in fake.commands if c.startswith("XPROXYFROM")]
        self.assertEqual(len(xpf), 1, fake.commands)  # the second client is unknown: nothing to announce
        for attr in ("SID=" + sid, "IP=127.0.0.77", "PORT=1077", "HELO=c.example"):
            self.assertIn(attr, xpf[0])

    def test_unfinished_xproxyfrom_sequence_dies_with_rset_and_ehlo(self):
        fake, xp = self.fake_xproxyfrom()
        for between, code in (("RSET", 250), ("EHLO again.example", 250), ("NOOP", 250),
                              ("NOOP " + "x" * 3000, 500), ("NOOP \0", 500)):
            with self.subTest(between=between[:20]):
                replies = smtp_session(xp.port, [
                    "EHLO gateway.example",
                    "XPROXYFROM SID=Q1 IP=127.0.0.88 PORT=1088 LAST=False", between,
                    "XPROXYFROM LOGIN=mallory LAST=True", "QUIT"])
                self.assertEqual([r[0] for r in replies], [220, 250, 250, code, 501, 221], replies)
        replies = smtp_session(xp.port, ["EHLO gateway.example", "XPROXYFROM SID=Q1 IP=127.0.0.88 PORT=1088 LAST=False",
                                         "XPROXYFROM LOGIN=bob LAST=True", "MAIL FROM:<s@example.org>",
                                         "RCPT TO:<r@example.net>", "DATA", "Subject: q\r\n\r\nx\r\n.\r\n", "QUIT"])
        self.assertEqual([r[0] for r in replies], [220, 250, 250, 250, 250, 250, 354, 250, 221], replies)
        xpf = [c.split() for c in fake.commands if c.startswith("XPROXYFROM")]
        self.assertEqual(len(xpf), 1, fake.commands)
        for attr in ("SID=Q1", "IP=127.0.0.88", "PORT=1088", "LOGIN=bob"):
            self.assertIn(attr, xpf[0])
        self.assertNotIn("mallory", "\n".join(fake.commands))

    def test_bare_cr_or_lf_never_ends_data_here_or_downstream(self):
        # SMTP smuggling: "<LF>.<LF>" or "<CR>.<CR>" followed by a second transaction. Only
        # CRLF.CRLF ends the data; what goes downstream has CRLF line ends only, so a next
        # hop that ends lines at a bare CR or LF finds no end either.
        fake = FakeDownstream()
        self.addCleanup(fake.close)
        xp = Xproxyd(self.sandbox, self.procs, ["d destinations=127.0.0.1:%d encoding=none" % fake.port],
                     trusted=None)
        smuggled = "MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nSubject: smuggled\r\n"
        for eod in ("\n.\n", "\r.\r", "\r\n.\n", "\n.\r\n", "\r\n.\r"):
            with self.subTest(eod=repr(eod)):
                before = len(fake.messages)
                body = "Subject: one\r\n\r\nhello" + eod + smuggled + "\r\nbye\r\n.\r\n"
                replies = smtp_session(xp.port, ["EHLO c.example", "MAIL FROM:<s@example.org>",
                                                 "RCPT TO:<r@example.net>", "DATA", body, "QUIT"])
                self.assertEqual([r[0] for r in replies], [220, 250, 250, 250, 354, 250, 221], replies)
                got = fake.messages[before:]
                self.assertEqual(len(got), 1, got)
                self.assertIn(b"Subject: smuggled", got[0])
                self.assertNotRegex(got[0], rb"\r(?!\n)|(?<!\r)\n", "a bare CR or LF went downstream")
                self.assertNotIn(b"\r\n.\r\n", got[0][:-5])
        self.assertNotIn("MAIL FROM:<evil@example.org>", fake.commands)

    def test_downstream_that_cannot_take_the_client_address_gets_no_mail(self):
        # An XCLIENT without ADDR and PORT, or an XFORWARD without ADDR (Postfix's smtpd
        # always lists them) would leave xproxyd's own address as the client downstream
        # (fail open): such a destination counts as failed, the next
        # one is tried, and with none left the message is deferred (451 at DATA).
        full = {"xclient": "XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT",
                "xforward": "XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE"}
        short = {"xclient": "XCLIENT NAME HELO", "xforward": "XFORWARD NAME PROTO HELO IDENT SOURCE"}
        msg = ["MAIL FROM:<s@example.org>", "RCPT TO:<r@example.net>", "DATA", "Subject: t\r\n\r\nx\r\n.\r\n"]
        for enc in ("xclient", "xforward"):
            with self.subTest(encoding=enc):
                bad = FakeDownstream(ehlo=("PIPELINING", short[enc]))
                good = FakeDownstream(ehlo=("PIPELINING", full[enc]))
                self.addCleanup(bad.close)
                self.addCleanup(good.close)
                xp = Xproxyd(self.sandbox, self.procs, ["d destinations=127.0.0.1:%d,127.0.0.1:%d encoding=%s"
                                                        % (bad.port, good.port, enc)], name="xproxyd-" + enc)
                replies = smtp_session(xp.port, ["EHLO gateway.example", "XFORWARD ADDR=127.0.0.66 PORT=1066"] + msg
                                       + ["XFORWARD NAME=[UNAVAILABLE] ADDR=[UNAVAILABLE] PORT=[UNAVAILABLE]"] + msg
                                       + ["QUIT"])
                self.assertEqual([r[0] for r in replies], [220, 250, 250, 250, 250, 354, 250] * 1
                                 + [250, 250, 250, 354, 250, 221], replies)
                self.assertEqual(bad.messages, [])
                self.assertFalse([c for c in bad.commands if c.startswith(("MAIL", "XCLIENT", "XFORWARD"))],
                                 bad.commands)
                xp.wait_log(r"event=downstream_failed .*%s does not take ADDR%s: the client would be xproxyd"
                            % (enc.upper(), " PORT" if enc == "xclient" else ""))
                self.assertEqual(len(good.messages), 2)
                sent = [c for c in good.commands if c.startswith(enc.upper())]
                self.assertRegex(sent[0], r"ADDR=127\.0\.0\.66\b")
                # A client the upstream does not know is said to be unknown, never left out.
                self.assertIn("ADDR=[UNAVAILABLE]", sent[-1])
                self.assertNotRegex("\n".join(sent), r"(?<!DEST)ADDR=127\.0\.0\.1\b")

                only_bad = Xproxyd(self.sandbox, self.procs, ["d destinations=127.0.0.1:%d encoding=%s"
                                                              % (bad.port, enc)], name="xproxyd-only-" + enc)
                replies = smtp_session(only_bad.port, ["EHLO gateway.example", "XFORWARD ADDR=127.0.0.66 PORT=1066"]
                                       + msg[:3] + ["QUIT"])
                self.assertEqual([r[0] for r in replies], [220, 250, 250, 250, 250, 451, 221], replies)
                self.assertEqual(bad.messages, [])


if __name__ == "__main__":
    main()
