"""xproxy-milter and xproxyd with --directory ldap://... (a private slapd):
  - xproxy-milter behind a real Postfix (smtpd_milters) answers each recipient from the
    directory in slapd, and follows a change made with ldapmodify;
  - xproxyd's submission mode reads users, aliases and home MTAs (xproxyMta entries)
    from slapd: each user's mail lands at the home its LDAP entry names (the directory
    of test_xproxyd_submission.py, written into slapd instead of a file)."""

import unittest

import test_xproxyd_submission as submission
from harness import (E2ETestCase, Postfix, SmtpSink, Slapd, directory_ldif, free_port, main, send_mail, user_dn,
                     wait_for_log, wait_until)
from ldap_helpers import ldap_settings, ldap_url
from milter_util import Milter

TREE = """domain example.com
user alice@example.com alias=a.smith
user idle@example.com state=inactive
domain sleepy.example state=inactive
"""


class LdapMilter(E2ETestCase):
    def test_milter_decisions_from_slapd(self):
        ldap = Slapd(self.sandbox, self.procs).start()
        ldap.add(directory_ldif(ldap.suffix, TREE))
        settings = ldap_settings(self.sandbox, ldap, "milter")
        m = Milter(self.sandbox, self.procs, "milter", "inject",
                   ["--policy", "vdomains", "--directory", ldap_url(ldap), "--ldap-config", settings])
        wait_for_log(m.log, r"ldap: connected to \S+, refresh: \d+ entries", 20)
        sink = SmtpSink(self.sandbox, self.procs)
        port = free_port()
        Postfix(self.sandbox, self.procs, "pf", port, relay_port=sink.port,
                main_cf={"smtpd_milters": m.postfix, "milter_default_action": "tempfail",
                         "non_smtpd_milters": ""}).start()

        def rcpt(address):
            code, text = send_mail(port, source="127.0.0.66", sender="a@sender.example", rcpt=address)[3]
            return code, text.split()[1] if code != 250 else ""  # text: "550 5.1.1 ..."
        rows = {"alice@example.com": (250, ""), "a.smith@example.com": (250, ""),
                "nobody@example.com": (550, "5.1.1"), "idle@example.com": (450, "4.2.1"),
                "x@sleepy.example": (450, "4.2.1"), "x@elsewhere.example": (250, "")}
        self.assertEqual({r: rcpt(r) for r in rows}, rows)
        ldap.replace(user_dn(ldap.suffix, "idle@example.com"), "xproxyStatus", "active")
        wait_until(lambda: rcpt("idle@example.com") == (250, ""), 2, 0.05, "the change at the milter")


class LdapSubmission(submission.Submission):
    """test_xproxyd_submission's scenarios with the directory in slapd."""

    def directory(self, mta_a=None, extra=""):
        path = super().directory(mta_a, extra)
        with open(path) as f:
            text = f.read()
        if not hasattr(self, "ldap"):
            self.ldap = Slapd(self.sandbox, self.procs).start()
            self.ldap.add(directory_ldif(self.ldap.suffix, text))
            self.ldap_settings = ldap_settings(self.sandbox, self.ldap, "xproxyd")
        return ldap_url(self.ldap)

    def xproxyd(self, directory=None, extra=(), **kw):
        directory = directory or self.directory()
        x = super().xproxyd(directory, ["--ldap-config", self.ldap_settings] + list(extra), **kw)
        x.wait_log(r"ldap: connected to \S+, refresh: \d+ entries", 20)
        return x


def load_tests(loader, tests, pattern):
    suite = unittest.TestSuite()
    suite.addTests(loader.loadTestsFromTestCase(LdapMilter))
    for name in ("test_each_user_lands_at_home_with_the_login_and_client_address",
                 "test_refusals_before_tls_before_auth_and_for_a_foreign_sender"):
        suite.addTest(LdapSubmission(name))
    return suite


if __name__ == "__main__":
    main()
