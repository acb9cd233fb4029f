"""Who may obtain a signature from xproxy-milter --mode inject. The milter signs whatever
client the connecting process claims, so reaching it must mean being the MTA: by default
it listens on a unix socket of group postfix, mode 0660 (a local user outside the group
cannot connect), and a TCP listener serves only the peers in --allow-peers (a peer
outside the list is closed before it can negotiate; a TCP listener without a list does
not start). The socket's directory must be root's (whoever may rename entries there could
swap the socket for a symlink before root gives it away), and a unix socket inherited from
systemd must not be abstract or open to "other". The client here is
milter_util.milter_session(), a local process speaking the milter protocol itself."""

import grp
import os
import stat
import subprocess

from harness import E2ETestCase, binary, free_port, main, read_text, wait_until, wire
from milter_util import FD_WRAPPER, KEYRING, UNIX_WRAPPER, Milter, StartRefusals, milter_session

MID = "<m@client.example>"
SENDER = "<a@sender.example>"

# Runs milter_session() as another user: prints the inserted header, or the error.
AS_USER = """import sys
sys.path.insert(0, sys.argv[1])
from milter_util import milter_session
try:
    print("HEADER " + milter_session(sys.argv[2]).get("X-Original-Source", ""))
except OSError as e:
    print("ERROR %s" % e.__class__.__name__)
"""


class MilterAccess(StartRefusals, E2ETestCase):
    def verifies(self, ring, value, ip="198.51.100.7"):
        rc, out, err = wire(["trace-verify", "--keyring", ring, "--sender", SENDER, "--message-id", MID],
                            ("X-Original-Source: " + value).encode())
        return rc == 0 and ("ip=%s" % ip).encode() in out

    def test_tcp_peer_outside_allow_list_gets_no_signature(self):
        m = Milter(self.sandbox, self.procs, "inj", "inject", allow="127.0.0.2/32")
        with self.assertRaises(ConnectionError):
            milter_session(("127.0.0.1", m.port), source="127.0.0.1")
        wait_until(lambda: "event=peer_refused peer=127.0.0.1:" in m.log_text(), 10, 0.1, "peer_refused line")
        self.assertEqual(m.messages(), [])
        # The listed peer is served, and gets a header for the client it names.
        hdrs = milter_session(("127.0.0.1", m.port), source="127.0.0.2")
        self.assertTrue(self.verifies(m.ring, hdrs["X-Original-Source"]), hdrs)
        self.assertIn('allow_peers="127.0.0.2/32"', m.log_text())

    def test_tcp_listener_without_allow_list_does_not_start(self):
        ring = self.sandbox.write("ring", KEYRING, mode=0o600)
        exe = binary("milter/xproxy-milter")
        port = free_port()
        for listen in ("inet:127.0.0.1:%d" % port, "inet6:[::1]:%d" % port):
            with self.subTest(listen):
                r = subprocess.run([exe, "--mode", "inject", "--keyring", ring, "--listen", listen, "--log", "stderr"],
                                   capture_output=True, text=True, timeout=30)
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertIn("would serve nobody: add --allow-peers", r.stderr)
        # The same for a TCP socket handed over by systemd (socket activation).
        r = subprocess.run(["/usr/bin/python3", "-c", FD_WRAPPER, str(port), "systemd", exe, "--mode", "inject",
                            "--keyring", ring, "--listen", "fd:N", "--log", "stderr"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("would serve nobody: add --allow-peers", r.stderr)

    def test_socket_group_and_mode(self):
        ring = self.sandbox.write("ring", KEYRING, mode=0o600)
        r = subprocess.run([binary("milter/xproxy-milter"), "--mode", "inject", "--keyring", ring, "--listen",
                            "unix:" + self.sandbox.path("m.sock"), "--socket-group", "no-such-group-x",
                            "--check-config"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("group 'no-such-group-x' of the socket", r.stderr)
        self.assertIn("--socket-group", r.stderr)
        # The configured group and mode are what the socket gets.
        m = Milter(self.sandbox, self.procs, "grp", "inject", ["--socket-group", "daemon", "--socket-mode", "0640"],
                   unix=True)
        st = os.stat(m.path)
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_gid), (0o640, grp.getgrnam("daemon").gr_gid))

    def test_default_listener_is_a_unix_socket_only_the_mta_group_reaches(self):
        # The default path, /run/xproxy/milter.sock, is made to lead into the sandbox: a
        # private mount namespace with a tmpfs on /run and the sandbox bound to /run/xproxy.
        run_dir = self.sandbox.mkdir("run")
        ring = self.sandbox.write("ring", KEYRING, mode=0o600)
        log = self.sandbox.path("default.log")
        self.sandbox.logs.append(log)
        script = ('mount -t tmpfs none /run && mkdir /run/xproxy && mount --bind "$0" /run/xproxy && exec "$@"')
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, run_dir,
                binary("milter/xproxy-milter"), "--mode", "inject", "--keyring", ring, "--log", "stderr"]
        with open(log, "wb") as out:
            self.procs.start("default", argv, stdout=out)
        sock = os.path.join(run_dir, "milter.sock")
        wait_until(lambda: "event=start" in read_text(log), 15, 0.05, "milter started")
        self.assertIn("listen=unix:/run/xproxy/milter.sock", read_text(log))
        st = os.stat(sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        self.assertEqual(st.st_gid, grp.getgrnam("postfix").gr_gid)
        here = os.path.dirname(os.path.abspath(__file__))

        def as_user(user):
            r = subprocess.run(["runuser", "-u", user, "--", "/usr/bin/python3", "-c", AS_USER, here, sock],
                               capture_output=True, text=True, timeout=30)
            return r.stdout.strip() + r.stderr
        # An unprivileged local user cannot even connect ...
        self.assertEqual(as_user("nobody"), "ERROR PermissionError")
        # ... the MTA's user can, and gets the header.
        out = as_user("postfix")
        self.assertTrue(out.startswith("HEADER "), out)
        self.assertTrue(self.verifies(ring, out[len("HEADER "):]), out)

    def test_socket_directory_others_may_write_is_refused(self):
        ring = self.sandbox.write("ring", KEYRING, mode=0o600)
        for name, d, words in self.unsafe_socket_dirs():
            with self.subTest(name):
                log = self.refused(name, [binary("milter/xproxy-milter"), "--mode", "inject", "--keyring", ring,
                                          "--listen", "unix:" + os.path.join(d, "m.sock"), "--log", "stderr"])
                self.assertIn("directory %s the socket %s/m.sock %s" % (d, d, words), log)
                self.assertIn("install -d -o root -g postfix -m 0750 " + d, log)
                self.assertFalse(os.path.lexists(os.path.join(d, "m.sock")))
        # The directory the documentation asks for: root:postfix 0750.
        d = self.sandbox.mkdir("safe", mode=0o750)
        os.chown(d, 0, grp.getgrnam("postfix").gr_gid)
        m = Milter(self.sandbox, self.procs, "safe", "inject", ring=ring, unix=(d, "m.sock"))
        hdrs = milter_session(m.path)
        self.assertTrue(self.verifies(ring, hdrs["X-Original-Source"]), hdrs)

    def test_socket_mode_for_other_users_is_refused(self):
        ring = self.sandbox.write("ring", KEYRING, mode=0o600)
        for mode in ("0666", "0664", "0662"):
            log = self.refused("mode" + mode, [binary("milter/xproxy-milter"), "--mode", "inject", "--keyring", ring,
                                                "--listen", "unix:" + self.sandbox.path("m%s.sock" % mode),
                                                "--socket-mode", mode, "--log", "stderr"])
            self.assertIn("--socket-mode %s gives other users access to the socket" % mode, log)

    def test_inherited_unix_socket_open_to_every_local_user_is_refused(self):
        # As from systemd: ListenStream=@name (abstract: no permissions at all) or a path
        # without SocketMode= (systemd's default is 0666).
        ring = self.sandbox.write("ring", KEYRING, mode=0o600)
        exe = [binary("milter/xproxy-milter"), "--mode", "inject", "--keyring", ring, "--listen", "systemd",
               "--log", "stderr"]
        self.assert_open_inherited_sockets_refused(exe, "xproxy-milter")
        # SocketGroup=postfix, SocketMode=0660, as packaging/systemd/xproxy-milter.socket.
        path = self.sandbox.path("ok.sock")
        log = self.sandbox.path("ok.log")
        self.sandbox.logs.append(log)
        with open(log, "wb") as out:
            self.procs.start("ok", ["/usr/bin/python3", "-c", UNIX_WRAPPER, path, "0660"] + exe, stdout=out)
        wait_until(lambda: "event=start" in read_text(log), 15, 0.05, "milter started")
        hdrs = milter_session(path)
        self.assertTrue(self.verifies(ring, hdrs["X-Original-Source"]), hdrs)


if __name__ == "__main__":
    main()
