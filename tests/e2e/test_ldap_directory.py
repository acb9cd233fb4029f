"""xproxy-policyd with its directory in a real OpenLDAP slapd (--directory ldap://...),
behind a real Postfix 3.7 (check_policy_service):
  - every domain and user state answers its reply code (HOLD: the message waits in
    Postfix's hold queue), aliases too, with status values in any case and "removed";
  - live changes made with ldapmodify/ldapadd/ldapdelete/ldapmodrdn while Postfix
    sends RCPTs every 100 ms: each decision flips within one second of the LDAP tool
    returning, with no restart and no reload of either daemon;
  - slapd stopped: decisions continue from memory; a fresh daemon with slapd down
    answers 451 4.3.0 (never 5.1.1), and loads once slapd is back;
  - the state file: a restarted daemon answers from it at once, even with slapd down,
    and catches up with changes made while it was down;
  - bad entries (invalid address, duplicate alias, unknown status, bad domain name, bad
    MTA) are logged with their DN and skipped, the rest works; a live change that breaks
    an entry likewise;
  - the documented Sun/Oracle messaging mapping (packaging/examples/ldap-directory.conf)
    reads a tree with inetUserStatus/mailUserStatus, mailAlternateAddress ...;
  - start-up errors: no base DN, unknown setting, readable password file, clear text
    to a remote server."""

import os
import re
import subprocess
import threading
import time

from harness import (E2ETestCase, SOURCE_DIR, Postfix, SmtpClient, SmtpSink, Slapd, binary, directory_ldif, domain_dn,
                     free_port, main, read_text, send_mail, user_dn, wait_until)
from ldap_helpers import LdapPolicyd, code_of, ldap_settings, ldap_url, sun_test_schema, wait_action
from xproxyd_helpers import TestPki

TREE = """mta mta1.example.net destinations=127.0.0.1:2525 encoding=xclient
domain example.com services=smtp,submission home=mta1.example.net
user alice@example.com alias=a.smith
user bob@example.com
user idle@example.com state=inactive
user off@example.com state=disabled
user gone@example.com state=deleted
user purged@example.com state=removed
user held@example.com state=hold
user full@example.com state=overquota
user loud@example.com state=INACTIVE
domain sleepy.example state=inactive
user a@sleepy.example
domain off.example state=Disabled
user a@off.example
domain closed.example state=deleted
user a@closed.example
domain held.example state=hold
user a@held.example
domain full.example state=overquota
user a@full.example
domain nosmtp.example services=submission
user a@nosmtp.example
"""

# (recipient, reply code and enhanced status Postfix gives the client; 250 = accepted)
STATES = [
    ("alice@example.com", "250"),
    ("ALICE@Example.COM", "250"),
    ("a.smith@example.com", "250"),
    ("nobody@example.com", "550 5.1.1"),
    ("idle@example.com", "450 4.2.1"),
    ("loud@example.com", "450 4.2.1"),
    ("off@example.com", "550 5.2.1"),
    ("gone@example.com", "550 5.1.6"),
    ("purged@example.com", "550 5.1.6"),
    ("full@example.com", "452 4.2.2"),
    ("a@sleepy.example", "450 4.2.1"),
    ("a@off.example", "550 5.2.1"),
    ("a@closed.example", "550 5.1.2"),
    ("a@full.example", "452 4.2.2"),
    ("a@nosmtp.example", "550 5.7.1"),
    ("someone@not-hosted.example", "250"),
]
HELD = ["held@example.com", "a@held.example"]  # accepted, then held in Postfix's hold queue


def smtp_code(reply):
    """(550, '5.1.1 <x>: Recipient ...') -> '550 5.1.1'; any 250 -> '250'."""
    code, text = reply
    if code == 250:
        return "250"
    m = re.match(r"(?:\d{3}[ -])?(\d\.\d+\.\d+)", text)
    return "%d %s" % (code, m.group(1) if m else "")


class LdapDirectory(E2ETestCase):
    maxDiff = None

    def start_ldap(self, tree=TREE, **kw):
        self.ldap = Slapd(self.sandbox, self.procs, **kw).start()
        self.ldap.add(directory_ldif(self.ldap.suffix, tree))
        return self.ldap

    def start_postfix(self, policy_port):
        self.sink = SmtpSink(self.sandbox, self.procs)
        self.port = free_port()
        policy = "check_policy_service { inet:127.0.0.1:%d, default_action=DUNNO }" % policy_port
        cfg = {"smtpd_recipient_restrictions": policy + ", permit_mynetworks, reject_unauth_destination",
               # the live test sends many refused RCPTs in one session: no error pacing
               "smtpd_soft_error_limit": "10000", "smtpd_hard_error_limit": "10000",
               "smtpd_error_sleep_time": "0"}
        self.pf = Postfix(self.sandbox, self.procs, "pf", self.port, relay_port=self.sink.port, main_cf=cfg)
        self.pf.start()

    def rcpt(self, rcpt):
        return smtp_code(send_mail(self.port, source="127.0.0.66", rcpt=rcpt)[3])

    def held_messages(self):
        return sum(len(files) for _, _, files in os.walk(os.path.join(self.pf.spool, "hold")))

    def dn(self, address):
        return user_dn(self.ldap.suffix, address)

    # ------------------------------------------------------------------ acceptance 1

    def test_every_state_through_postfix(self):
        self.start_ldap()
        pd = LdapPolicyd(self.sandbox, self.procs, self.ldap)
        m = pd.wait_refresh()
        # 7 domains, 15 users, 1 mta, none skipped (entries: those and any others read)
        self.assertEqual(m.groups()[1:], ("7", "15", "1", "0"), m.group(0))
        self.assertGreaterEqual(int(m.group(1)), 23, m.group(0))
        self.start_postfix(pd.port)
        got = [(rcpt, self.rcpt(rcpt)) for rcpt, _ in STATES]
        self.assertEqual(got, STATES)
        for i, rcpt in enumerate(HELD):
            self.assertEqual(self.rcpt(rcpt), "250", rcpt)
            wait_until(lambda: self.held_messages() == i + 1, 20, 0.1, "%s in the hold queue" % rcpt)

    # ------------------------------------------------------------------ acceptance 2

    def test_live_changes_flip_within_a_second(self):
        self.start_ldap()
        pd = LdapPolicyd(self.sandbox, self.procs, self.ldap)
        self.start_postfix(pd.port)
        pf_master = self.pf.master_pid
        s = self.ldap.suffix
        alicia = "uid=alicia," + domain_dn(s, "example.com")
        steps = [  # (what, LDAP change, recipient watched, before, after)
            ("user inactive", lambda: self.ldap.replace(self.dn("alice@example.com"), "xproxyStatus", "inactive"),
             "alice@example.com", "250", "450 4.2.1"),
            ("user disabled", lambda: self.ldap.replace(self.dn("alice@example.com"), "xproxyStatus", "disabled"),
             "alice@example.com", "450 4.2.1", "550 5.2.1"),
            ("user overquota", lambda: self.ldap.replace(self.dn("alice@example.com"), "xproxyStatus",
                                                          "overquota"), "alice@example.com", "550 5.2.1", "452 4.2.2"),
            ("status removed", lambda: self.ldap.replace(self.dn("alice@example.com"), "xproxyStatus"),
             "alice@example.com", "452 4.2.2", "250"),
            ("alias added", lambda: self.ldap.modify("dn: %s\nchangetype: modify\nadd: xproxyAlias\n"
                                                     "xproxyAlias: ali@example.com\n" % self.dn("alice@example.com")),
             "ali@example.com", "550 5.1.1", "250"),
            ("user added", lambda: self.ldap.add(directory_ldif(s, "user newbie@example.com\n", base=False)),
             "newbie@example.com", "550 5.1.1", "250"),
            ("user deleted", lambda: self.ldap.delete(self.dn("newbie@example.com")),
             "newbie@example.com", "250", "550 5.1.1"),
            ("domain inactive", lambda: self.ldap.replace(domain_dn(s, "example.com"), "xproxyStatus", "inactive"),
             "bob@example.com", "250", "450 4.2.1"),
            ("domain active", lambda: self.ldap.replace(domain_dn(s, "example.com"), "xproxyStatus", "active"),
             "bob@example.com", "450 4.2.1", "250"),
            ("domain added", lambda: self.ldap.add(directory_ldif(s, "domain new.example\n", base=False)),
             "x@new.example", "250", "550 5.1.1"),
            ("mail changed", lambda: self.ldap.replace(self.dn("bob@example.com"), "mail", "robert@example.com"),
             "bob@example.com", "250", "550 5.1.1"),
            # renamed, then changed under its new DN: the backend follows the entry
            ("user renamed", lambda: self.ldap.modrdn(self.dn("alice@example.com"), "uid=alicia"),
             "alice@example.com", "250", "250"),
            ("renamed user inactive", lambda: self.ldap.replace(alicia, "xproxyStatus", "inactive"),
             "alice@example.com", "250", "450 4.2.1"),
            ("renamed user deleted", lambda: self.ldap.delete(alicia), "ali@example.com", "450 4.2.1", "550 5.1.1"),
        ]
        records = []  # (sent, replied, recipient, code)
        watched = ["alice@example.com"]
        stop = threading.Event()
        errors = []

        def sender():
            try:
                c = SmtpClient(self.port, source="127.0.0.66")
                c.ehlo()
                c.cmd("MAIL FROM:<s@sender.example>")
                n = 0
                while not stop.is_set():
                    rcpt = watched[0]
                    t = time.time()
                    reply = c.cmd("RCPT TO:<%s>" % rcpt)
                    records.append((t, time.time(), rcpt, smtp_code(reply)))
                    n += 1
                    if n % 500 == 0:  # within smtpd_recipient_limit
                        c.cmd("RSET")
                        c.cmd("MAIL FROM:<s@sender.example>")
                    time.sleep(max(0.0, t + 0.1 - time.time()))
                c.close()
            except Exception as e:  # reported by the main thread
                errors.append(e)

        th = threading.Thread(target=sender, daemon=True)
        th.start()
        latencies = []
        try:
            for what, change, rcpt, before, after in steps:
                watched[0] = rcpt
                t_watch = time.time()
                wait_until(lambda: errors or len([r for r in records if r[0] > t_watch and r[2] == rcpt]) >= 2,
                           5, 0.02, "RCPTs for " + rcpt)
                self.assertFalse(errors, errors)
                seen = [r[3] for r in records if r[0] > t_watch and r[2] == rcpt]
                self.assertEqual(set(seen), {before}, "%s: before the change %s" % (what, seen))
                change()
                t0 = time.time()  # the LDAP tool returned
                # Every RCPT sent from 1 s after the change on answers the new decision.
                time.sleep(1.4)
                after_rows = [r for r in records if r[0] >= t0 and r[2] == rcpt]
                late = [r for r in after_rows if r[0] >= t0 + 1.0]
                self.assertTrue(late, "%s: no RCPT sent 1 s after the change" % what)
                self.assertEqual({r[3] for r in late}, {after}, "%s: %s" % (what, after_rows))
                first = next(r for r in after_rows if r[3] == after)
                latencies.append((first[1] - t0, what))
        finally:
            stop.set()
            th.join(10)
        self.assertFalse(errors, errors)
        worst = max(latencies)
        print("\nmodify -> changed decision at Postfix (reply received): worst %.0f ms (%s), median %.0f ms"
              % (worst[0] * 1000, worst[1], sorted(latencies)[len(latencies) // 2][0] * 1000))
        self.assertLess(worst[0], 1.0, latencies)
        # No restart and no reload of either daemon.
        self.assertIsNone(pd.proc.poll())
        self.assertEqual(self.pf.master_pid, pf_master)
        self.assertEqual(len(re.findall(r"ldap: connected to", pd.text())), 1, "reconnected")
        self.assertNotIn("event=reload", pd.text())
        self.assertNotIn("reload", self.pf.log())
        # (RFC 4533 has no rename: a modrdn arrives as a modify under the new DN)
        for what in ("modify", "add", "delete"):
            self.assertTrue(re.search(r"ldap: change: %s uid=" % what, pd.text()), "no change logged: " + what)
        self.assertTrue(re.search(r"ldap: change: modify uid=alicia,", pd.text()), "the renamed entry")

    # ------------------------------------------------------------------ acceptance 3

    def test_slapd_down_memory_then_fresh_daemon_tempfails(self):
        self.start_ldap()
        pd = LdapPolicyd(self.sandbox, self.procs, self.ldap)
        self.start_postfix(pd.port)
        want = {"alice@example.com": "250", "idle@example.com": "450 4.2.1", "nobody@example.com": "550 5.1.1",
                "a@closed.example": "550 5.1.2"}
        self.assertEqual({r: self.rcpt(r) for r in want}, want)
        self.ldap.stop()
        pd.wait_log(r"ldap: connection lost: .*; reconnecting in \d+ s")
        for _ in range(3):  # from memory, while the daemon keeps trying to reconnect
            self.assertEqual({r: self.rcpt(r) for r in want}, want)
            time.sleep(1)
        # A fresh daemon in its place, slapd still down: nothing is loaded, so every
        # hosted-or-not question is a tempfail (451 4.3.0), never "user unknown".
        pd.stop()
        fresh = LdapPolicyd(self.sandbox, self.procs, self.ldap, port=pd.port, name="fresh", wait=False)
        wait_until(lambda: self.rcpt("nobody@example.com") == "451 4.3.0", 30, 0.3, "451 from the fresh daemon")
        self.assertEqual({r: self.rcpt(r) for r in want}, {r: "451 4.3.0" for r in want})
        self.assertIsNone(fresh.proc.poll())
        self.assertNotIn("ldap: connected", fresh.text())
        # slapd back: the fresh daemon connects (backoff at most reconnect_max = 2 s) and loads.
        t0 = time.time()
        self.ldap.start()
        fresh.wait_refresh(15)
        took = wait_action(fresh.port, "nobody@example.com", "550 5.1.1", 10)
        print("\nslapd started -> fresh daemon loaded: %.1f s" % (time.time() - t0))
        self.assertEqual({r: self.rcpt(r) for r in want}, want)
        self.assertLess(took, 10)
        # And it follows changes again.
        self.ldap.replace(self.dn("idle@example.com"), "xproxyStatus", "active")
        wait_action(fresh.port, "idle@example.com", "DUNNO", 2)

    def test_state_file_restart_catches_up(self):
        self.start_ldap()
        state_dir = self.sandbox.mkdir("state", mode=0o700)
        state = os.path.join(state_dir, "policyd.ldap")
        settings = ldap_settings(self.sandbox, self.ldap, "policyd", state_file=state)
        pd = LdapPolicyd(self.sandbox, self.procs, self.ldap, settings=settings)
        wait_until(lambda: os.path.exists(state), 10, 0.1, "the state file")
        self.assertEqual(os.stat(state).st_mode & 0o077, 0, "state file readable by others")
        # Changes while the daemon is down arrive when it starts again.
        pd.stop()
        self.ldap.replace(self.dn("idle@example.com"), "xproxyStatus", "active")
        self.ldap.add(directory_ldif(self.ldap.suffix, "user late@example.com\n", base=False))
        self.ldap.delete(self.dn("bob@example.com"))
        pd.start(wait=False)
        pd.wait_log(r"ldap: using state file %s \((\d+) entries" % re.escape(state))
        pd.wait_refresh()
        self.assertEqual(pd.rcpt("idle@example.com"), "DUNNO")
        self.assertEqual(pd.rcpt("late@example.com"), "DUNNO")
        self.assertEqual(code_of(pd.rcpt("bob@example.com")), "550 5.1.1")
        self.assertEqual(code_of(pd.rcpt("gone@example.com")), "550 5.1.6")
        # slapd down at start: the daemon answers from the state file at once (not 451),
        # then catches up with the change it missed once slapd is back.
        pd.stop()
        self.ldap.replace(self.dn("idle@example.com"), "xproxyStatus", "inactive")
        self.ldap.stop()
        pd.start(wait=False)
        pd.wait_log(r"ldap: using state file")
        wait_action(pd.port, "late@example.com", "DUNNO", 2)
        self.assertEqual(code_of(pd.rcpt("nobody@example.com")), "550 5.1.1")
        self.assertEqual(pd.rcpt("idle@example.com"), "DUNNO")  # as of the state file
        self.ldap.start()
        wait_action(pd.port, "idle@example.com", "450 4.2.1", 10)

    # ------------------------------------------------------------------ acceptance 6

    def test_bad_entries_logged_and_skipped(self):
        self.start_ldap(tree="""domain example.com
user alice@example.com alias=a.smith
user bob@example.com
""")
        s = self.ldap.suffix
        d = domain_dn(s, "example.com")
        bad = {
            "uid=noaddr," + d: "mail: not-an-address",
            "uid=dup," + d: "mail: dup@example.com\nxproxyAlias: a.smith@example.com",
            "uid=sleepy," + d: "mail: sleepy@example.com\nxproxyStatus: sleeping",
            "uid=twice," + d: "mail: alice@example.com",
        }
        ldif = "".join("dn: %s\nobjectClass: inetOrgPerson\nobjectClass: xproxyUser\nuid: %s\ncn: x\nsn: x\n%s\n\n"
                       % (dn, dn.split(",")[0][4:], attrs) for dn, attrs in bad.items())
        bad_domain = "ou=bad,ou=domains," + s
        bad_mta = "cn=broken,ou=mtas," + s
        ldif += ("dn: %s\nobjectClass: organizationalUnit\nobjectClass: xproxyDomain\nou: bad\n"
                 "xproxyDomainName: bad domain!\n\n" % bad_domain)
        ldif += "dn: %s\nobjectClass: xproxyMta\ncn: broken\nxproxyDestination: somewhere\n\n" % bad_mta
        self.ldap.add(ldif)
        pd = LdapPolicyd(self.sandbox, self.procs, self.ldap)
        m = pd.wait_refresh()
        text = pd.text()
        skipped = set(re.findall(r"ldap: skipped (.+?): \S", text))
        for dn in ("uid=noaddr," + d, "uid=sleepy," + d, bad_domain, bad_mta):
            self.assertIn(dn, skipped, text)
        # the duplicate alias, the duplicate address: one entry of each pair goes
        alice = user_dn(s, "alice@example.com")
        self.assertTrue({"uid=dup," + d, alice} & skipped, text)
        self.assertTrue({"uid=twice," + d, alice} & skipped, text)
        self.assertNotIn(self.dn("bob@example.com"), skipped)
        self.assertEqual(int(m.group(5)), len(skipped), m.group(0))
        # The rest of the directory works.
        self.assertEqual(pd.rcpt("bob@example.com"), "DUNNO")
        self.assertEqual(pd.rcpt("a.smith@example.com"), "DUNNO")
        self.assertEqual(code_of(pd.rcpt("nobody@example.com")), "550 5.1.1")
        # A live change that breaks an entry: logged with its DN, the rest unaffected;
        # repaired, the entry is back.
        mark = len(read_text(pd.log))
        self.ldap.replace(self.dn("bob@example.com"), "xproxyStatus", "bogus")
        pd.wait_log(r"ldap: skipped %s: .*bogus" % re.escape(self.dn("bob@example.com")), 5, mark)
        self.ldap.replace(self.dn("bob@example.com"), "xproxyStatus", "inactive")
        wait_action(pd.port, "bob@example.com", "450 4.2.1", 2)
        self.assertEqual(pd.rcpt("alice@example.com"), "DUNNO")
        self.assertIsNone(pd.proc.poll())

    # ------------------------------------------------------------------ mapping

    def test_sun_messaging_tree_with_documented_mapping(self):
        self.ldap = Slapd(self.sandbox, self.procs, suffix="o=isp", schemas=(sun_test_schema(self.sandbox),)).start()
        dom = "o=example.com,o=isp"

        def user(uid, mail, *extra):
            return ("dn: uid=%s,ou=People,%s\nobjectClass: inetOrgPerson\nobjectClass: inetUser\n"
                    "objectClass: inetMailUser\nuid: %s\ncn: %s\nsn: %s\nmail: %s\n%s\n"
                    % (uid, dom, uid, uid, uid, mail, "".join(e + "\n" for e in extra)))
        self.ldap.add("dn: o=isp\nobjectClass: organization\no: isp\n\n"
                      "dn: %s\nobjectClass: organization\nobjectClass: inetDomain\nobjectClass: mailDomain\n"
                      "o: example.com\nsunPreferredDomain: example.com\ninetDomainStatus: active\n"
                      "mailDomainStatus: active\n\n"
                      "dn: ou=People,%s\nobjectClass: organizationalUnit\nou: People\n\n" % (dom, dom) +
                      user("alice", "alice@example.com", "mailAlternateAddress: a.smith@example.com",
                           "inetUserStatus: active", "mailUserStatus: active", "mailHost: mta1.example.net") +
                      user("held", "held@example.com", "inetUserStatus: active", "mailUserStatus: hold") +
                      user("off", "off@example.com", "inetUserStatus: inactive", "mailUserStatus: active") +
                      user("purged", "purged@example.com", "mailUserStatus: removed") +
                      "dn: o=other.example,o=isp\nobjectClass: organization\nobjectClass: inetDomain\n"
                      "objectClass: mailDomain\no: other.example\nsunPreferredDomain: other.example\n"
                      "inetDomainStatus: active\nmailDomainStatus: inactive\n\n")
        # The mapping of packaging/examples/ldap-directory.conf, uncommented.
        with open(os.path.join(SOURCE_DIR, "packaging", "examples", "ldap-directory.conf")) as f:
            mapping = dict(re.match(r"#(\w+)\s*=\s*([^#]*?)\s*(#.*)?$", l).groups()[:2] for l in f
                           if re.match(r"#(domain|user)_\w+\s*=", l))
        self.assertEqual(mapping["user_status_attributes"], "inetUserStatus, mailUserStatus")
        self.assertEqual(mapping["domain_name_attribute"], "sunPreferredDomain")
        settings = ldap_settings(self.sandbox, self.ldap, "policyd", **mapping)
        pd = LdapPolicyd(self.sandbox, self.procs, self.ldap, settings=settings)
        m = pd.wait_refresh()
        self.assertEqual(m.group(5), "0", m.group(0))
        rows = {"alice@example.com": "DUNNO", "a.smith@example.com": "DUNNO", "held@example.com": "HOLD",
                "off@example.com": "450 4.2.1", "purged@example.com": "550 5.1.6",
                "nobody@example.com": "550 5.1.1", "x@other.example": "450 4.2.1"}
        self.assertEqual({r: code_of(pd.rcpt(r)) for r in rows}, rows)

    # ------------------------------------------------------------------ TLS, SASL EXTERNAL

    def test_start_tls_ldaps_and_sasl_external(self):
        pki = TestPki(self.sandbox)
        crt, key = pki.issue("ldap", ips=["127.0.0.1"])
        peer = "^gidnumber=[0-9]+.uidnumber=%d,cn=peercred,cn=external,cn=auth$" % os.geteuid()
        # Anonymous clients read nothing: a daemon that reads the tree has bound.
        self.start_ldap(tls=(crt, key, pki.ca), ldapi=True,
                        global_conf='authz-regexp "%s" "cn=admin,dc=example,dc=com"\n' % peer,
                        extra_conf="access to * by users read by * none\n")
        cases = [  # (name, URL, settings, loads)
            ("starttls", ldap_url(self.ldap), dict(start_tls="yes", tls_ca_file=pki.ca), True),
            ("ldaps", ldap_url(self.ldap, self.ldap.ldaps_url), dict(tls_ca_file=pki.ca), True),
            ("external", ldap_url(self.ldap, self.ldap.ldapi_url), dict(bind_dn=None, bind_pw_file=None,
                                                                        sasl_mech="EXTERNAL"), True),
            # a server certificate that does not verify: never loaded, 451
            ("wrong-ca", ldap_url(self.ldap, self.ldap.ldaps_url), dict(tls_ca_file=TestPki(self.sandbox, "ca2").ca),
             False),
            ("starttls-wrong-ca", ldap_url(self.ldap), dict(start_tls="yes", tls_ca_file=self.sandbox.path("ca2.crt")),
             False),
        ]
        daemons = []
        for name, url, keys, _ in cases:
            settings = ldap_settings(self.sandbox, self.ldap, name, **keys)
            daemons.append(LdapPolicyd(self.sandbox, self.procs, self.ldap, name=name, settings=settings, url=url,
                                       wait=False))
        for (name, _, _, loads), pd in zip(cases, daemons):
            if loads:
                m = pd.wait_refresh()
                self.assertEqual(m.group(3), "15", "%s: %s" % (name, m.group(0)))
                self.assertEqual(code_of(pd.rcpt("idle@example.com")), "450 4.2.1", name)
        for (name, _, _, loads), pd in zip(cases, daemons):
            if not loads:
                pd.wait_log(r"ldap: connection lost: ", 10)
                self.assertNotIn("ldap: connected", pd.text(), name)
                self.assertEqual(code_of(pd.rcpt("alice@example.com")), "451 4.3.0", name)
        self.assertFalse(any(self.ldap.rootpw in pd.text() for pd in daemons), "password in a log")

    # ------------------------------------------------------------------ start-up errors

    def test_startup_errors(self):
        ldap = Slapd(self.sandbox, self.procs)  # configured, not started: nothing connects
        good = ldap_settings(self.sandbox, ldap, "good")

        def run(url, settings_text=None, settings=None):
            if settings_text is not None:
                settings = self.sandbox.write("bad.conf", settings_text, mode=0o600)
            argv = [binary("policyd/xproxy-policyd"), "--listen", "inet:127.0.0.1:%d" % free_port(),
                    "--policy", "vdomains", "--directory", url, "--ldap-config", settings or good]
            r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
            return r.returncode, r.stderr

        base = "ldap://127.0.0.1:%d/" % ldap.port
        rc, err = run(base)
        self.assertNotEqual(rc, 0)
        self.assertRegex(err, r"(?i)base")
        rc, err = run(base + "dc=example,dc=com", "bind_dn = cn=x\nbind_dnn = cn=y\n")
        self.assertNotEqual(rc, 0)
        self.assertRegex(err, r"(:2:|line 2).*bind_dnn")
        pw = self.sandbox.write("readable.secret", "secret\n", mode=0o644)
        rc, err = run(base + "dc=example,dc=com", "bind_dn = cn=x\nbind_pw_file = %s\n" % pw)
        self.assertNotEqual(rc, 0)
        self.assertIn("readable.secret", err)
        # The directory would travel in clear to another host: refused without start_tls.
        rc, err = run("ldap://192.0.2.1/dc=example,dc=com", "timeout = 1\n")
        self.assertNotEqual(rc, 0)
        self.assertRegex(err, r"(?i)start_tls")


if __name__ == "__main__":
    main()
