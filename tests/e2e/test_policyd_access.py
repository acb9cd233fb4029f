"""Who may obtain a signature from xproxy-policyd --policy inject. The daemon PREPENDs a
signed header for whatever client_address a request names, so reaching it must mean
being the MTA: by default it listens on a unix socket of group postfix, mode 0660 (a local
user outside the group cannot connect), and a TCP listener serves only the peers in
--allow-peers (any other peer is closed before its request is read; a TCP listener
without a list does not start). The socket's directory must be root's (whoever may rename
entries there could swap the socket for a symlink before root gives it away), and a unix
socket inherited from systemd must not be abstract or open to "other"."""

import grp
import os
import re
import socket
import stat
import subprocess

from harness import (E2ETestCase, Postfix, SmtpSink, binary, free_port, main, read_text, send_mail, wait_for_log,
                     wait_until, wire)
from milter_util import UNIX_WRAPPER, StartRefusals

KEYRING = "k1 hex:00112233445566778899aabbccddeeff\n"
# What a local attacker would send: a DATA-stage request for a client of its choice.
REQUEST = (b"request=smtpd_access_policy\nprotocol_state=DATA\nprotocol_name=ESMTP\n"
           b"client_address=203.0.113.9\nclient_port=4242\nhelo_name=forged.example\n"
           b"sender=a@sender.example\nrecipient=r@rcpt.example\ninstance=1a2b.3c4d.5e6f.0\n\n")

# Runs as another user: sends REQUEST to the unix socket argv[1], prints the answer or the error.
AS_USER = """import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
    s.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin-1"))
    s.settimeout(10)
    print("ANSWER " + s.recv(4000).decode())
except OSError as e:
    print("ERROR %s" % e.__class__.__name__)
"""


def ask(fam, where, source=None):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        if source:
            s.bind((source, 0))
        s.connect(where)
        s.sendall(REQUEST)
        got = b""
        while not got.endswith(b"\n\n"):
            try:
                chunk = s.recv(4000)
            except ConnectionResetError:  # closed with the request unread
                break
            if not chunk:
                break
            got += chunk
        return got
    finally:
        s.close()


class PolicydAccess(StartRefusals, E2ETestCase):
    def setUp(self):
        super().setUp()
        self.ring = self.sandbox.write("keyring", KEYRING, mode=0o600)
        self.log = self.sandbox.path("policyd.log")
        self.sandbox.logs.append(self.log)

    def args(self):
        return ["--log", "stderr", "--policy", "inject", "--keyring", self.ring, "--signer", "gw1.test"]

    def signed(self, answer):
        """The PREPENDed header of an answer verifies and names the requested client."""
        text = answer.decode()
        self.assertTrue(text.startswith("action=PREPEND X-Original-Source: "), text)
        rc, out, err = wire(["trace-verify", "--keyring", self.ring, "--sender", "a@sender.example"],
                            text[len("action=PREPEND "):].strip().encode())
        self.assertEqual(rc, 0, out.decode() + err)
        self.assertIn(b"ip=203.0.113.9", out)

    def test_tcp_peer_outside_allow_list_gets_no_signature(self):
        port = free_port()
        with open(self.log, "wb") as out:
            self.procs.start("policyd", [binary("policyd/xproxy-policyd"), "--listen", "inet:127.0.0.1:%d" % port,
                                         "--allow-peers", "127.0.0.2/32"] + self.args(), stdout=out)
        wait_for_log(self.log, r"event=start .*allow_peers=\"127\.0\.0\.2/32\"", 10)
        self.assertEqual(ask(socket.AF_INET, ("127.0.0.1", port), source="127.0.0.1"), b"")
        wait_for_log(self.log, r"event=peer_refused peer=127\.0\.0\.1:\d+ ", 10)
        self.assertNotIn("event=decision", read_text(self.log))
        self.signed(ask(socket.AF_INET, ("127.0.0.1", port), source="127.0.0.2"))

    def test_tcp_without_allow_list_and_socket_group_and_mode(self):
        port = free_port()
        r = subprocess.run([binary("policyd/xproxy-policyd"), "--listen", "inet:127.0.0.1:%d" % port] + self.args(),
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("would serve nobody: add --allow-peers", r.stderr)
        r = subprocess.run([binary("policyd/xproxy-policyd"), "--listen", "unix:" + self.sandbox.path("p.sock"),
                            "--socket-group", "no-such-group-x", "--check-config"] + self.args(),
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("group 'no-such-group-x' of the socket", r.stderr)
        # The configured group and mode are what the socket gets.
        path = self.sandbox.path("g.sock")
        with open(self.log, "wb") as out:
            self.procs.start("policyd", [binary("policyd/xproxy-policyd"), "--listen", "unix:" + path,
                                         "--socket-group", "daemon", "--socket-mode", "0640"] + self.args(), stdout=out)
        wait_for_log(self.log, r"event=start listeners=1 ", 10)
        st = os.stat(path)
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_gid), (0o640, grp.getgrnam("daemon").gr_gid))

    def test_default_listener_is_a_unix_socket_only_the_mta_group_reaches(self):
        # /run/xproxy/policyd.sock, made to lead into the sandbox by a private mount
        # namespace (tmpfs on /run, the sandbox bound to /run/xproxy).
        run_dir = self.sandbox.mkdir("run")
        script = 'mount -t tmpfs none /run && mkdir /run/xproxy && mount --bind "$0" /run/xproxy && exec "$@"'
        with open(self.log, "wb") as out:
            self.procs.start("policyd", ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, run_dir,
                                         binary("policyd/xproxy-policyd")] + self.args(), stdout=out)
        wait_for_log(self.log, r"event=start listeners=1 ", 10)
        sock = os.path.join(run_dir, "policyd.sock")
        st = os.stat(sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        self.assertEqual(st.st_gid, grp.getgrnam("postfix").gr_gid)

        def as_user(user):
            r = subprocess.run(["runuser", "-u", user, "--", "/usr/bin/python3", "-c", AS_USER, sock,
                                REQUEST.decode().replace("\n", "\\n")], capture_output=True, text=True, timeout=30)
            return r.stdout.strip() + r.stderr
        self.assertEqual(as_user("nobody"), "ERROR PermissionError")
        out = as_user("postfix")
        self.assertTrue(out.startswith("ANSWER "), out)
        self.signed(out[len("ANSWER "):].encode())

    def test_postfix_reaches_the_socket_in_its_queue_directory(self):
        sink = SmtpSink(self.sandbox, self.procs)
        spool = self.sandbox.mkdir("pf", "spool")
        os.makedirs(os.path.join(spool, "xproxy"), exist_ok=True)
        with open(self.log, "wb") as out:
            self.procs.start("policyd", [binary("policyd/xproxy-policyd"), "--listen",
                                         "unix:" + os.path.join(spool, "xproxy", "policyd.sock")] + self.args(),
                             stdout=out)
        wait_for_log(self.log, r"event=start listeners=1 ", 10)
        policy = "check_policy_service { unix:xproxy/policyd.sock, default_action=DUNNO }"
        port = free_port()
        pf = Postfix(self.sandbox, self.procs, "pf", port, relay_port=sink.port, main_cf={
            "smtpd_recipient_restrictions": policy + ", permit_mynetworks, reject_unauth_destination",
            "smtpd_data_restrictions": policy})
        pf.start()
        r = send_mail(port, source="127.0.0.66", sender="a@sender.example", rcpt="x@other.example",
                      body="Subject: via unix\r\n\r\nbody\r\n")
        self.assertTrue(any(t.startswith("250 2.0.0 Ok: queued") for _, t in r), r)
        msg = wait_until(lambda: next((m for m in sink.messages() if "via unix" in m), None), 20, 0.1, "message")
        found = re.search(r"^X-Original-Source:.*(?:\n[ \t].*)*", msg, re.M)
        self.assertTrue(found, msg)  # DUNNO when Postfix cannot reach the socket: no header
        hdr = found.group(0)
        rc, out, err = wire(["trace-verify", "--keyring", self.ring, "--sender", "a@sender.example"], hdr.encode())
        self.assertEqual(rc, 0, out.decode() + err)
        self.assertIn(b"ip=127.0.0.66", out)

    def test_socket_directory_others_may_write_is_refused(self):
        for name, d, words in self.unsafe_socket_dirs():
            with self.subTest(name):
                log = self.refused(name, [binary("policyd/xproxy-policyd"), "--listen",
                                          "unix:" + os.path.join(d, "p.sock")] + self.args())
                self.assertIn("directory %s the socket %s/p.sock %s" % (d, d, words), log)
                self.assertIn("install -d -o root -g postfix -m 0750 " + d, log)
                self.assertFalse(os.path.lexists(os.path.join(d, "p.sock")))
        # The directory the documentation asks for: root:postfix 0750.
        d = self.sandbox.mkdir("safe", mode=0o750)
        os.chown(d, 0, grp.getgrnam("postfix").gr_gid)
        with open(self.log, "wb") as out:
            self.procs.start("policyd", [binary("policyd/xproxy-policyd"), "--listen",
                                         "unix:" + os.path.join(d, "p.sock")] + self.args(), stdout=out)
        wait_for_log(self.log, r"event=start listeners=1 ", 10)
        self.signed(ask(socket.AF_UNIX, os.path.join(d, "p.sock")))

    def test_socket_mode_for_other_users_is_refused(self):
        for mode in ("0666", "0664", "0662"):
            log = self.refused("mode" + mode, [binary("policyd/xproxy-policyd"), "--listen",
                                               "unix:" + self.sandbox.path("m%s.sock" % mode),
                                               "--socket-mode", mode] + self.args())
            self.assertIn("--socket-mode %s gives other users access to the socket" % mode, log)

    def test_inherited_unix_socket_open_to_every_local_user_is_refused(self):
        # As from systemd: ListenStream=@name (abstract: no permissions at all) or a path
        # without SocketMode= (systemd's default is 0666).
        exe = [binary("policyd/xproxy-policyd"), "--listen", "systemd"] + self.args()
        self.assert_open_inherited_sockets_refused(exe, "xproxy-policyd")
        # SocketGroup=postfix, SocketMode=0660, as packaging/systemd/xproxy-policyd.socket.
        path = self.sandbox.path("ok.sock")
        with open(self.log, "wb") as out:
            self.procs.start("ok", ["/usr/bin/python3", "-c", UNIX_WRAPPER, path, "0660"] + exe, stdout=out)
        wait_for_log(self.log, r"event=start listeners=1 ", 10)
        self.signed(ask(socket.AF_UNIX, path))


if __name__ == "__main__":
    main()
