"""xproxyd's MX lookup of the outbound mode (xproxyd/mx_lookup.hpp) against a real DNS server:
NSD, authoritative for example.test (unsigned) and signed.test (DNSSEC-signed at set-up with
ldns), on 127.0.0.1 and a free port, started from the test's own directory and stopped by
PID. tests/xproxyd_mx_lookup_cli forwards every query to it with libunbound and prints
each result: preferences, equal preferences shuffled, implicit MX, null MX, NXDOMAIN, an
MX host without address, a CNAME'd MX target, an IP address as MX target, TTLs and the
cache, the host and address limits, families, SERVFAIL and a server that never answers,
and the DNSSEC `secure` flag. nsd and ldnsutils come from scripts/bootstrap: a missing one
fails the test."""

import re
import socket
import subprocess

from harness import E2ETestCase, binary, main
from xproxyd_helpers import Nsd, tool

ZONE = """$ORIGIN example.test.
$TTL 300
@         IN SOA ns1 hostmaster 1 3600 600 86400 60
@         IN NS  ns1
ns1       IN A   127.0.0.1
mx1       IN A    192.0.2.11
mx1       IN AAAA 2001:db8::11
mx2       IN A    192.0.2.12
mx3       IN A    192.0.2.13
mx4       IN A    192.0.2.14
noaddr    IN TXT  "a host without address"
prefs     IN MX 30 mx3
prefs     IN MX 10 mx1
prefs     IN MX 20 mx2
equal     IN MX 10 mx1
equal     IN MX 10 mx2
equal     IN MX 10 mx3
equal     IN MX 20 mx4
implicit  IN A    192.0.2.21
implicit  IN AAAA 2001:db8::21
nullmx    IN MX 0 .
partial   IN MX 10 noaddr
partial   IN MX 15 nowhere
partial   IN MX 20 mx2
deadend   IN MX 10 noaddr
deadend   IN MX 20 nowhere
empty     IN TXT "neither MX nor address"
viacname  IN MX 10 alias
alias     IN CNAME mx2
iptarget  IN MX 10 192.0.2.1.
iptarget  IN MX 20 mx3
short     IN MX 10 shortmx
shortmx 2 IN A 192.0.2.31
many      IN MX 10 mx1
many      IN MX 20 mx2
many      IN MX 30 mx3
many      IN MX 40 mx4
loopmx    IN MX 10 ns1
loopmx    IN MX 20 mx2
looponly  IN MX 10 ns1
mapped    IN A    192.0.2.51
mapped    IN AAAA ::ffff:192.0.2.51
mapped    IN AAAA ::192.0.2.52
mapped    IN AAAA 2001:db8::51
mappedmx  IN MX 10 mapped
big       IN A    192.0.2.101
big       IN A    192.0.2.102
big       IN A    192.0.2.103
big       IN A    192.0.2.104
big       IN A    192.0.2.105
big       IN A    192.0.2.106
big       IN A    192.0.2.107
big       IN A    192.0.2.108
bigmx     IN MX 10 big
bigmx     IN MX 20 mx2
tmpmx     IN MX 10 mx.elsewhere.example.
tmpmx     IN MX 20 mx2
alltmp    IN MX 10 mx.elsewhere.example.
alltmp    IN MX 20 mx.elsewhere2.example.
"""

SIGNED_ZONE = """$ORIGIN signed.test.
$TTL 300
@         IN SOA ns1.example.test. hostmaster 1 3600 600 86400 60
@         IN NS  ns1.example.test.
@         IN MX  10 mx
mx        IN A   192.0.2.41
"""

RESULT = re.compile(r'^result (\S+) status=(\S+) mx_secure=(\d) implicit=(\d) literal=(\d) cached=(\d) partial=(\d) '
                    r'ttl=(\d+) destinations=(\d+) why="(.*)"$')
DEST = re.compile(r'^dest (\S+) (\d+) host=(\S+) pref=(\d+) addr=(\S+) mx_secure=(\d) addr_secure=(\d)$')


def parse(out):
    """[round] -> {domain: {"status": ..., "dests": [(host, pref, addr, mx_secure, addr_secure)]}}"""
    rounds, stats = [], None
    for line in out.splitlines():
        if line.startswith("round "):
            rounds.append({})
        elif m := RESULT.match(line):
            rounds[-1][m.group(1)] = {"status": m.group(2), "mx_secure": m.group(3) == "1",
                                      "implicit": m.group(4) == "1", "literal": m.group(5) == "1",
                                      "cached": m.group(6) == "1", "partial": m.group(7) == "1",
                                      "ttl": int(m.group(8)), "why": m.group(10), "dests": []}
        elif m := DEST.match(line):
            rounds[-1][m.group(1)]["dests"].append((m.group(3), int(m.group(4)), m.group(5), m.group(6) == "1",
                                                    m.group(7) == "1"))
        elif m := re.match(r"^stats hits=(\d+) misses=(\d+)$", line):
            stats = (int(m.group(1)), int(m.group(2)))
        else:
            raise AssertionError("unexpected output line %r" % line)
    return rounds, stats


class MxLookupNsd(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.cli = binary("tests/xproxyd_mx_lookup_cli")
        self.nsd = Nsd(self.sandbox, self.procs, {"example.test": ZONE}, signed={"signed.test": SIGNED_ZONE})
        self.port = self.nsd.port
        self.anchor = self.nsd.anchors["signed.test"]

    def lookup(self, *args, forward=None, trust_anchor=False):
        argv = [self.cli, "--forward", forward or "127.0.0.1@%d" % self.port,
                "--option", "local-zone:", "test. transparent", "--timeout-ms", "3000"]
        if trust_anchor:
            argv += ["--trust-anchor", self.anchor]
        p = subprocess.run(argv + list(args), capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return parse(p.stdout)

    def test_each_dns_case_then_the_cache(self):
        names = ["prefs", "implicit", "nullmx", "nope", "partial", "deadend", "empty", "viacname", "iptarget"]
        domains = [n + ".example.test" for n in names] + ["elsewhere.example", "[192.0.2.99]", "bad..name"]
        rounds, stats = self.lookup("--rounds", "2", "--families", "ipv4-first", *domains)
        r = rounds[0]
        # Preferences in order; mx1 has A and AAAA, IPv4 first.
        self.assertEqual(r["prefs.example.test"]["status"], "ok")
        self.assertEqual([d[:3] for d in r["prefs.example.test"]["dests"]],
                         [("mx1.example.test", 10, "192.0.2.11"), ("mx1.example.test", 10, "2001:db8::11"),
                          ("mx2.example.test", 20, "192.0.2.12"), ("mx3.example.test", 30, "192.0.2.13")])
        # mx2 and mx3 have no AAAA: that NODATA (SOA minimum 60) bounds the entry, not the MX's 300.
        self.assertEqual(r["prefs.example.test"]["ttl"], 60)
        self.assertFalse(r["prefs.example.test"]["mx_secure"])
        # No MX: the domain itself, preference 0.
        self.assertEqual(r["implicit.example.test"]["status"], "ok")
        self.assertTrue(r["implicit.example.test"]["implicit"])
        self.assertEqual([d[:3] for d in r["implicit.example.test"]["dests"]],
                         [("implicit.example.test", 0, "192.0.2.21"), ("implicit.example.test", 0, "2001:db8::21")])
        # Null MX, NXDOMAIN: permanent, each its own status.
        self.assertEqual(r["nullmx.example.test"]["status"], "null_mx")
        self.assertIn("does not accept mail", r["nullmx.example.test"]["why"])
        self.assertEqual(r["nope.example.test"]["status"], "no_such_domain")
        # MX hosts without address (NODATA, NXDOMAIN) are skipped and said so.
        self.assertEqual(r["partial.example.test"]["status"], "ok")
        self.assertEqual([d[:3] for d in r["partial.example.test"]["dests"]],
                         [("mx2.example.test", 20, "192.0.2.12")])
        self.assertIn("noaddr.example.test: no A record", r["partial.example.test"]["why"])
        self.assertIn("nowhere.example.test: no such host", r["partial.example.test"]["why"])
        # No host with an address, and nothing temporary: permanent.
        self.assertEqual(r["deadend.example.test"]["status"], "no_address")
        self.assertEqual(r["empty.example.test"]["status"], "no_address")
        self.assertTrue(r["empty.example.test"]["implicit"])
        # A CNAME'd MX target is followed; the host keeps the MX target's name.
        self.assertEqual([d[:3] for d in r["viacname.example.test"]["dests"]],
                         [("alias.example.test", 10, "192.0.2.12")])
        # An IP address as MX target is refused, the next host used.
        self.assertEqual([d[:3] for d in r["iptarget.example.test"]["dests"]],
                         [("mx3.example.test", 20, "192.0.2.13")])
        self.assertIn("an IP address is not a domain name", r["iptarget.example.test"]["why"])
        # NSD refuses a zone it does not serve; libunbound makes it SERVFAIL: temporary.
        self.assertEqual(r["elsewhere.example"]["status"], "temporary")
        self.assertIn("SERVFAIL", r["elsewhere.example"]["why"])
        # No DNS for an address literal or a bad name.
        self.assertEqual(r["[192.0.2.99]"]["status"], "ok")
        self.assertTrue(r["[192.0.2.99]"]["literal"])
        self.assertEqual(r["bad..name"]["status"], "invalid_domain")
        self.assertFalse(any(v["cached"] for v in r.values()))

        # Round 2: what may be cached comes from the cache, with the same destinations.
        second = rounds[1]
        for n in names:
            d = n + ".example.test"
            self.assertTrue(second[d]["cached"], d)
            self.assertEqual(second[d]["status"], r[d]["status"], d)
            self.assertEqual(second[d]["dests"], r[d]["dests"], d)
            self.assertLessEqual(second[d]["ttl"], r[d]["ttl"], d)
        self.assertFalse(second["elsewhere.example"]["cached"])  # temporary: asked again
        self.assertFalse(second["[192.0.2.99]"]["cached"])
        self.assertEqual(stats, (len(names), len(names) + 2))  # literal and bad name never reach the cache

    def test_equal_preferences_are_shuffled_on_every_use(self):
        rounds, stats = self.lookup("--rounds", "30", "--seed", "7", "--families", "ipv4", "equal.example.test")
        orders = set()
        for r in rounds:
            hosts = [d[0] for d in r["equal.example.test"]["dests"]]
            self.assertEqual(sorted(hosts[:3]), ["mx1.example.test", "mx2.example.test", "mx3.example.test"])
            self.assertEqual(hosts[3:], ["mx4.example.test"])
            orders.add(tuple(hosts[:3]))
        self.assertGreater(len(orders), 1, "30 lookups, always the same order")
        self.assertEqual(stats, (29, 1))

    def test_ttl_is_the_smallest_used_and_ends_the_cache_entry(self):
        rounds, stats = self.lookup("--rounds", "2", "--pause-ms", "2500", "short.example.test")
        self.assertLessEqual(rounds[0]["short.example.test"]["ttl"], 2)  # shortmx's A, not the MX's 300
        self.assertEqual(rounds[0]["short.example.test"]["dests"][0][2], "192.0.2.31")
        self.assertFalse(rounds[1]["short.example.test"]["cached"])
        self.assertEqual(stats, (0, 2))

    def test_limits_and_families(self):
        rounds, _ = self.lookup("--max-hosts", "3", "--max-addresses", "3", "--families", "ipv6-first",
                                "many.example.test")
        self.assertEqual([d[:3] for d in rounds[0]["many.example.test"]["dests"]],
                         [("mx1.example.test", 10, "2001:db8::11"), ("mx1.example.test", 10, "192.0.2.11"),
                          ("mx2.example.test", 20, "192.0.2.12")])
        rounds, _ = self.lookup("--max-hosts", "2", "many.example.test")
        self.assertEqual([d[0] for d in rounds[0]["many.example.test"]["dests"]],
                         ["mx1.example.test", "mx1.example.test", "mx2.example.test"])
        rounds, _ = self.lookup("--families", "ipv6", "prefs.example.test", "[192.0.2.1]")
        self.assertEqual([d[:3] for d in rounds[0]["prefs.example.test"]["dests"]],
                         [("mx1.example.test", 10, "2001:db8::11")])
        self.assertEqual(rounds[0]["[192.0.2.1]"]["status"], "no_address")

    def test_dnssec_secure_flag(self):
        rounds, _ = self.lookup("signed.test", "prefs.example.test", trust_anchor=True)
        s = rounds[0]["signed.test"]
        self.assertEqual(s["status"], "ok", s["why"])
        self.assertTrue(s["mx_secure"])
        self.assertEqual(s["dests"], [("mx.signed.test", 10, "192.0.2.41", True, True)])
        # example.test is not under the anchor: insecure, not bogus.
        self.assertEqual(rounds[0]["prefs.example.test"]["status"], "ok")
        self.assertFalse(rounds[0]["prefs.example.test"]["mx_secure"])
        # Without the anchor the same signed answer is not secure.
        rounds, _ = self.lookup("signed.test")
        self.assertFalse(rounds[0]["signed.test"]["mx_secure"])
        self.assertFalse(rounds[0]["signed.test"]["dests"][0][4])

    def test_refused_destinations(self):
        # ns1 is 127.0.0.1: refused by default, said, the next host used; alone: permanent.
        rounds, _ = self.lookup("loopmx.example.test", "looponly.example.test", "[127.0.0.1]")
        r = rounds[0]
        self.assertEqual([d[:3] for d in r["loopmx.example.test"]["dests"]], [("mx2.example.test", 20, "192.0.2.12")])
        self.assertIn("ns1.example.test: refused destination 127.0.0.1 (loopback)", r["loopmx.example.test"]["why"])
        self.assertEqual(r["looponly.example.test"]["status"], "no_address")
        self.assertIn("every address found is a refused destination", r["looponly.example.test"]["why"])
        self.assertEqual(r["[127.0.0.1]"]["status"], "no_address")
        # Opened by the configuration (here: only 10/8 refused), loopback is a destination.
        rounds, _ = self.lookup("--refuse", "10.0.0.0/8", "looponly.example.test")
        self.assertEqual([d[2] for d in rounds[0]["looponly.example.test"]["dests"]], ["127.0.0.1"])

    def test_mapped_and_compatible_aaaa(self):
        rounds, _ = self.lookup("--families", "ipv6-first", "mappedmx.example.test")
        # ::ffff:192.0.2.51 is the IPv4 address the A record gives too: listed once, as IPv4;
        # ::192.0.2.52 (IPv4-compatible) is dropped.
        r = rounds[0]["mappedmx.example.test"]
        self.assertEqual(sorted(d[2] for d in r["dests"]), ["192.0.2.51", "2001:db8::51"])  # RRset order varies
        self.assertIn("IPv4-compatible address ::192.0.2.52 dropped", r["why"])
        rounds, _ = self.lookup("--families", "ipv6", "mappedmx.example.test")
        self.assertEqual([d[2] for d in rounds[0]["mappedmx.example.test"]["dests"]], ["2001:db8::51"])

    def test_addresses_kept_per_host(self):
        rounds, _ = self.lookup("--families", "ipv4", "bigmx.example.test")
        dests = rounds[0]["bigmx.example.test"]["dests"]
        self.assertEqual([d[0] for d in dests], ["big.example.test"] * 4 + ["mx2.example.test"])
        rounds, _ = self.lookup("--families", "ipv4", "--per-host", "100", "--max-addresses", "6", "bigmx.example.test")
        self.assertEqual([d[0] for d in rounds[0]["bigmx.example.test"]["dests"]], ["big.example.test"] * 6)

    def test_host_failing_temporarily_makes_a_partial_answer(self):
        # mx.elsewhere.example is in no zone NSD serves: its address queries SERVFAIL.
        rounds, stats = self.lookup("--rounds", "2", "tmpmx.example.test", "alltmp.example.test")
        for r in rounds:
            t = r["tmpmx.example.test"]
            self.assertEqual(t["status"], "ok")
            self.assertTrue(t["partial"])
            self.assertFalse(t["cached"])  # a partial answer is never cached
            self.assertEqual([d[:3] for d in t["dests"]], [("mx2.example.test", 20, "192.0.2.12")])
            self.assertIn("mx.elsewhere.example A: SERVFAIL", t["why"])
            self.assertEqual(r["alltmp.example.test"]["status"], "temporary")
            self.assertFalse(r["alltmp.example.test"]["cached"])
        self.assertEqual(stats, (0, 4))

    def test_dnssec_bogus_is_temporary(self):
        # A trust anchor for signed.test that is not its key: every answer there is bogus.
        d = self.sandbox.path("nsd")
        other = subprocess.run([tool("ldns-keygen"), "-a", "ECDSAP256SHA256", "-k", "signed.test"], cwd=d,
                               check=True, capture_output=True, text=True).stdout.strip()
        argv = [self.cli, "--forward", "127.0.0.1@%d" % self.port, "--option", "local-zone:", "test. transparent",
                "--timeout-ms", "3000", "--trust-anchor", self.sandbox.path("nsd", other + ".ds"), "--rounds", "2",
                "signed.test"]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        rounds, stats = parse(p.stdout)
        for r in rounds:
            self.assertEqual(r["signed.test"]["status"], "temporary")
            self.assertIn("DNSSEC validation failed", r["signed.test"]["why"])
        self.assertEqual(stats, (0, 2))

    def test_server_that_never_answers_is_temporary(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            rounds, stats = self.lookup("--timeout-ms", "500", "--rounds", "2", "prefs.example.test",
                                        forward="127.0.0.1@%d" % silent.getsockname()[1])
        for r in rounds:
            self.assertEqual(r["prefs.example.test"]["status"], "temporary")
            self.assertIn("prefs.example.test MX: no answer within 500 ms", r["prefs.example.test"]["why"])
        self.assertEqual(stats, (0, 2))  # never cached


if __name__ == "__main__":
    main()
