"""Two slapd on loopback, a provider and its syncrepl (refreshAndPersist) consumer, and
two xproxy-policyd, one reading each: a change on the provider reaches both daemons'
decisions within two seconds; the consumer killed, its daemon keeps answering from
memory; the consumer started again catches up from its cookie, and so does its daemon."""

import time

from harness import E2ETestCase, Slapd, directory_ldif, main, user_dn, wait_until
from ldap_helpers import LdapPolicyd, code_of, wait_action

TREE = """domain example.com
user alice@example.com
user bob@example.com state=inactive
user carol@example.com
"""


class LdapReplication(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.prov = Slapd(self.sandbox, self.procs, "provider", server_id=1).start()
        self.prov.add(directory_ldif(self.prov.suffix, TREE))
        self.cons = Slapd(self.sandbox, self.procs, "consumer", provider=self.prov, server_id=2).start()
        self.cons.wait_in_sync(self.prov)
        self.pd_prov = LdapPolicyd(self.sandbox, self.procs, self.prov, name="policyd-provider")
        self.pd_cons = LdapPolicyd(self.sandbox, self.procs, self.cons, name="policyd-consumer")
        self.daemons = (self.pd_prov, self.pd_cons)

    def both(self, rcpt):
        return [code_of(pd.rcpt(rcpt)) for pd in self.daemons]

    def change_reaches_both(self, change, rcpt, want, limit=2.0):
        """Apply change on the provider; seconds until each daemon answers want."""
        change()
        t0 = time.time()
        took = []
        for pd in self.daemons:
            wait_action(pd.port, rcpt, want, limit - (time.time() - t0), interval=0.01)
            took.append(time.time() - t0)
        return took

    def test_change_on_provider_reaches_both_daemons(self):
        self.assertEqual(self.both("alice@example.com"), ["DUNNO", "DUNNO"])
        self.assertEqual(self.both("bob@example.com"), ["450 4.2.1", "450 4.2.1"])
        s = self.prov.suffix
        rows = [
            (lambda: self.prov.replace(user_dn(s, "alice@example.com"), "xproxyStatus", "disabled"),
             "alice@example.com", "550 5.2.1"),
            (lambda: self.prov.replace(user_dn(s, "bob@example.com"), "xproxyStatus", "active"),
             "bob@example.com", "DUNNO"),
            (lambda: self.prov.add(directory_ldif(s, "user dave@example.com\n", base=False)),
             "dave@example.com", "DUNNO"),
            (lambda: self.prov.delete(user_dn(s, "carol@example.com")), "carol@example.com", "550 5.1.1"),
        ]
        worst = 0.0
        for change, rcpt, want in rows:
            took = self.change_reaches_both(change, rcpt, want)
            worst = max(worst, max(took))
        print("\nprovider change -> both daemons: worst %.0f ms" % (worst * 1000))
        self.assertLess(worst, 2.0)

    def test_consumer_down_memory_then_catch_up(self):
        s = self.prov.suffix
        self.cons.stop()
        self.pd_cons.wait_log(r"ldap: connection lost")
        # Changes on the provider while the consumer is down: its daemon answers as before.
        self.prov.replace(user_dn(s, "alice@example.com"), "xproxyStatus", "inactive")
        self.prov.add(directory_ldif(s, "user erin@example.com\n", base=False))
        self.prov.delete(user_dn(s, "carol@example.com"))
        wait_action(self.pd_prov.port, "alice@example.com", "450 4.2.1", 2)
        for _ in range(3):
            self.assertEqual(code_of(self.pd_cons.rcpt("alice@example.com")), "DUNNO")
            self.assertEqual(code_of(self.pd_cons.rcpt("carol@example.com")), "DUNNO")
            self.assertEqual(code_of(self.pd_cons.rcpt("erin@example.com")), "550 5.1.1")
            self.assertEqual(code_of(self.pd_cons.rcpt("bob@example.com")), "450 4.2.1")
            time.sleep(0.5)
        # The consumer comes back: it catches up from its cookie, and its daemon with it.
        t0 = time.time()
        self.cons.start()
        self.cons.wait_in_sync(self.prov)
        t_sync = time.time() - t0
        for rcpt, want in (("alice@example.com", "450 4.2.1"), ("erin@example.com", "DUNNO"),
                           ("carol@example.com", "550 5.1.1")):
            wait_action(self.pd_cons.port, rcpt, want, 10)
        print("\nconsumer restarted -> in sync %.2f s, its daemon caught up %.2f s" % (t_sync, time.time() - t0))
        # And later changes flow through both again.
        took = self.change_reaches_both(lambda: self.prov.replace(user_dn(s, "bob@example.com"), "xproxyStatus",
                                                                  "deleted"), "bob@example.com", "550 5.1.6")
        self.assertLess(max(took), 2.0)
        self.assertIsNone(self.pd_cons.proc.poll())


if __name__ == "__main__":
    main()
