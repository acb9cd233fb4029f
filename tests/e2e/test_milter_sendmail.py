"""Acceptance 3 of xproxy-milter: inject mode in a real Sendmail 8.17.

Sendmail conflicts with the postfix package, so its Debian packages are downloaded
(apt-get download) into a cache and extracted beside Postfix; the .cf is built with the
extracted m4 from a minimal .mc (INPUT_MAIL_FILTER on a TCP socket, SMART_HOST = a
smtp-sink). A client bound to 127.0.0.66 sends a message with a forged X-Original-Source;
the message reaches the sink with exactly one header, which verifies with xproxy-wire and
names 127.0.0.66 and Sendmail's queue id. Sendmail runs in its own UTS namespace with a
fully qualified host name (it sleeps 60 s otherwise)."""

import glob
import os
import re
import subprocess

from harness import E2ETestCase, SmtpSink, free_port, main, send_mail, wait_for_port, wait_until, wire
from milter_util import Milter

CACHE = os.environ.get("XPROXY_SENDMAIL_CACHE", "/var/cache/xproxy-e2e/sendmail")
PACKAGES = ["sendmail-bin", "sendmail-base", "sendmail-cf", "m4"]

MC = """divert(-1)
divert(0)dnl
OSTYPE(`linux')dnl
define(`confDONT_PROBE_INTERFACES', `True')dnl
define(`confSERVICE_SWITCH_FILE', `{dir}/service.switch')dnl
define(`confALIAS_FILE', `')dnl
define(`QUEUE_DIR', `{dir}/queue')dnl
define(`STATUS_FILE', `{dir}/statistics')dnl
define(`confPID_FILE', `{dir}/sendmail.pid')dnl
define(`SMART_HOST', `esmtp:[127.0.0.1]')dnl
define(`ESMTP_MAILER_ARGS', `TCP $h {sink}')dnl
define(`RELAY_MAILER_ARGS', `TCP $h {sink}')dnl
define(`confTO_IDENT', `0s')dnl
FEATURE(`nocanonify')dnl
FEATURE(`promiscuous_relay')dnl
FEATURE(`accept_unresolvable_domains')dnl
DAEMON_OPTIONS(`Family=inet, Name=MTA, Addr=127.0.0.1, Port={port}')dnl
INPUT_MAIL_FILTER(`xproxy', `S=inet:{milter}@127.0.0.1, F=T, T=S:30s;R:30s;E:1m')dnl
MAILER(`smtp')dnl
"""


def sendmail_root():
    """The extracted packages (downloaded once into CACHE)."""
    root = os.path.join(CACHE, "root")
    binary = os.path.join(root, "usr/libexec/sendmail/sendmail")
    if os.path.exists(binary):
        return root
    os.makedirs(CACHE, exist_ok=True)
    if len(glob.glob(os.path.join(CACHE, "*.deb"))) < len(PACKAGES):
        r = subprocess.run(["apt-get", "download"] + PACKAGES, cwd=CACHE, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise AssertionError("apt-get download %s failed: %s" % (" ".join(PACKAGES), r.stderr))
    tmp = root + ".tmp"
    subprocess.run(["rm", "-rf", tmp], check=True)
    for deb in glob.glob(os.path.join(CACHE, "*.deb")):
        subprocess.run(["dpkg", "-x", deb, tmp], check=True)
    os.rename(tmp, root)
    return root


class Sendmail:
    def __init__(self, sandbox, procs, port, sink_port, milter_port):
        root = sendmail_root()
        self.dir = sandbox.mkdir("sendmail")
        queue = sandbox.mkdir("sendmail", "queue", mode=0o700)
        assert queue
        sandbox.write("sendmail/service.switch", "hosts files\n")
        mc = sandbox.write("sendmail/test.mc", MC.format(dir=self.dir, sink=sink_port, port=port, milter=milter_port))
        cfdir = os.path.join(root, "usr/share/sendmail/cf/")
        with open(os.path.join(self.dir, "test.cf"), "w") as out:
            subprocess.run([os.path.join(root, "usr/bin/m4"), "-D_CF_DIR_=" + cfdir, cfdir + "m4/cf.m4", mc],
                           stdout=out, stderr=subprocess.DEVNULL, check=True)
        self.trace = os.path.join(self.dir, "trace")
        sandbox.logs.append(self.trace)
        exe = os.path.join(root, "usr/libexec/sendmail/sendmail")
        cmd = "hostname sm.test.invalid && exec %s -bD -C %s/test.cf -X %s" % (exe, self.dir, self.trace)
        self.proc = procs.start("sendmail", ["unshare", "--uts", "sh", "-c", cmd])
        wait_for_port("127.0.0.1", port, timeout=30)


class MilterSendmail(E2ETestCase):
    def test_inject_in_sendmail(self):
        sink = SmtpSink(self.sandbox, self.procs)
        m = Milter(self.sandbox, self.procs, "milter", "inject")
        port = free_port()
        Sendmail(self.sandbox, self.procs, port, sink.port, m.port)
        forged = "X-Original-Source: v=1; ip=10.9.9.9; port=1; t=1; kid=k1; sig=AAAA\r\n"
        body = forged + "Subject: via-sendmail\r\nMessage-ID: <sm1@client.example>\r\n\r\nhello\r\n"
        replies = send_mail(port, source="127.0.0.66", sender="a@sender.example", rcpt="b@rcpt.example", body=body)
        m250 = [t for c, t in replies if "Message accepted for delivery" in t]
        self.assertEqual(len(m250), 1, replies)
        qid = m250[0].split()[2]
        msg = wait_until(lambda: next((t for t in sink.messages() if "via-sendmail" in t), None), 60, 0.2,
                         "the message at the sink")
        headers = msg.split("\n\n", 1)[0]
        found = re.findall(r"^X-Original-Source:.*(?:\n[ \t].*)*", headers, re.M)
        self.assertEqual(len(found), 1, headers)
        self.assertNotIn("10.9.9.9", headers)
        rc, out, err = wire(["trace-verify", "--keyring", m.ring, "--sender", "a@sender.example",
                             "--message-id", "<sm1@client.example>"], found[0].encode())
        self.assertEqual(rc, 0, out.decode() + err)
        self.assertIn(b"ip=127.0.0.66", out)
        self.assertIn(("sid=" + qid).encode(), out)
        self.assertIn(b"by=milter.test", out)
        lines = m.messages()
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("queue_id=%s mode=inject client=127.0.0.66:" % qid, lines[0])
        self.assertIn("outcome=injected removed=1", lines[0])


    def test_virtual_domains_in_sendmail(self):
        """The shared policy engine at RCPT in inject mode: Sendmail gets the directory's
        replies (no policy service exists for Sendmail), and a held mailbox's message is
        quarantined (smfi_quarantine: a queue file hf* with the reason) instead of sent."""
        directory = self.sandbox.write("directory", "domain example.com state=active\n"
                                                    "user alice@example.com state=active\n"
                                                    "user off@example.com state=disabled\n"
                                                    "user held@example.com state=hold\n"
                                                    "domain sleepy.example state=inactive\n")
        sink = SmtpSink(self.sandbox, self.procs)
        m = Milter(self.sandbox, self.procs, "milter", "inject", ["--policy", "vdomains", "--directory", directory])
        port = free_port()
        Sendmail(self.sandbox, self.procs, port, sink.port, m.port)
        rows = [("alice@example.com", 250, None), ("nobody@example.com", 550, "5.1.1"),
                ("x@sleepy.example", 450, "4.2.1"), ("x@elsewhere.example", 250, None),
                ("off@example.com", 550, "5.2.1"), ("held@example.com", 250, None)]
        for rcpt, want, status in rows:
            with self.subTest(rcpt):
                replies = send_mail(port, source="127.0.0.66", sender="a@sender.example", rcpt=rcpt)
                code, text = replies[3]  # greeting, EHLO, MAIL, RCPT
                self.assertEqual(code, want, replies)
                if status:
                    self.assertIn(status, text)
                    self.assertIn(rcpt, text)
        self.assertTrue(any("outcome=rcpt_rejected vdomains:user_unknown" in l for l in m.messages()), m.messages())

        def quarantined():
            for path in glob.glob(os.path.join(self.sandbox.path("sendmail", "queue"), "hf*")):
                with open(path, errors="replace") as f:
                    if "\nq<held@example.com>: Mailbox on hold\n" in f.read():
                        return path
            return None
        wait_until(quarantined, 20, 0.2, "the held message quarantined in Sendmail's queue")
        wait_until(lambda: len(sink.messages()) == 2, 30, 0.2, "the two others at the sink")
        self.assertFalse(any("<held@example.com>" in msg for msg in sink.messages()))


if __name__ == "__main__":
    main()
