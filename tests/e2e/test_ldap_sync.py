"""The LDAP directory backend's sync (common/ldap, LdapDirectorySync) against a real OpenLDAP
slapd with the syncprov overlay, started on loopback from the test's own directory and
stopped by PID. tests/ldap_sync_cli runs the sync and answers lookups from the directory
it publishes: initial load; add, modify, rename and delete visible within one second;
entries with a bad address, a duplicate alias or an unknown status skipped with their DN
logged while the rest works; slapd stopped -> the last directory stays, status
disconnected; slapd back -> reconnect and catch up; a restart with the state file serves
at once, before any connection, and receives only the changes; simple bind with the
password from a 0600 file (a world-readable one refused); SASL EXTERNAL over ldapi;
StartTLS and ldaps:// verified against a test CA (a wrong CA refused)."""

import os
import queue
import re
import socket
import subprocess
import threading
import time

from harness import E2ETestCase, binary, free_port, main, wait_for_log, wait_for_port, wait_until

SUFFIX = "dc=example,dc=com"
ROOTDN = "cn=admin," + SUFFIX
ROOTPW = "s3cret-test-only"
# The engine's answer while the directory was never loaded (doc/directory.md).
NOT_LOADED = "action=451 4.3.0 Directory not available, try again later"

# The attributes and classes of the xproxy schema the sync reads (a private OID arc: this
# slapd serves the test only).
TEST_SCHEMA = """
objectidentifier t 1.3.6.1.4.1.99999.77
attributetype ( t:1 NAME 'xproxyDomainName' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( t:2 NAME 'xproxyStatus' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( t:3 NAME 'xproxyServices' EQUALITY caseIgnoreIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 )
attributetype ( t:4 NAME 'xproxyRequireTLS' EQUALITY booleanMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.7 SINGLE-VALUE )
attributetype ( t:5 NAME 'xproxyAdmin' EQUALITY caseIgnoreIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 SINGLE-VALUE )
attributetype ( t:6 NAME 'xproxyPostmaster' EQUALITY caseIgnoreIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 SINGLE-VALUE )
attributetype ( t:7 NAME 'xproxyHome' EQUALITY caseIgnoreIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 SINGLE-VALUE )
attributetype ( t:8 NAME 'xproxyAlias' EQUALITY caseIgnoreIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 )
attributetype ( t:9 NAME 'xproxyLogin' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
attributetype ( t:10 NAME 'xproxyCertFingerprint' EQUALITY caseIgnoreIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 )
attributetype ( t:11 NAME 'xproxyDestination' EQUALITY caseIgnoreIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 SINGLE-VALUE )
attributetype ( t:12 NAME 'xproxyEncoding' EQUALITY caseIgnoreIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 SINGLE-VALUE )
attributetype ( t:13 NAME 'xproxyTLS' EQUALITY caseIgnoreIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 SINGLE-VALUE )
attributetype ( t:14 NAME 'xproxyTLSName' EQUALITY caseIgnoreIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 SINGLE-VALUE )
objectclass ( t:20 NAME 'xproxyDomain' AUXILIARY MUST xproxyDomainName
  MAY ( xproxyStatus $ xproxyServices $ xproxyRequireTLS $ xproxyAdmin $ xproxyPostmaster $ xproxyHome ) )
objectclass ( t:21 NAME 'xproxyUser' AUXILIARY MUST mail
  MAY ( xproxyStatus $ xproxyAlias $ xproxyLogin $ xproxyCertFingerprint $ xproxyHome ) )
objectclass ( t:22 NAME 'xproxyMta' STRUCTURAL MUST ( cn $ xproxyDestination )
  MAY ( xproxyEncoding $ xproxyTLS $ xproxyTLSName ) )
"""

SEED = """dn: dc=example,dc=com
objectClass: dcObject
objectClass: organization
dc: example
o: example

dn: ou=domains,dc=example,dc=com
objectClass: organizationalUnit
ou: domains

dn: ou=example.com,ou=domains,dc=example,dc=com
objectClass: organizationalUnit
objectClass: xproxyDomain
ou: example.com
xproxyDomainName: example.com
xproxyHome: mta1

dn: uid=alice,ou=example.com,ou=domains,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: xproxyUser
uid: alice
cn: Alice
sn: A
mail: alice@example.com
xproxyAlias: a.smith@example.com
xproxyLogin: alice

dn: uid=bob,ou=example.com,ou=domains,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: xproxyUser
uid: bob
cn: Bob
sn: B
mail: bob@example.com

dn: cn=mta1,dc=example,dc=com
objectClass: xproxyMta
cn: mta1
xproxyDestination: 127.0.0.1:2525,[::1]:2525
"""


def user_ldif(uid, mail, domain="example.com", extra=""):
    return ("dn: uid=%s,ou=%s,ou=domains,%s\nobjectClass: inetOrgPerson\nobjectClass: xproxyUser\n"
            "uid: %s\ncn: %s\nsn: x\nmail: %s\n%s\n" % (uid, domain, SUFFIX, uid, uid, mail, extra))


def user_dn(uid, domain="example.com"):
    return "uid=%s,ou=%s,ou=domains,%s" % (uid, domain, SUFFIX)


class TestSlapd:
    """slapd with syncprov on 127.0.0.1 (and optionally an ldapi socket and TLS), from the
    sandbox's slapd/ directory; started as its own process, stopped by PID."""

    def __init__(self, sandbox, procs, ldapi=False, tls=None, extra_conf=""):
        self.sandbox, self.procs = sandbox, procs
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.url = "ldap://127.0.0.1:%d" % self.port
        root = sandbox.mkdir("slapd")
        sandbox.mkdir("slapd", "db", mode=0o700)
        sandbox.mkdir("slapd", "run", mode=0o755)
        schema = sandbox.write("slapd/xproxy-test.schema", TEST_SCHEMA)
        self.socket = sandbox.path("slapd", "run", "ldapi")
        self.log = sandbox.path("slapd", "slapd.log")
        sandbox.logs.append(self.log)
        conf = "".join("include /etc/ldap/schema/%s.schema\n" % s for s in ("core", "cosine", "nis", "inetorgperson"))
        conf += "include %s\npidfile %s/run/slapd.pid\nargsfile %s/run/slapd.args\n" % (schema, root, root)
        conf += "modulepath /usr/lib/ldap\nmoduleload back_mdb\nmoduleload syncprov\n"
        if tls:
            conf += "TLSCACertificateFile %s\nTLSCertificateFile %s\nTLSCertificateKeyFile %s\n" % tls
        conf += extra_conf
        conf += ("database mdb\nmaxsize 104857600\nsuffix \"%s\"\nrootdn \"%s\"\nrootpw %s\ndirectory %s/db\n"
                 "index objectClass,entryCSN,entryUUID,mail,uid eq\n"
                 "limits * size=unlimited time=unlimited\noverlay syncprov\nsyncprov-checkpoint 100 1\n"
                 % (SUFFIX, ROOTDN, ROOTPW, root))
        self.conf = sandbox.write("slapd/slapd.conf", conf, mode=0o640)
        self.urls = [self.url + "/"]
        if ldapi:
            self.urls.append("ldapi://" + self.socket.replace("/", "%2F") + "/")
        if tls:
            self.urls.append("ldaps://localhost:%d/" % self.tls_port)
        subprocess.run(["chown", "-R", "openldap:openldap", root], check=True)
        subprocess.run(["slaptest", "-u", "-f", self.conf], check=True, capture_output=True)
        self.proc = None

    def start(self):
        with open(self.log, "ab") as out:
            self.proc = self.procs.start("slapd", ["/usr/sbin/slapd", "-d", "0", "-h", " ".join(self.urls), "-f",
                                                   self.conf, "-u", "openldap", "-g", "openldap"], stdout=out)
        wait_until(lambda: self.tool("ldapsearch", "-s", "base", "-b", "", "1.1", check=False).returncode == 0,
                   20, 0.05, "slapd on " + self.url)
        return self

    def stop(self):
        if self.proc is not None:
            self.procs.stop(self.proc)
            self.proc = None

    def tool(self, name, *args, stdin=None, check=True):
        r = subprocess.run([name, "-x", "-H", self.url, "-D", ROOTDN, "-w", ROOTPW] + list(args), input=stdin,
                           capture_output=True, text=True, timeout=30)
        if check and r.returncode != 0:
            raise AssertionError("%s: %s" % (name, r.stderr))
        return r

    def add(self, ldif):
        self.tool("ldapadd", stdin=ldif)

    def modify(self, dn, attribute, *values):
        ldif = "dn: %s\nchangetype: modify\nreplace: %s\n%s" % (dn, attribute, "".join("%s: %s\n" % (attribute, v)
                                                                                       for v in values))
        self.tool("ldapmodify", stdin=ldif)


class SyncCli:
    """tests/ldap_sync_cli: the sync under test, asked over a pipe."""

    def __init__(self, test, url, settings=None):
        argv = [binary("tests/ldap_sync_cli"), url]
        if settings is not None:
            argv.append(test.sandbox.write("ldap.conf", settings))
        self.logfile = test.sandbox.path("sync.log")
        test.sandbox.logs.append(self.logfile)
        with open(self.logfile, "ab") as err:
            self.proc = test.procs.start("ldap_sync_cli", argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=err)
        self.answers = queue.Queue()
        self.logs = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        with open(self.logfile, "a") as keep:
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                if line.startswith("log "):
                    keep.write(line + "\n")
                    keep.flush()
                    with self.lock:
                        self.logs.append(line[4:])
                else:
                    self.answers.put(line)

    def ask(self, command):
        self.proc.stdin.write((command + "\n").encode())
        self.proc.stdin.flush()
        return self.answers.get(timeout=10)

    def status(self):
        return dict(kv.split("=", 1) for kv in self.ask("status").split()[1:])

    def wait_answer(self, command, want, timeout=5.0):
        """Polls until the answer matches `want` (a regex); the seconds it took."""
        start = time.monotonic()
        wait_until(lambda: re.fullmatch(want, self.ask(command)), timeout, 0.01, "%s -> %s" % (command, want))
        return time.monotonic() - start

    def wait_log(self, regex, timeout=10.0):
        def found():
            with self.lock:
                return next((l for l in self.logs if re.search(regex, l)), None)
        return wait_until(found, timeout, 0.02, "log line %s" % regex)

    def log_text(self):
        with self.lock:
            return "\n".join(self.logs)

    def quit(self):
        self.proc.stdin.write(b"quit\n")
        self.proc.stdin.close()
        self.proc.wait(10)
        self.proc.stdout.close()


class LdapSyncTest(E2ETestCase):
    def settings(self, extra=""):
        pw = self.sandbox.write("ldap.secret", ROOTPW + "\n", mode=0o600)
        return "bind_dn = %s\nbind_pw_file = %s\n%s" % (ROOTDN, pw, extra)

    def test_load_changes_bad_entries(self):
        ldap = TestSlapd(self.sandbox, self.procs).start()
        ldap.add(SEED)
        cli = SyncCli(self, ldap.url + "/" + SUFFIX, self.settings())
        cli.wait_log(r"^info ldap: connected to ldap://127\.0\.0\.1:\d+/dc=example,dc=com, refresh: 4 entries "
                     r"\(1 domains, 2 users, 1 mtas, 0 skipped\)")
        self.assertEqual(cli.ask("user ALICE@example.com"), "user ALICE@example.com active mta1")
        self.assertEqual(cli.ask("user a.smith@example.com"), "user a.smith@example.com active mta1")
        self.assertEqual(cli.ask("mta mta1"), "mta mta1 127.0.0.1:2525,[::1]:2525")
        self.assertEqual(cli.ask("user carol@example.com"), "user carol@example.com unknown")

        seen = {}
        ldap.add(user_ldif("carol", "carol@example.com"))
        seen["add"] = cli.wait_answer("user carol@example.com", r"user carol@example.com active mta1")
        ldap.modify(user_dn("carol"), "xproxyStatus", "disabled")
        seen["modify"] = cli.wait_answer("user carol@example.com", r"user carol@example.com disabled mta1")
        ldap.tool("ldapmodrdn", "-r", user_dn("carol"), "uid=carol2")
        cli.wait_log(r"ldap: change: modify uid=carol2,ou=example.com")
        self.assertEqual(cli.ask("user carol@example.com"), "user carol@example.com disabled mta1")
        ldap.modify(user_dn("carol2"), "mail", "caroline@example.com")
        seen["rename"] = cli.wait_answer("user caroline@example.com", r"user caroline@example.com disabled mta1")
        self.assertEqual(cli.ask("user carol@example.com"), "user carol@example.com unknown")
        ldap.tool("ldapdelete", user_dn("carol2"))
        seen["delete"] = cli.wait_answer("user caroline@example.com", r"user caroline@example.com unknown")
        print("visible after: " + ", ".join("%s %.0f ms" % (k, v * 1000) for k, v in seen.items()))
        for what, secs in seen.items():
            self.assertLess(secs, 1.0, what)

        # Bad entries: skipped with their DN, the rest works.
        ldap.add(user_ldif("bad1", "not-an-address") + "\n" +
                 user_ldif("bad2", "dup@example.com", extra="xproxyAlias: a.smith@example.com") + "\n" +
                 user_ldif("bad3", "st@example.com", extra="xproxyStatus: actve") + "\n" +
                 user_ldif("good", "good@example.com"))
        cli.wait_answer("user good@example.com", r"user good@example.com active mta1")
        cli.wait_log(r"^warning ldap: skipped uid=bad1,ou=example.com,ou=domains,dc=example,dc=com: mail: "
                     r"'not-an-address' is not local@domain")
        cli.wait_log(r"^warning ldap: skipped uid=bad2,.*: alias a.smith@example.com is already defined")
        cli.wait_log(r"^warning ldap: skipped uid=bad3,.*: xproxyStatus: unknown state 'actve'")
        self.assertEqual(cli.ask("user a.smith@example.com"), "user a.smith@example.com active mta1")
        self.assertEqual(cli.ask("user dup@example.com"), "user dup@example.com unknown")
        st = cli.status()
        self.assertEqual((st["connected"], st["users"], st["skipped"]), ("1", "3", "3"))
        # Each bad entry is reported once, not at every rebuild.
        ldap.modify(user_dn("bob"), "xproxyStatus", "deleted")
        cli.wait_answer("user bob@example.com", r"user bob@example.com deleted mta1")
        self.assertEqual(len(re.findall(r"skipped uid=bad1,", cli.log_text())), 1)
        cli.quit()

    def test_server_down_restart_and_state_file(self):
        ldap = TestSlapd(self.sandbox, self.procs).start()
        ldap.add(SEED)
        state = self.sandbox.path("sync.state")
        settings = self.settings("state_file = %s\nreconnect_max = 2\n" % state)
        cli = SyncCli(self, ldap.url + "/" + SUFFIX, settings)
        cli.wait_log(r"ldap: connected to .*refresh: 4 entries")
        self.assertEqual(os.stat(state).st_mode & 0o777, 0o600)

        # Server gone: the directory stays, the status says disconnected.
        ldap.stop()
        cli.wait_log(r"^warning ldap: connection lost: .*; reconnecting in 1 s")
        wait_until(lambda: cli.status()["connected"] == "0", 5, 0.05, "status disconnected")
        self.assertEqual(cli.ask("user alice@example.com"), "user alice@example.com active mta1")
        # Back: reconnects (backoff at most reconnect_max = 2 s) and follows changes again.
        ldap.start()
        wait_until(lambda: cli.status()["connected"] == "1", 10, 0.05, "reconnected")
        ldap.add(user_ldif("dave", "dave@example.com"))
        cli.wait_answer("user dave@example.com", r"user dave@example.com active mta1")
        cli.quit()

        # Changes while no sync runs, then a restart from the state file while the server
        # is down: the saved directory is served at once.
        ldap.modify(user_dn("alice"), "xproxyStatus", "hold")
        ldap.tool("ldapdelete", user_dn("bob"))
        ldap.stop()
        cli2 = SyncCli(self, ldap.url + "/" + SUFFIX, settings)
        cli2.wait_log(r"^info ldap: using state file .*sync\.state \(5 entries, cookie rid=")
        st = cli2.status()
        self.assertEqual((st["loaded"], st["from_state"], st["connected"]), ("1", "1", "0"))
        self.assertEqual(cli2.ask("user dave@example.com"), "user dave@example.com active mta1")
        self.assertEqual(cli2.ask("user bob@example.com"), "user bob@example.com active mta1")
        # The server back: only the changes arrive.
        ldap.start()
        cli2.wait_log(r"ldap: connected to .*refresh: 4 entries \(1 domains, 2 users, 1 mtas, 0 skipped\) in \d+ ms, "
                      r"1 changed entries received")
        self.assertEqual(cli2.ask("user alice@example.com"), "user alice@example.com hold mta1")
        self.assertEqual(cli2.ask("user bob@example.com"), "user bob@example.com unknown")
        cli2.quit()

        # A damaged state file: logged, full refresh, no failure.
        with open(state, "r+b") as f:
            f.seek(40)
            f.write(b"\x00garbage")
        cli3 = SyncCli(self, ldap.url + "/" + SUFFIX, settings)
        cli3.wait_log(r"^warning ldap: ignoring the state file .*: full refresh")
        cli3.wait_log(r"ldap: connected to .*refresh: 4 entries .* 4 changed entries received")
        cli3.quit()

    def test_not_loaded_until_first_refresh_and_password_file(self):
        ldap = TestSlapd(self.sandbox, self.procs).start()
        ldap.add(SEED)
        # A world-readable password file is refused: nothing is loaded, lookups say so.
        pw = self.sandbox.write("open.secret", ROOTPW, mode=0o644)
        cli = SyncCli(self, ldap.url + "/" + SUFFIX,
                      "bind_dn = %s\nbind_pw_file = %s\nreconnect_max = 1\n" % (ROOTDN, pw))
        cli.wait_log(r"^warning ldap: connection lost: bind password: .*open\.secret")
        self.assertEqual(cli.ask("user alice@example.com"), "notloaded")
        self.assertEqual(cli.status()["loaded"], "0")
        os.chmod(pw, 0o640)  # group-readable is accepted; read again at the next attempt
        cli.wait_log(r"ldap: connected to ")
        self.assertEqual(cli.ask("user alice@example.com"), "user alice@example.com active mta1")
        cli.quit()
        # A wrong password: the bind DN and the server's reason in the log, never the password.
        bad = self.sandbox.write("bad.secret", "wrong-password\n", mode=0o600)
        cli2 = SyncCli(self, ldap.url + "/" + SUFFIX, "bind_dn = %s\nbind_pw_file = %s\n" % (ROOTDN, bad))
        cli2.wait_log(r"connection lost: bind as cn=admin,dc=example,dc=com: Invalid credentials")
        self.assertNotIn("wrong-password", cli2.log_text())
        cli2.quit()

    def test_sasl_external_over_ldapi(self):
        # Only the peer credentials' identity may read; anonymous reads nothing.
        conf = "authz-regexp \"gidNumber=%d.uidNumber=%d,cn=peercred,cn=external,cn=auth\" \"%s\"\n" % (
            os.getegid(), os.geteuid(), ROOTDN)
        ldap = TestSlapd(self.sandbox, self.procs, ldapi=True, extra_conf=conf)
        with open(ldap.conf, "a") as f:
            f.write("access to * by dn.exact=\"%s\" read by * none\n" % ROOTDN)
        ldap.start()
        ldap.add(SEED)
        url = "ldapi://" + ldap.socket.replace("/", "%2F") + "/" + SUFFIX
        cli = SyncCli(self, url, "sasl_mech = EXTERNAL\n")
        cli.wait_log(r"ldap: connected to ldapi://.*refresh: 4 entries")
        self.assertEqual(cli.ask("user alice@example.com"), "user alice@example.com active mta1")
        cli.quit()
        # Anonymous over the same socket may not read the base: the entries came by the
        # EXTERNAL bind; and a search the server refuses loads nothing.
        anon = SyncCli(self, url)
        anon.wait_log(r"connection lost: the server ended the sync: No such object")
        self.assertEqual(anon.ask("user alice@example.com"), "notloaded")
        anon.quit()

    def make_ca(self):
        d = self.sandbox.mkdir("pki")
        run = lambda *a: subprocess.run(a, cwd=d, check=True, capture_output=True)
        for ca in ("ca", "otherca"):
            run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", ca + ".key", "-out", ca + ".pem", "-days", "2", "-subj", "/CN=xproxy test " + ca)
        run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
        # libldap checks a URL host "localhost" against the name the peer address resolves to
        # (ldap_host_connected_to): list this machine's names for 127.0.0.1 too, never the
        # address itself (a URL naming 127.0.0.1 must fail the check).
        names = {"localhost", socket.gethostname(), socket.getfqdn()}
        try:
            names.add(socket.gethostbyaddr("127.0.0.1")[0])
        except OSError:
            pass
        self.sandbox.write("pki/ext.cnf", "subjectAltName=" + ",".join("DNS:" + n for n in sorted(names)) + "\n")
        run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
        subprocess.run(["chown", "openldap", os.path.join(d, "server.key")], check=True)
        return d

    def test_start_tls_and_ldaps_verify_the_server(self):
        pki = self.make_ca()
        ldap = TestSlapd(self.sandbox, self.procs, tls=(os.path.join(pki, "ca.pem"), os.path.join(pki, "server.pem"),
                                                        os.path.join(pki, "server.key"))).start()
        ldap.add(SEED)
        ca = "tls_ca_file = %s\n" % os.path.join(pki, "ca.pem")
        starttls = SyncCli(self, "ldap://localhost:%d/%s" % (ldap.port, SUFFIX), self.settings("start_tls = yes\n" + ca))
        starttls.wait_log(r"ldap: connected to ldap://localhost:\d+/dc=example,dc=com, refresh: 4 entries")
        starttls.quit()
        ldaps = SyncCli(self, "ldaps://localhost:%d/%s" % (ldap.tls_port, SUFFIX), self.settings(ca))
        ldaps.wait_log(r"ldap: connected to ldaps://localhost:\d+/dc=example,dc=com, refresh: 4 entries")
        ldaps.quit()
        # Another CA: the server's certificate does not verify, nothing is read.
        other = "tls_ca_file = %s\n" % os.path.join(pki, "otherca.pem")
        bad = SyncCli(self, "ldaps://localhost:%d/%s" % (ldap.tls_port, SUFFIX), self.settings(other))
        bad.wait_log(r"connection lost: bind as .*: Can't contact LDAP server")
        self.assertEqual(bad.ask("user alice@example.com"), "notloaded")
        bad.quit()
        # The host name is checked: 127.0.0.1 is not in the certificate.
        byip = SyncCli(self, "ldap://127.0.0.1:%d/%s" % (ldap.port, SUFFIX), self.settings("start_tls = yes\n" + ca))
        byip.wait_log(r"connection lost: StartTLS: ")
        byip.quit()


    def policy(self, port, recipient):
        """One RCPT request to xproxy-policyd: its action."""
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(("request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=127.0.0.66\n"
                       "sender=x@remote.example\nrecipient=%s\n\n" % recipient).encode())
            data = b""
            while not data.endswith(b"\n\n"):
                chunk = c.recv(1000)
                if not chunk:
                    break
                data += chunk
        return data.decode().strip()

    def test_policyd_with_ldap_directory(self):
        ldap = TestSlapd(self.sandbox, self.procs)  # not started yet
        state = self.sandbox.path("policyd.ldap")
        conf = self.sandbox.write("policyd-ldap.conf", self.settings("state_file = %s\nreconnect_max = 1\ntimeout = 2\n" % state))
        url = ldap.url + "/" + SUFFIX
        port = free_port()
        log = self.sandbox.path("policyd.log")
        self.sandbox.logs.append(log)
        argv = [binary("policyd/xproxy-policyd"), "--listen", "inet:127.0.0.1:%d" % port, "--allow-peers",
                "127.0.0.1/32", "--log", "stderr", "--policy", "vdomains", "--directory", url, "--ldap-config", conf]
        # --check-config reads the server: a failure while it is down, the counts once up.
        r = subprocess.run(argv + ["--check-config"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("no refresh within", r.stderr)
        with open(log, "ab") as out:
            self.procs.start("policyd", argv, stdout=out)
        wait_for_port("127.0.0.1", port)
        # Never loaded: a tempfail for every address, known or not, never "user unknown".
        for rcpt in ("alice@example.com", "nobody@example.com"):
            self.assertEqual(self.policy(port, rcpt), NOT_LOADED)
        ldap.start()
        ldap.add(SEED)
        wait_for_log(log, r'event=ldap message="ldap: connected to ldap://127\.0\.0\.1:\d+/dc=example,dc=com, '
                          r'refresh: 4 entries', 15)
        self.assertEqual(self.policy(port, "alice@example.com"), "action=DUNNO")
        self.assertEqual(self.policy(port, "nobody@example.com"), "action=550 5.1.1 User unknown in virtual domain")
        ldap.modify(user_dn("alice"), "xproxyStatus", "overquota")
        wait_until(lambda: self.policy(port, "alice@example.com").startswith("action=452 4.2.2"), 2, 0.02,
                   "alice over quota: deferred")
        r = subprocess.run(argv + ["--check-config"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"configuration ok .* directory ldap://127\.0\.0\.1:\d+/dc=example,dc=com "
                                   r"\(connected, 4 entries: 1 domains, 2 users, 1 home MTAs, 0 skipped; cookie rid=")
        # The server gone: the last directory stays in force.
        ldap.stop()
        wait_for_log(log, r"ldap: connection lost", 10)
        self.assertEqual(self.policy(port, "nobody@example.com"), "action=550 5.1.1 User unknown in virtual domain")
        self.assertTrue(self.policy(port, "alice@example.com").startswith("action=452 4.2.2"))


if __name__ == "__main__":
    main()
