"""xproxy-wire keyring-*: create a trace key ring and rotate its keys with the built tool.

keyring-create makes a 0600 file with one random key and never replaces a file
(--if-missing accepts one as it is, byte for byte); keyring-add, keyring-promote and
keyring-retire are the three rotation steps of doc/wire-formats.md, and after each of
them trace-sign signs with the expected key id while trace-verify accepts headers signed
by every key still in the ring. keyring-list shows ids and sizes, never a secret; a
corrupt file is refused naming its line; 20 keyring-add at once lose no key."""

import datetime
import grp
import os
import pwd
import re
import subprocess

from harness import E2ETestCase, binary, main, parse_kv, wire

SENDER = "alice@sender.example"
MID = "<keyring-test@sender.example>"
HEX16 = "hex:000102030405060708090a0b0c0d0e0f"


def read(path):
    with open(path, "rb") as f:
        return f.read()


def secrets(path):
    """The secret texts of a key ring file (what must never be printed)."""
    out = []
    for line in read(path).decode().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            spec = line.split()[1]
            out.append(spec.split(":", 1)[1])
    return out


def key_lines(listing):
    """keyring-list output -> [(position, id, bytes, signing)]."""
    rows = []
    for line in listing.decode().splitlines():
        if line.startswith("#"):
            continue
        f = line.split()
        rows.append((int(f[0]), f[1], int(f[2]), f[3:] == ["signing"]))
    return rows


class KeyRingTool(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.dir = self.sandbox.mkdir("etc", mode=0o700)
        self.ring = os.path.join(self.dir, "trace.keys")
        self.printed = []  # every stdout and stderr of the tool, checked for secrets

    def tearDown(self):
        if os.path.exists(self.ring):
            for s in secrets(self.ring):
                for out in self.printed:
                    self.assertNotIn(s, out, "a secret was printed")
        super().tearDown()

    def run_wire(self, *args, stdin=b""):
        rc, out, err = wire(list(args), stdin)
        self.printed += [out.decode("utf-8", "replace"), err]
        return rc, out, err

    def ok(self, *args, stdin=b""):
        rc, out, err = self.run_wire(*args, stdin=stdin)
        self.assertEqual(rc, 0, "xproxy-wire %s: %s" % (" ".join(args), err))
        return out

    def sign(self):
        out = self.ok("trace-sign", "--keyring", self.ring, "--ip", "192.0.2.7", "--port", "2525", "--sender", SENDER,
                      "--message-id", MID)
        return out.decode().strip()

    def verify(self, header):
        rc, out, _ = self.run_wire("trace-verify", "--keyring", self.ring, "--sender", SENDER, "--message-id", MID,
                                   stdin=header.encode())
        return rc, parse_kv(out)

    def assert_signs_with(self, kid, accepted, refused=()):
        header = self.sign()
        rc, kv = self.verify(header)
        self.assertEqual((rc, kv.get("result"), kv.get("kid")), (0, "ok", kid))
        for h, want_kid in accepted:
            rc, kv = self.verify(h)
            self.assertEqual((rc, kv.get("result"), kv.get("kid")), (0, "ok", want_kid))
        for h in refused:
            rc, kv = self.verify(h)
            self.assertEqual((rc, kv.get("result")), (1, "unknown_key"))
        return header

    def listing(self):
        return key_lines(self.ok("keyring-list", self.ring))

    def no_temporary_files(self):
        self.assertEqual(sorted(os.listdir(self.dir)), ["trace.keys"])

    def test_create(self):
        out = self.ok("keyring-create", self.ring)
        self.assertIn(b"created key ring", out)
        st = os.stat(self.ring)
        self.assertEqual(st.st_mode & 0o7777, 0o600)
        text = read(self.ring).decode()
        self.assertTrue(text.startswith("# "), text)
        kid = self.listing()[0][1]
        today = [(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=d)).strftime("k%Y%m%d")
                 for d in (-60, 0, 60)]
        self.assertIn(kid, today)
        self.assertRegex(text, r"\n%s base64:[A-Za-z0-9+/]{43}=\n$" % kid)
        self.assertEqual(self.listing(), [(1, kid, 32, True)])
        self.no_temporary_files()
        self.assert_signs_with(kid, [])

        # an existing file is refused, untouched; --if-missing accepts it, untouched
        before, ino = read(self.ring), os.stat(self.ring).st_ino
        rc, _, err = self.run_wire("keyring-create", self.ring)
        self.assertEqual(rc, 1)
        self.assertIn("exists", err)
        out = self.ok("keyring-create", self.ring, "--if-missing", "--mode", "0600")
        self.assertIn(b"exists", out)
        self.assertEqual((read(self.ring), os.stat(self.ring).st_ino), (before, ino))

    def test_if_missing_leaves_a_foreign_file_byte_identical(self):
        content = b"# mine\r\nk1   " + HEX16.encode() + b"   # hand-made\r\n"
        with open(os.open(self.ring, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400), "wb") as f:
            f.write(content)
        st = os.stat(self.ring)
        rc, _, err = self.run_wire("keyring-create", self.ring, "--if-missing", "--owner", "nobody")
        self.assertEqual((rc, err), (0, ""))
        st2 = os.stat(self.ring)
        self.assertEqual(read(self.ring), content)
        self.assertEqual((st2.st_ino, st2.st_mode, st2.st_uid, st2.st_mtime_ns),
                         (st.st_ino, st.st_mode, st.st_uid, st.st_mtime_ns))
        # a key ring the daemons would refuse is left as it is too, with a warning
        os.chmod(self.ring, 0o644)
        rc, _, err = self.run_wire("keyring-create", self.ring, "--if-missing")
        self.assertEqual(rc, 0)
        self.assertIn("warning: key ring %s has mode 0644" % self.ring, err)
        self.assertEqual(read(self.ring), content)

    def test_create_owner_group_mode_and_size(self):
        self.ok("keyring-create", self.ring, "--owner", "nobody", "--group", "nogroup", "--mode", "0400",
                "--key-id", "gw-2026.a", "--bytes", "64")
        st = os.stat(self.ring)
        self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o7777),
                         (pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid, 0o400))
        self.assertEqual(self.listing(), [(1, "gw-2026.a", 64, True)])
        out = self.ok("keyring-list", self.ring).decode()
        self.assertIn("# key ring %s: owner nobody, group nogroup, mode 0400\n" % self.ring, out)
        # modifications keep owner, group and mode
        self.ok("keyring-add", self.ring, "--key-id", "next")
        st2 = os.stat(self.ring)
        self.assertEqual((st2.st_uid, st2.st_gid, st2.st_mode & 0o7777), (st.st_uid, st.st_gid, 0o400))
        self.no_temporary_files()

    def test_usage_errors(self):
        for args in (["keyring-create"], ["keyring-create", self.ring, "--mode", "0640"],
                     ["keyring-create", self.ring, "--bytes", "15"], ["keyring-create", self.ring, "--bytes", "129"],
                     ["keyring-create", self.ring, "--key-id", "a/b"], ["keyring-create", self.ring, "--nope"],
                     ["keyring-promote", self.ring], ["keyring-retire", self.ring, "bad id"]):
            rc, _, err = self.run_wire(*args)
            self.assertEqual(rc, 2, "%s: %s" % (args, err))
            self.assertFalse(os.path.exists(self.ring), args)
        rc, _, err = self.run_wire("keyring-create", self.ring, "--mode", "0640")
        self.assertIn("0600 or 0400", err)
        rc, _, err = self.run_wire("keyring-create", self.ring, "--owner", "no-such-user-here")
        self.assertEqual(rc, 1)
        self.assertFalse(os.path.exists(self.ring))

    def test_rotation_round_trip(self):
        self.ok("keyring-create", self.ring, "--key-id", "old")
        h_old = self.assert_signs_with("old", [])

        # step 1: the new key is the second one; the old key still signs
        out = self.ok("keyring-add", self.ring, "--key-id", "new")
        self.assertIn(b"as key 2", out)
        self.assertEqual(self.listing(), [(1, "old", 32, True), (2, "new", 32, False)])
        self.assert_signs_with("old", [(h_old, "old")])

        # step 2: the new key signs; headers signed with the old one still verify
        self.ok("keyring-promote", self.ring, "new")
        self.assertEqual(self.listing(), [(1, "new", 32, True), (2, "old", 32, False)])
        h_new = self.assert_signs_with("new", [(h_old, "old")])
        out = self.ok("keyring-promote", self.ring, "new")  # already first: nothing to do
        self.assertIn(b"already", out)

        # step 3: the old key goes; its headers no longer verify
        self.ok("keyring-retire", self.ring, "old")
        self.assertEqual(self.listing(), [(1, "new", 32, True)])
        self.assert_signs_with("new", [(h_new, "new")], refused=[h_old])
        self.no_temporary_files()
        self.assertEqual(os.stat(self.ring).st_mode & 0o7777, 0o600)

    def test_add_first_import_and_refusals(self):
        self.ok("keyring-create", self.ring, "--key-id", "a")
        self.ok("keyring-add", self.ring, "--key-id", "b", "--first", "--bytes", "16")
        self.assertEqual(self.listing(), [(1, "b", 16, True), (2, "a", 32, False)])
        # a duplicate id is refused, the file untouched
        before = read(self.ring)
        rc, _, err = self.run_wire("keyring-add", self.ring, "--key-id", "a")
        self.assertEqual(rc, 1)
        self.assertIn("'a' is already in the key ring", err)
        # the signing key needs --force, the only key is never removed
        rc, _, err = self.run_wire("keyring-retire", self.ring, "b")
        self.assertEqual(rc, 1)
        self.assertIn("signing", err)
        rc, _, err = self.run_wire("keyring-retire", self.ring, "nosuch")
        self.assertEqual(rc, 1)
        self.assertEqual(read(self.ring), before)
        self.ok("keyring-retire", self.ring, "b", "--force")
        rc, _, err = self.run_wire("keyring-retire", self.ring, "a", "--force")
        self.assertEqual(rc, 1)
        self.assertIn("only key", err)
        self.assertEqual(self.listing(), [(1, "a", 32, True)])

        # a key from another gateway: the same secret gives the same signature
        other = self.sandbox.path("other.keys")
        with open(os.open(other, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write("gw2 %s\n" % HEX16)
        h = wire(["trace-sign", "--keyring", other, "--ip", "192.0.2.7", "--port", "1", "--sender", SENDER,
                  "--message-id", MID])[1].decode()
        self.ok("keyring-import", self.ring, "gw2", stdin=("  %s\n" % HEX16).encode())
        self.assertEqual(self.listing(), [(1, "a", 32, True), (2, "gw2", 16, False)])
        self.assertEqual(self.verify(h)[1].get("result"), "ok")
        rc, _, err = self.run_wire("keyring-import", self.ring, "gw3", stdin=b"hex:0011")
        self.assertEqual(rc, 1)
        self.assertIn("shorter than 16", err)
        self.assertNotIn("0011", err)
        self.assertEqual(self.listing(), [(1, "a", 32, True), (2, "gw2", 16, False)])

    def test_list_never_prints_a_secret_and_warns_on_a_bad_mode(self):
        self.ok("keyring-create", self.ring)
        self.ok("keyring-add", self.ring)  # same day: the default id gets a -2
        ids = [k[1] for k in self.listing()]
        self.assertEqual(ids[1], ids[0] + "-2")
        self.ok("keyring-import", self.ring, "imp", stdin=HEX16.encode())
        out = self.ok("keyring-list", self.ring).decode()
        for s in secrets(self.ring):
            self.assertNotIn(s, out)
        self.assertNotIn("base64", out)
        os.chmod(self.ring, 0o640)
        rc, out, err = self.run_wire("keyring-list", self.ring)
        self.assertEqual(rc, 0)
        self.assertIn("mode 0640", out.decode())
        self.assertIn("the daemons refuse it", err)
        # the modifying commands refuse it as the daemons do
        before = read(self.ring)
        rc, _, err = self.run_wire("keyring-add", self.ring)
        self.assertEqual(rc, 1)
        self.assertIn("has mode 0640", err)
        self.assertEqual(read(self.ring), before)

    def test_corrupt_file_is_refused_naming_the_line(self):
        content = "# ring\nk1 %s\nk2 hex:00112233\n" % HEX16
        with open(os.open(self.ring, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(content)
        for args in (["keyring-add", self.ring], ["keyring-promote", self.ring, "k1"],
                     ["keyring-retire", self.ring, "k1", "--force"], ["keyring-list", self.ring]):
            rc, _, err = self.run_wire(*args)
            self.assertEqual(rc, 1, args)
            self.assertRegex(err, r"line 3: secret is shorter than 16 bytes")
            self.assertNotIn("00112233", err)
        self.assertEqual(read(self.ring).decode(), content)
        self.no_temporary_files()

    def test_comments_survive_every_step(self):
        content = "# trace keys of example.net\n\nold %s   # since March\n# end\n" % HEX16
        with open(os.open(self.ring, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(content)
        self.ok("keyring-add", self.ring, "--key-id", "new")
        self.ok("keyring-promote", self.ring, "new")
        self.ok("keyring-retire", self.ring, "old")
        text = read(self.ring).decode()
        self.assertRegex(text, r"^# trace keys of example.net\n\nnew base64:\S+\n# end\n$")

    def test_concurrent_adds_lose_no_key(self):
        self.ok("keyring-create", self.ring, "--key-id", "k0")
        procs = [subprocess.Popen([binary("tools/xproxy-wire"), "keyring-add", self.ring, "--key-id", "k%d" % i],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(1, 21)]
        procs += [subprocess.Popen([binary("tools/xproxy-wire"), "keyring-add", self.ring],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(5)]
        try:
            results = [p.communicate(timeout=60) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        for p, (out, err) in zip(procs, results):
            self.printed += [out.decode(), err.decode()]
            self.assertEqual(p.returncode, 0, err)
        keys = self.listing()
        self.assertEqual(len(keys), 26)
        ids = [k[1] for k in keys]
        self.assertEqual(ids[0], "k0")
        self.assertEqual(sorted(i for i in ids if re.fullmatch(r"k\d{1,2}", i)),
                         sorted("k%d" % i for i in range(0, 21)))
        self.assertEqual(len(set(ids)), 26)  # the 5 default ids got distinct suffixes
        self.no_temporary_files()
        self.assertEqual(os.stat(self.ring).st_mode & 0o7777, 0o600)
        self.assert_signs_with("k0", [])


if __name__ == "__main__":
    main()
