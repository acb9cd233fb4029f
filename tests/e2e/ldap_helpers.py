"""Pieces shared by the LDAP directory tests: xproxy-policyd reading its directory from a
harness Slapd (--directory ldap://..., --ldap-config), and a direct policy-protocol client."""

import os
import re
import socket
import time

from harness import binary, free_port, read_text, wait_for_log, wait_for_port

# The refresh line the backend logs once the directory is loaded from the server.
REFRESH_RE = r"ldap: connected to \S+, refresh: (\d+) entries \((\d+) domains, (\d+) users, (\d+) mtas, (\d+) skipped\)"


def ldap_url(slapd, base=None):
    """--directory for slapd: its ldap:// URL (or base, e.g. slapd.ldaps_url) + the suffix."""
    return (base or slapd.url) + slapd.suffix


def ldap_settings(sandbox, slapd, name, **keys):
    """Write NAME.ldap.conf binding as slapd's rootdn (password in a 0600 file), short
    timeouts and reconnects for tests; keys override or add settings (None removes one)."""
    pw = sandbox.write(name + ".ldap.secret", slapd.rootpw + "\n", mode=0o600)
    settings = {"bind_dn": slapd.rootdn, "bind_pw_file": pw, "timeout": "2", "reconnect_max": "2"}
    settings.update(keys)
    text = "# test settings\n" + "".join("%s = %s\n" % (k, v) for k, v in settings.items() if v is not None)
    return sandbox.write(name + ".ldap.conf", text, mode=0o600)


class LdapPolicyd:
    """xproxy-policyd on 127.0.0.1:port with its directory in `slapd` (vdomains policy),
    logging to NAME.log. wait=True waits for the first refresh from the server; url: the
    --directory URL (default: slapd's ldap:// URL and suffix)."""

    def __init__(self, sandbox, procs, slapd, name="policyd", port=None, settings=None, policies="vdomains",
                 extra=(), wait=True, url=None):
        self.sandbox, self.procs, self.slapd, self.name = sandbox, procs, slapd, name
        self.port = port or free_port()
        self.settings = settings or ldap_settings(sandbox, slapd, name)
        self.log = sandbox.path(name + ".log")
        if self.log not in sandbox.logs:
            sandbox.logs.append(self.log)
        self.argv = [binary("policyd/xproxy-policyd"), "--listen", "inet:127.0.0.1:%d" % self.port,
                     "--allow-peers", "127.0.0.1/32", "--log", "stderr", "--policy", policies,
                     "--directory", url or ldap_url(slapd), "--ldap-config", self.settings] + list(extra)
        self.proc = None
        self.start(wait)

    def start(self, wait=True):
        self.mark = len(read_text(self.log))
        with open(self.log, "ab") as out:
            self.proc = self.procs.start(self.name, self.argv, stdout=out)
        wait_for_port("127.0.0.1", self.port)
        if wait:
            self.wait_refresh()
        return self

    def stop(self):
        self.procs.stop(self.proc)

    def wait_log(self, regex, timeout=10.0, start=None):
        return wait_for_log(self.log, regex, timeout, self.mark if start is None else start)

    def wait_refresh(self, timeout=20.0, start=None):
        """The refresh line logged since start (default: since this process started)."""
        return self.wait_log(REFRESH_RE, timeout, start)

    def text(self):
        return read_text(self.log)[self.mark:]

    def rcpt(self, recipient, sender="s@sender.example", **attrs):
        return policy_query(self.port, recipient=recipient, sender=sender, **attrs)


def policy_query(port, recipient, sender="s@sender.example", protocol_state="RCPT", client_address="127.0.0.66",
                 timeout=5.0, **attrs):
    """One Postfix policy request straight to the daemon; returns the action text."""
    req = dict(request="smtpd_access_policy", protocol_state=protocol_state, client_address=client_address,
               sender=sender, recipient=recipient, **attrs)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(("".join("%s=%s\n" % kv for kv in req.items()) + "\n").encode())
        data = b""
        while not data.endswith(b"\n\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    m = re.match(r"action=(.*)\n", data.decode("utf-8", "replace"))
    return m.group(1) if m else "(no answer: %r)" % data


def code_of(action):
    """'550 5.1.1 User unknown' -> '550 5.1.1'; DUNNO/HOLD ... -> the first word."""
    parts = action.split()
    if parts and parts[0].isdigit():
        return " ".join(parts[:2])
    return parts[0] if parts else ""


def wait_action(port, recipient, want, timeout, interval=0.02):
    """Poll until the daemon's answer for recipient starts with want; returns the seconds it took."""
    start = time.time()
    last = None
    while time.time() - start < timeout:
        try:
            last = policy_query(port, recipient)
        except OSError as e:
            last = "(%s)" % e
        if last.startswith(want):
            return time.time() - start
        time.sleep(interval)
    raise AssertionError("%s: still %r after %.1f s (want %r)" % (recipient, last, timeout, want))


def sun_test_schema(sandbox):
    """A minimal stand-in for the Sun/Oracle messaging schema (the names a deployed tree
    uses; private OIDs, for tests only: Debian ships no such schema)."""
    arc = "2.25.109897865867769807111124505085487644322.99"
    attrs = ["inetDomainStatus", "mailDomainStatus", "inetUserStatus", "mailUserStatus", "mailAlternateAddress",
             "mailHost", "sunPreferredDomain"]
    text = "".join("attributetype ( %s.1.%d NAME '%s' EQUALITY caseIgnoreIA5Match "
                   "SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 %s)\n"
                   % (arc, i + 1, a, "" if a == "mailAlternateAddress" else "SINGLE-VALUE ")
                   for i, a in enumerate(attrs))
    text += ("objectclass ( %s.2.1 NAME 'inetDomain' SUP top AUXILIARY MAY inetDomainStatus )\n"
             "objectclass ( %s.2.2 NAME 'mailDomain' SUP top AUXILIARY MAY ( mailDomainStatus $ sunPreferredDomain "
             "$ associatedDomain ) )\n"
             "objectclass ( %s.2.3 NAME 'inetUser' SUP top AUXILIARY MAY ( uid $ inetUserStatus ) )\n"
             "objectclass ( %s.2.4 NAME 'inetMailUser' SUP top AUXILIARY MAY ( mail $ mailAlternateAddress $ "
             "mailHost $ mailUserStatus ) )\n" % (arc, arc, arc, arc))
    return sandbox.write("sun-test.schema", text)
