"""The slapd test harness and the shipped LDAP schema, alone (no xproxy binary): the
schema loads in both forms (slapd.conf include and cn=config LDIF) with the same
definitions; a tree written by directory_ldif() loads and reads back; a syncrepl
consumer follows its provider (add, modify, modrdn, delete), refuses writes, and catches
up from its cookie after a stop; every slapd started is gone afterwards."""

import os
import re
import subprocess

from harness import (E2ETestCase, SOURCE_DIR, Slapd, directory_ldif, domain_dn, main, pid_alive, user_dn,
                     wait_until)
from xproxyd_helpers import TestPki

SCHEMA = os.path.join(SOURCE_DIR, "packaging", "ldap", "xproxy.schema")
SCHEMA_LDIF = os.path.join(SOURCE_DIR, "packaging", "ldap", "xproxy.ldif")
TREE = """mta mta1.example.net destinations=127.0.0.1:2525,[::1]:2525 encoding=xclient tls=none
domain example.com state=active services=smtp,submission require_tls=yes admin=hostmaster@example.com home=mta1.example.net
user alice@example.com alias=a.smith,sales login=alice cert=AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89
user carol@example.com state=inactive
domain paused.example state=hold services=smtp
"""


def definitions(text, ldif):
    """{oid-or-name: normalized definition} of a schema text in either form."""
    if ldif:
        text = re.sub(r"\n ", "", text)  # unfold
        items = re.findall(r"^olc(ObjectIdentifier|AttributeTypes|ObjectClasses): (.*)$", text, re.M)
    else:
        blocks = re.split(r"\n(?=\S)", re.sub(r"^#.*\n", "", text, flags=re.M))
        kinds = {"objectidentifier": "ObjectIdentifier", "attributetype": "AttributeTypes",
                 "objectclass": "ObjectClasses"}
        items = [(kinds[b.split(None, 1)[0].lower()], b.split(None, 1)[1]) for b in blocks if b.strip()]
    return sorted((k, " ".join(v.split())) for k, v in items)


class LdapHarness(E2ETestCase):
    def test_schema_forms_agree_and_load(self):
        with open(SCHEMA) as f:
            conf_defs = definitions(f.read(), False)
        with open(SCHEMA_LDIF) as f:
            ldif_defs = definitions(f.read(), True)
        self.assertEqual(len(conf_defs), 3 + 14 + 3)
        self.assertEqual(conf_defs, ldif_defs)
        # The cn=config form loads into a cn=config directory made from the standard schemas.
        cfg = self.sandbox.mkdir("cfg", "slapd.d")
        base = self.sandbox.write("cfg/base.conf", "".join(
            "include /etc/ldap/schema/%s.schema\n" % s for s in ("core", "cosine", "nis", "inetorgperson")))
        r = subprocess.run(["slaptest", "-f", base, "-F", cfg], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run(["slapadd", "-n", "0", "-F", cfg, "-l", SCHEMA_LDIF], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run(["slaptest", "-F", cfg], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        loaded = subprocess.run(["grep", "-rl", "xproxyCertFingerprint", cfg], capture_output=True, text=True).stdout
        self.assertIn("cn={4}xproxy.ldif", loaded)

    def test_tree_loads_and_reads_back(self):
        ldap = Slapd(self.sandbox, self.procs).start()
        ldap.add(directory_ldif(ldap.suffix, TREE))
        alice = ldap.search(user_dn(ldap.suffix, "alice@example.com"), "(objectClass=*)", scope="base")
        for line in ("objectClass: xproxyUser", "mail: alice@example.com", "xproxyAlias: a.smith@example.com",
                     "xproxyAlias: sales@example.com", "xproxyLogin: alice"):
            self.assertIn(line, alice)
        dom = ldap.search(domain_dn(ldap.suffix, "example.com"), "(objectClass=*)", scope="base")
        self.assertIn("xproxyRequireTLS: TRUE", dom)
        # Equality is case-insensitive, as xproxy compares names.
        self.assertIn("carol", ldap.search(None, "(mail=CAROL@Example.COM)", "uid"))
        self.assertIn("xproxyDestination: 127.0.0.1:2525,[::1]:2525", ldap.search(None, "(objectClass=xproxyMta)"))
        # The schema refuses what it must: a second status value, a user without mail.
        r = ldap.modify("dn: %s\nchangetype: modify\nadd: xproxyStatus\nxproxyStatus: deleted\n"
                        % user_dn(ldap.suffix, "carol@example.com"), check=False)
        self.assertNotEqual(r.returncode, 0)
        r = ldap.add("dn: uid=x,%s\nobjectClass: inetOrgPerson\nobjectClass: xproxyUser\nuid: x\ncn: x\nsn: x\n"
                     % domain_dn(ldap.suffix, "example.com"), check=False)
        self.assertIn("object class 'xproxyUser' requires attribute 'mail'", r.stderr)
        pid = ldap.pid
        ldap.stop()
        self.assertFalse(pid_alive(pid))

    def test_replication(self):
        prov = Slapd(self.sandbox, self.procs, "prov", server_id=1)
        prov.start()
        prov.add(directory_ldif(prov.suffix, TREE))
        cons = Slapd(self.sandbox, self.procs, "cons", provider=prov, server_id=2).start()
        cons.wait_in_sync(prov)
        carol = user_dn(prov.suffix, "carol@example.com")
        self.assertIn("xproxyStatus: inactive", cons.search(carol, scope="base"))
        prov.replace(carol, "xproxyStatus", "active")
        wait_until(lambda: "xproxyStatus: active" in cons.search(carol, scope="base"), 5, 0.02, "modify replicated")
        # A consumer is read-only.
        r = cons.replace(carol, "xproxyStatus", "deleted", check=False)
        self.assertEqual(r.returncode, 53, r.stderr)
        # Stopped, it misses changes; started again, it catches up from its cookie.
        cons.stop()
        prov.modrdn(carol, "uid=caroline")
        prov.delete(user_dn(prov.suffix, "alice@example.com"))
        prov.add(directory_ldif(prov.suffix, "user dave@example.com state=disabled\n", base=False))
        cons.start()
        cons.wait_in_sync(prov)
        uids = cons.search(domain_dn(prov.suffix, "example.com"), "(objectClass=xproxyUser)", "uid")
        self.assertEqual(sorted(re.findall(r"^uid: (\S+)$", uids, re.M)), ["caroline", "dave"])
        pids = [prov.pid, cons.pid]
        self.procs.stop_all()
        self.assertFalse(any(pid_alive(p) for p in pids))

    def test_tls_and_ldapi(self):
        pki = TestPki(self.sandbox)
        crt, key = pki.issue("ldap", dns=["localhost"], ips=["127.0.0.1"])
        peer = "^gidnumber=[0-9]+.uidnumber=0,cn=peercred,cn=external,cn=auth$"  # root, any group
        ldap = Slapd(self.sandbox, self.procs, tls=(crt, key, pki.ca), ldapi=True,
                     global_conf='authz-regexp "%s" "cn=admin,dc=example,dc=com"\n' % peer).start()
        ldap.add(directory_ldif(ldap.suffix, TREE))
        env = dict(os.environ, LDAPTLS_CACERT=pki.ca, LDAPTLS_REQCERT="demand")

        def search(*args, ca=pki.ca):
            return subprocess.run(["ldapsearch", "-LLL", "-x"] + list(args) + ["-b", ldap.suffix, "(mail=alice@*)",
                                                                              "mail"], capture_output=True, text=True,
                                  env=dict(env, LDAPTLS_CACERT=ca))
        r = search("-ZZ", "-H", ldap.url)  # StartTLS required
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("mail: alice@example.com", r.stdout)
        r = search("-H", ldap.ldaps_url)
        self.assertEqual(r.returncode, 0, r.stderr)
        other = TestPki(self.sandbox, "other-ca")
        r = search("-H", ldap.ldaps_url, ca=other.ca)  # a server the client cannot verify
        self.assertNotEqual(r.returncode, 0)
        r = subprocess.run(["ldapwhoami", "-Y", "EXTERNAL", "-H", ldap.ldapi_url], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("dn:cn=admin,dc=example,dc=com", r.stdout)


if __name__ == "__main__":
    main()
