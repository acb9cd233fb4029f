"""xproxy-policyd behind a real Postfix 3.7 (check_policy_service): the reply code for
each domain and user state of the directory (a held one: the message waits in Postfix's
hold queue), the signed X-Original-Source header on mail
from 127.0.0.66 (exactly one, verifying, naming 127.0.0.66) with a client's forged header
removed by a header_checks rule, risk routing, reload, and bad input."""

import os
import re
import signal
import json
import socket
import subprocess
import time

from harness import (E2ETestCase, SOURCE_DIR, Postfix, SmtpSink, binary, free_port, main, queued, read_text,
                     send_mail, smtp_session, wait_for_log, wait_for_port, wait_until, wire)

DIRECTORY = """# test directory
domain example.com state=active services=smtp,submission
user alice@example.com state=active
user idle@example.com state=inactive
user gone@example.com state=deleted
user off@example.com state=disabled
user purged@example.com state=Removed
user held@example.com state=hold
user full@example.com state=overquota
domain sleepy.example state=inactive
domain closed.example state=deleted
domain barred.example state=disabled
user carl@barred.example
domain frozen.example state=hold
user fay@frozen.example
domain crowded.example state=overquota
user cid@crowded.example
domain nosmtp.example state=active services=submission
user bob@nosmtp.example
"""
KEYRING = "k1 hex:00112233445566778899aabbccddeeff\n"
MAN = os.path.join(SOURCE_DIR, "doc", "man", "xproxy-policyd.8")
RISK = "class high transport=smtp-high:[127.0.0.1]:%d\nnetwork 127.0.0.88/32 class=high\n"
PRIVATE_NAME = "X-Original-Source-q7Zt"  # the deployment's private header name


def documented_header_checks():
    """The header_checks lines the man page gives (FORGED HEADERS), exactly as written."""
    text = read_text(MAN)
    block = text.split("# /etc/postfix/header_checks\n", 1)[1].split("# /etc/postfix/", 1)[0].split(".fi", 1)[0]
    lines = [l.replace("\\e", "\\").replace("\\-", "-") for l in block.splitlines() if l.strip()]
    assert lines, "no header_checks lines in " + MAN
    return "\n".join(lines) + "\n"


class Policyd(E2ETestCase):
    def start_policyd(self, *extra):
        self.pd_port = free_port()
        self.dir_file = self.sandbox.write("directory.txt", DIRECTORY)
        self.ring = self.sandbox.write("keyring", KEYRING, mode=0o600)
        self.sink = SmtpSink(self.sandbox, self.procs)
        self.risk = self.sandbox.write("risk.txt", RISK % self.sink.port)
        self.pd_log = self.sandbox.path("policyd.log")
        self.sandbox.logs.append(self.pd_log)
        argv = [binary("policyd/xproxy-policyd"), "--listen", "inet:127.0.0.1:%d" % self.pd_port,
                "--allow-peers", "127.0.0.1/32", "--log", "stderr",
                "--policy", "inject,vdomains,risk", "--directory", self.dir_file, "--keyring", self.ring,
                "--risk-map", self.risk, "--signer", "gw1.test", "--watch-interval", "1",
                "--header-name", PRIVATE_NAME] + list(extra)
        with open(self.pd_log, "wb") as out:
            self.pd = self.procs.start("policyd", argv, stdout=out)
        wait_for_port("127.0.0.1", self.pd_port)

    def start_postfix(self, **main_cf):
        self.port = free_port()
        # A second listener stands for the submission service: its policy requests say
        # policy_context=submission, so the sender side of vdomains applies.
        self.sub_port = free_port()
        sub_policy = ("{ inet:127.0.0.1:%d, default_action=DUNNO, policy_context=submission }" % self.pd_port)
        # Forged headers from clients are dropped on the way in; ours travels under a private
        # name no client knows and gets its public name back on the way out.
        checks = self.sandbox.write("header_checks", documented_header_checks())
        out_checks = self.sandbox.write("smtp_header_checks",
                                        "/^%s:(.*)$/ REPLACE X-Original-Source:${1}\n" % PRIVATE_NAME)
        policy = "check_policy_service { inet:127.0.0.1:%d, default_action=DUNNO }" % self.pd_port
        cfg = {"smtpd_recipient_restrictions": policy + ", permit_mynetworks, reject_unauth_destination",
               "smtpd_data_restrictions": policy,
               "header_checks": "regexp:" + checks,
               "smtp_header_checks": "regexp:" + out_checks}
        cfg.update(main_cf)
        sub = ("127.0.0.1:%d inet n - n - - smtpd -o syslog_name=postfix/submission "
               "-o { smtpd_recipient_restrictions = check_policy_service %s, permit_mynetworks, "
               "reject_unauth_destination }" % (self.sub_port, sub_policy))
        self.pf = Postfix(self.sandbox, self.procs, "pf", self.port, relay_port=self.sink.port, main_cf=cfg,
                          services=["smtp-high unix - - n - - smtp -o smtp_bind_address=127.0.0.2 -o syslog_name=postfix/smtp-high",
                                    sub])
        self.pf.start()

    def rcpt_code(self, rcpt, source="127.0.0.66"):
        replies = send_mail(self.port, source=source, rcpt=rcpt)
        return replies[3]

    def test_directory_states(self):
        self.start_policyd()
        self.start_postfix()
        rows = [
            ("alice@example.com", 250, None),
            ("nobody@example.com", 550, "5.1.1"),
            ("a@sleepy.example", 450, "4.2.1"),
            ("a@closed.example", 550, "5.1.2"),
            ("idle@example.com", 450, "4.2.1"),
            ("gone@example.com", 550, "5.1.6"),
            ("purged@example.com", 550, "5.1.6"),
            ("off@example.com", 550, "5.2.1"),
            ("full@example.com", 452, "4.2.2"),
            ("carl@barred.example", 550, "5.2.1"),
            ("nobody@barred.example", 550, "5.2.1"),
            ("cid@crowded.example", 452, "4.2.2"),
            ("nobody@crowded.example", 550, "5.1.1"),
            ("nobody@frozen.example", 550, "5.1.1"),
            ("bob@nosmtp.example", 550, None),
            ("someone@not-hosted.example", 250, None),
        ]
        for rcpt, want_code, want_status in rows:
            code, text = self.rcpt_code(rcpt)
            self.assertEqual(code, want_code, "%s: %s" % (rcpt, text))
            if want_status:
                self.assertIn(want_status, text, rcpt)
        wait_for_log(self.pd_log, r'recipient="nobody@example\.com" policy=vdomains reason=user_unknown', 10)

    def test_sender_states_on_submission(self):
        # The sender side through Postfix: an over-quota account still sends, a held one
        # waits (450), a disabled one is refused; the domain's state comes first.
        self.start_policyd()
        self.start_postfix()
        rows = [
            ("alice@example.com", 250, None, None),
            ("full@example.com", 250, None, None),
            ("cid@crowded.example", 250, None, None),
            ("held@example.com", 450, "4.7.1", "Sender account <held@example.com> is on hold"),
            ("fay@frozen.example", 450, "4.7.1", "Sender domain frozen.example is on hold"),
            ("off@example.com", 550, "5.7.1", "Sender account <off@example.com> is disabled"),
            ("carl@barred.example", 550, "5.7.1", "Sender domain barred.example is disabled"),
            ("idle@example.com", 450, "4.7.1", "Sender account <idle@example.com> is temporarily disabled"),
            ("purged@example.com", 550, "5.7.1", "Sender account <purged@example.com> no longer exists"),
        ]
        for sender, want_code, want_status, want_text in rows:
            replies = send_mail(self.sub_port, source="127.0.0.66", sender=sender, rcpt="x@other.example")
            code, text = replies[3]  # Postfix words it "<x@other.example>: Recipient address rejected: ..."
            self.assertEqual(code, want_code, "%s: %s" % (sender, replies))
            if want_status:
                self.assertTrue(text.startswith("%d %s " % (want_code, want_status)), text)
                self.assertTrue(text.endswith(": " + want_text), text)
        wait_for_log(self.pd_log, r'sender="held@example\.com" .*policy=vdomains reason=sender_hold', 10)

    def held(self):
        """The queue ids of the messages in Postfix's hold queue (postqueue -j)."""
        r = subprocess.run(["postqueue", "-c", self.pf.conf, "-j"], capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        entries = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
        return {e["queue_id"]: e for e in entries if e["queue_name"] == "hold"}

    def test_hold_state_parks_the_message_in_the_hold_queue(self):
        # A held mailbox or domain: the message is accepted (250) and waits in Postfix's
        # hold queue, whole; an active recipient alone is delivered.
        self.start_policyd()
        self.start_postfix()
        ids = {}
        for rcpt in ("held@example.com", "fay@frozen.example"):
            replies = send_mail(self.port, source="127.0.0.66", rcpt=rcpt)
            self.assertEqual(replies[3][0], 250, replies)
            ids[rcpt] = queued(replies)
            self.assertTrue(ids[rcpt], replies)
        # Two recipients, one of them held: Postfix holds the whole message.
        both = smtp_session(self.port, ["EHLO client.example.org", "MAIL FROM:<s@sender.example>",
                                        "RCPT TO:<alice@example.com>", "RCPT TO:<held@example.com>", "DATA",
                                        "Subject: both\r\n\r\nhello\r\n.\r\n", "QUIT"],
                            source="127.0.0.66")
        ids["both"] = queued(both)
        self.assertTrue(ids["both"], both)
        send_mail(self.port, source="127.0.0.66", rcpt="alice@example.com", body="Subject: free\r\n\r\nfree\r\n")
        wait_until(lambda: any("Subject: free" in m for m in self.sink.messages()), 20, 0.1, "the active one")
        held = wait_until(lambda: len(self.held()) == 3 and self.held(), 20, 0.2, "three held messages")
        self.assertEqual(set(held), set(ids.values()))
        self.assertEqual(sorted(r["address"] for r in held[ids["both"]]["recipients"]),
                         ["alice@example.com", "held@example.com"])
        self.pf.wait_log(r"hold: RCPT from .*<held@example\.com>: .*Mailbox on hold")
        self.pf.wait_log(r"hold: RCPT from .*<fay@frozen\.example>: .*Mail domain on hold")
        wait_for_log(self.pd_log, r'recipient="held@example\.com" policy=vdomains reason=user_hold '
                                  r'action="HOLD Mailbox on hold"', 10)
        self.assertFalse(any("Subject: both" in m or "held@example.com" in m for m in self.sink.messages()))

    def test_trace_header_injected_and_forgery_removed(self):
        self.start_policyd()
        self.start_postfix()
        # A forged header and a forged verdict: the documented header_checks drop both and
        # keep the one the daemon PREPENDs under its private name.
        forged = ("X-Original-Source: v=1; ip=10.9.9.9; port=1; t=1; b=env; kid=k1; "
                  "sig=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n"
                  "X-Original-Source-Result: pass ip=10.9.9.9; kid=k1; signer=gw1.test; by=gw2.test\r\n")
        body = forged + "Subject: hello\r\n\r\nbody\r\n"
        replies = send_mail(self.port, source="127.0.0.66", sender="carol@sender.example", rcpt="x@other.example",
                            body=body)
        self.assertTrue(any(t.startswith("250 2.0.0 Ok: queued") for _, t in replies), replies)
        msg = wait_until(lambda: self.sink.messages() and "hello" in self.sink.messages()[0] and
                         self.sink.messages()[0], 20, 0.1, "message at the sink")
        headers = msg.split("\n\n", 1)[0]
        self.assertNotIn(PRIVATE_NAME, headers)
        found = re.findall(r"^X-Original-Source:.*(?:\n[ \t].*)*", headers, re.M)
        self.assertEqual(len(found), 1, headers)
        self.assertNotIn("10.9.9.9", headers)
        self.assertNotIn("X-Original-Source-Result", headers)
        rc, out, err = wire(["trace-verify", "--keyring", self.ring, "--sender", "carol@sender.example"],
                            found[0].encode())
        self.assertEqual(rc, 0, out.decode() + err)
        self.assertIn(b"ip=127.0.0.66", out)
        self.assertIn(b"by=gw1.test", out)
        # Bound to the sender: the same header in mail from someone else does not verify.
        rc, out, _ = wire(["trace-verify", "--keyring", self.ring, "--sender", "mallory@sender.example"],
                          found[0].encode())
        self.assertEqual(rc, 1)
        self.assertIn(b"result=wrong_binding", out)

    def test_risk_routing(self):
        self.start_policyd()
        self.start_postfix()
        replies = send_mail(self.port, source="127.0.0.88", rcpt="x@other.example")
        self.assertTrue(any(t.startswith("250 2.0.0 Ok: queued") for _, t in replies), replies)
        self.pf.wait_log(r"filter: RCPT from unknown\[127\.0\.0\.88\]: <x@other\.example>: Recipient address "
                         r"triggers FILTER smtp-high:\[127\.0\.0\.1\]")
        self.pf.wait_log(r"postfix/smtp-high/smtp\[[0-9]+\]: [0-9A-F]+: to=<x@other\.example>, "
                         r"relay=127\.0\.0\.1\[127\.0\.0\.1\]:[0-9]+.*status=sent", timeout=20)
        # A client not in a risk network leaves through the default transport.
        send_mail(self.port, source="127.0.0.66", rcpt="y@other.example")
        self.pf.wait_log(r"postfix/smtp\[[0-9]+\]: [0-9A-F]+: to=<y@other\.example>.*status=sent", timeout=20)
        # The sink sees each message come from its transport's source address.
        msgs = wait_until(lambda: len(self.sink.messages()) >= 2 and self.sink.messages(), 20, 0.1, "two messages")
        by_rcpt = {("x" if "<x@other.example>" in m else "y"): m for m in msgs}
        self.assertIn("X-Client-Addr: 127.0.0.2\n", by_rcpt["x"])  # high risk: smtp-high, bound to 127.0.0.2
        self.assertIn("X-Client-Addr: 127.0.0.1\n", by_rcpt["y"])

    def test_policyd_killed_and_restarted(self):
        # Postfix holds connections to the daemon; the daemon dies: Postfix applies
        # default_action (here DUNNO), loses nothing it accepted, and uses the daemon
        # again once it is back, without a restart of Postfix.
        self.start_policyd()
        self.start_postfix()
        self.assertEqual(self.rcpt_code("nobody@example.com")[0], 550)
        self.procs.stop(self.pd)
        replies = send_mail(self.port, source="127.0.0.66", rcpt="during@other.example")
        self.assertTrue(any(t.startswith("250 2.0.0 Ok: queued") for _, t in replies), replies)
        self.pf.wait_log(r"warning: problem talking to server 127\.0\.0\.1:%d" % self.pd_port, timeout=20)
        argv = [binary("policyd/xproxy-policyd"), "--listen", "inet:127.0.0.1:%d" % self.pd_port,
                "--allow-peers", "127.0.0.1/32", "--log", "stderr",
                "--policy", "inject,vdomains,risk", "--directory", self.dir_file, "--keyring", self.ring,
                "--risk-map", self.risk, "--signer", "gw1.test", "--header-name", PRIVATE_NAME]
        with open(self.pd_log, "ab") as out:
            self.pd = self.procs.start("policyd", argv, stdout=out)
        wait_for_port("127.0.0.1", self.pd_port)
        self.assertEqual(wait_until(lambda: self.rcpt_code("nobody@example.com")[0] == 550, 30, 0.5,
                                    "decisions again after the restart"), True)
        wait_until(lambda: any("during@other.example" in m for m in self.sink.messages()), 20, 0.1,
                   "the message accepted while the daemon was down, at the sink")

    def test_reload_swaps_directory_and_keeps_old_on_error(self):
        self.start_policyd()
        self.start_postfix()
        self.assertEqual(self.rcpt_code("new@example.com")[0], 550)
        with open(self.dir_file, "a") as f:
            f.write("user new@example.com state=active\n")
        os.kill(self.pd.pid, signal.SIGHUP)
        wait_for_log(self.pd_log, r"event=reload trigger=(SIGHUP|file_change)", 10)
        self.assertEqual(self.rcpt_code("new@example.com")[0], 250)
        # A broken file is rejected; the previous directory stays in force.
        start = len(read_text(self.pd_log))
        with open(self.dir_file, "a") as f:
            f.write("user broken@example.com state=maybe\n")
        os.kill(self.pd.pid, signal.SIGHUP)
        wait_for_log(self.pd_log, r"event=reload_failed trigger=SIGHUP error=\".*directory\.txt:", 10, start)
        self.assertEqual(self.rcpt_code("new@example.com")[0], 250)
        self.assertEqual(self.rcpt_code("nobody@example.com")[0], 550)

    def test_bad_input_costs_only_that_connection(self):
        self.start_policyd("--max-line-length", "100")
        good = socket.create_connection(("127.0.0.1", self.pd_port))
        stall = socket.create_connection(("127.0.0.1", self.pd_port))
        stall.sendall(b"request=smtpd_access_policy\nprotocol_st")  # and stalls
        for junk in (b"x" * 500 + b"\n", b"\x00\x01\x02\n\n", b"request=other\n\n", b"no equals sign\n"):
            s = socket.create_connection(("127.0.0.1", self.pd_port))
            s.sendall(junk)
            s.settimeout(5)
            self.assertEqual(s.recv(100), b"", junk)  # closed
            s.close()
        good.sendall(b"request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=127.0.0.66\n"
                     b"sender=a@b.example\nrecipient=nobody@example.com\n\n")
        good.settimeout(5)
        self.assertEqual(good.recv(1000), b"action=550 5.1.1 User unknown in virtual domain\n\n")
        # The log is written by its own thread: the lines may follow the closes a little.
        wait_for_log(self.pd_log, r"request line longer than 100 bytes", 10)
        wait_for_log(self.pd_log, r"NUL byte in request", 10)
        wait_for_log(self.pd_log, r'reason="not request=smtpd_access_policy"', 10)
        stall.close()
        wait_for_log(self.pd_log, r"event=incomplete_request .* reason=\"peer closed the connection\"", 10)
        good.close()

    def test_idle_timeout(self):
        # --idle-timeout 1: a connection that stalls mid-request is closed (and logged); one
        # that sends a request every 0.3 s stays open well past the timeout.
        self.start_policyd("--idle-timeout", "1")
        request = (b"request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=127.0.0.66\n"
                   b"sender=a@b.example\nrecipient=nobody@example.com\n\n")
        stall = socket.create_connection(("127.0.0.1", self.pd_port))
        stall.sendall(b"request=smtpd_access_policy\nprotocol_st")
        busy = socket.create_connection(("127.0.0.1", self.pd_port))
        busy.settimeout(5)
        end = time.time() + 3
        while time.time() < end:
            busy.sendall(request)
            self.assertEqual(busy.recv(1000), b"action=550 5.1.1 User unknown in virtual domain\n\n")
            time.sleep(0.3)
        stall.settimeout(5)
        self.assertEqual(stall.recv(100), b"")  # closed by the daemon
        wait_for_log(self.pd_log, r"event=incomplete_request .* reason=\"idle timeout\"", 10)
        busy.close()
        stall.close()

    def test_decision_log_line(self):
        # One line per decision, with queue_id, instance, client, state and action; every
        # value from the request escaped so that no client can break the line or forge a
        # key=value pair in it. Two requests pipelined on one connection: two lines.
        self.start_policyd()
        hostile = {
            "queue_id": b"4Xq1 action=\"OK\"",
            "instance": b"4fa8.\x1b[31m\r.0",
            "client_address": b"127.0.0.66",
            "sender": b"a\"b\\c@x.example",
            "recipient": b"nobody\" action=\"OK\" x=\"@example.com",
        }
        rows = [  # (request attributes, want action in the log)
            (dict(hostile, protocol_state=b"RCPT"), '550 5.1.1 User unknown in virtual domain'),
            (dict(queue_id=b"4Xq2", instance=b"1.2.3", client_address=b"127.0.0.88", protocol_state=b"RCPT",
                  sender=b"s@sender.example", recipient=b"x@other.example"), "FILTER smtp-high:[127.0.0.1]:%d"
             % self.sink.port),
        ]
        start = len(read_text(self.pd_log))
        conn = socket.create_connection(("127.0.0.1", self.pd_port))
        conn.sendall(b"".join(b"request=smtpd_access_policy\n" +
                              b"".join(b"%s=%s\n" % (k.encode(), v) for k, v in attrs.items()) + b"\n"
                              for attrs, _ in rows))
        conn.settimeout(5)
        got = b""
        while got.count(b"\n\n") < 2:
            chunk = conn.recv(4096)
            self.assertTrue(chunk, got)
            got += chunk
        conn.close()

        def unescape(text):
            return re.sub(rb"\\\\|\\x([0-9a-f]{2})",
                          lambda m: b"\\" if m.group(0) == b"\\\\" else bytes([int(m.group(1), 16)]),
                          text.encode())

        line_re = re.compile(r'event=decision queue_id=(\S*) instance=(\S*) client=(\S*) state=(\S*) '
                             r'sender="([^"]*)" recipient="([^"]*)" policy=(\S+) reason=(\S+) action="([^"]*)"$')
        lines = wait_until(lambda: (lambda ls: len(ls) >= 2 and ls)(
            [l for l in read_text(self.pd_log)[start:].splitlines() if "event=decision" in l]), 10, 0.05,
            "two decision lines")
        self.assertEqual(len(lines), 2, lines)
        for line, (attrs, want_action) in zip(lines, rows):
            self.assertTrue(all(0x20 <= ord(c) < 0x7f for c in line), line)
            m = line_re.search(line)
            self.assertIsNotNone(m, line)
            for i, name in enumerate(("queue_id", "instance", "client_address", "protocol_state", "sender",
                                      "recipient")):
                self.assertEqual(unescape(m.group(i + 1)), attrs[name], (name, line))
            self.assertEqual(m.group(9), want_action, line)

    def test_check_config(self):
        self.start_policyd()
        import subprocess
        r = subprocess.run([binary("policyd/xproxy-policyd"), "--policy", "inject", "--keyring", self.ring,
                            "--check-config"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration ok", r.stdout)
        os.chmod(self.ring, 0o644)
        r = subprocess.run([binary("policyd/xproxy-policyd"), "--policy", "inject", "--keyring", self.ring,
                            "--check-config"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("has mode 0644", r.stderr)
        r = subprocess.run([binary("policyd/xproxy-policyd"), "--policy", "vdomains", "--check-config"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("need --directory", r.stderr)


if __name__ == "__main__":
    main()
