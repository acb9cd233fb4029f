"""ldap_directory_bench: xproxy-policyd with its directory in a local slapd, each figure
next to a reference measured in the same run (see ldap_directory_bench.sh for targets).

  initial sync   DOMAINS domains with USERS_PER_DOMAIN users each (one in ten with an
                 alias), loaded into slapd with slapadd -q; a fresh xproxy-policyd
                 --directory ldap://... from its start to its "refresh: N entries" line,
                 and its peak resident size (VmHWM) then. Reference: the same directory
                 as a directory file (--directory FILE), from start until it answers.
  modify -> decision
                 CHANGES times: a random user flips between active and inactive through
                 one ldapmodify that reads the changes from a pipe; a persistent policy
                 connection asks for that user in a tight loop until the answer flips.
                 Latency from writing the change to ldapmodify; p50/p99/max.
  lookups during a burst
                 bench/policyd_load, open loop at LOOKUP_RATE requests/s over 10
                 connections, RCPTs for random users (existing and not), SECONDS long:
                 once idle (the reference), once while one ldapmodify applies BURST
                 changes (each marks a user deleted); p50/p99 of both and their ratio, and how long
                 the daemon took to apply the burst (until its last change answers).
Env: XPROXY_BUILD_DIR, DOMAINS (100000), USERS_PER_DOMAIN (10), CHANGES (1000),
BURST (10000), LOOKUP_RATE (2000), SECONDS (20), BUDGET (300: seconds the
modify -> decision phase may take; it stops early, with the changes measured, beyond).
slapd runs with dbnosync (its writes are not what is measured)."""

import os
import random
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from harness import Slapd, binary, free_port, read_text, standalone, user_dn, wait_for_port, wait_until  # noqa: E402
from ldap_helpers import REFRESH_RE, ldap_settings  # noqa: E402

DOMAINS = int(os.environ.get("DOMAINS", "100000"))
PER = int(os.environ.get("USERS_PER_DOMAIN", "10"))
CHANGES = int(os.environ.get("CHANGES", "1000"))
BURST = int(os.environ.get("BURST", "10000"))
RATE = int(os.environ.get("LOOKUP_RATE", "2000"))
SECONDS = int(os.environ.get("SECONDS", "20"))
BUDGET = int(os.environ.get("BUDGET", "300"))
SUFFIX = "dc=example,dc=com"


def domain(i):
    return "d%d.example" % i


def address(i, j):
    return "u%d@%s" % (j, domain(i))


def generate(dir_path, ldif_path):
    """The same directory as a directory file and as LDIF for slapadd (with the
    operational attributes slapadd -q does not add itself for syncprov)."""
    t = time.time()
    with open(dir_path, "w") as d, open(ldif_path, "w") as l:
        l.write("dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: example\n\n"
                "dn: ou=domains,%s\nobjectClass: organizationalUnit\nou: domains\n\n" % (SUFFIX, SUFFIX))
        for i in range(DOMAINS):
            dom = domain(i)
            d.write("domain %s\n" % dom)
            ddn = "ou=%s,ou=domains,%s" % (dom, SUFFIX)
            l.write("dn: %s\nobjectClass: organizationalUnit\nobjectClass: xproxyDomain\nou: %s\n"
                    "xproxyDomainName: %s\n\n" % (ddn, dom, dom))
            for j in range(PER):
                a = address(i, j)
                alias = (j % 10 == 0)
                d.write("user %s%s\n" % (a, " alias=a%d" % j if alias else ""))
                l.write("dn: uid=u%d,%s\nobjectClass: inetOrgPerson\nobjectClass: xproxyUser\nuid: u%d\ncn: u%d\n"
                        "sn: u%d\nmail: %s\n%s\n" % (j, ddn, j, j, j, a,
                                                     "xproxyAlias: a%d@%s\n" % (j, dom) if alias else ""))
    return time.time() - t


def vm(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


class Policy:
    """A persistent policy-protocol connection."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.s.makefile("rb")

    def ask(self, rcpt):
        self.s.sendall(b"request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.1\n"
                       b"sender=s@sender.example\nrecipient=%s\n\n" % rcpt.encode())
        action = self.f.readline().decode()
        self.f.readline()
        return action.strip()[len("action="):]


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p / 100))]


def start_policyd(sb, procs, name, directory, extra=()):
    port = free_port()
    log = sb.path(name + ".log")
    argv = [binary("policyd/xproxy-policyd"), "--listen", "inet:127.0.0.1:%d" % port, "--allow-peers",
            "127.0.0.1/32", "--log", "stderr", "--policy", "vdomains", "--threads", "2", "--directory",
            directory] + list(extra)
    t0 = time.time()
    with open(log, "ab") as out:
        p = procs.start(name, argv, stdout=out)
    return p, port, log, t0


def main():
    users = DOMAINS * PER
    print("machine: %d cores, load average %s; %d domains, %d users" %
          (os.cpu_count(), " ".join(open("/proc/loadavg").read().split()[:3]), DOMAINS, users))
    with standalone("ldap-bench") as (sb, procs):
        dir_path, ldif_path = sb.path("directory"), sb.path("tree.ldif")
        print("generated the directory file and LDIF in %.1f s" % generate(dir_path, ldif_path))
        # dbnosync: the writes of the burst measure the daemon, not this machine's fsync
        ldap = Slapd(sb, procs, maxsize=16 * 1024 ** 3, extra_conf="dbnosync\n")
        t = time.time()
        ldap.load_offline(ldif_path)
        print("slapadd -q: %.1f s" % (time.time() - t))
        os.unlink(ldif_path)
        ldap.start(timeout=120)
        last = address(DOMAINS - 1, PER - 1)

        # ---- reference: the directory file
        p, port, log, t0 = start_policyd(sb, procs, "file", dir_path)
        wait_for_port("127.0.0.1", port, timeout=300)
        assert Policy(port).ask(last) == "DUNNO"
        file_s, file_rss = time.time() - t0, vm(p.pid, "VmHWM")
        procs.stop(p)

        # ---- initial sync from slapd
        settings = ldap_settings(sb, ldap, "policyd", timeout="30")
        p, port, log, t0 = start_policyd(sb, procs, "ldap", "ldap://127.0.0.1:%d/%s" % (ldap.port, SUFFIX),
                                         ["--ldap-config", settings])
        m = wait_until(lambda: re.search(REFRESH_RE, read_text(log)), 600, 0.05, "the refresh")
        ldap_s, ldap_rss = time.time() - t0, vm(p.pid, "VmHWM")
        pol = Policy(port)
        assert pol.ask(last) == "DUNNO", pol.ask(last)
        print("initial sync: %s" % m.group(0))
        print("  ldap:  %.2f s, peak RSS %.0f MiB" % (ldap_s, ldap_rss / 2 ** 20))
        print("  file:  %.2f s, peak RSS %.0f MiB (reference)" % (file_s, file_rss / 2 ** 20))
        print("  ratio ldap/file: time x%.1f, peak RSS x%.2f; target < 60 s: x%.2f" %
              (ldap_s / file_s, ldap_rss / file_rss, ldap_s / 60))

        # ---- modify -> decision: one ldapmodify reads the changes from a pipe, one at a
        # time (it sends each record once its ending blank line arrives)
        rnd = random.Random(1)
        state = {}
        latencies = []
        writer = subprocess.Popen(["ldapmodify", "-x", "-H", ldap.url, "-D", ldap.rootdn, "-w", ldap.rootpw],
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        slow = None
        t_phase = time.time()
        for k in range(CHANGES):
            if time.time() - t_phase > BUDGET:
                slow = "stopped after %d changes: over the phase's budget of %d s (BUDGET)" % (k, BUDGET)
                break
            i, j = rnd.randrange(DOMAINS), rnd.randrange(PER)
            a = address(i, j)
            new = "active" if state.get(a) == "inactive" else "inactive"
            want = "DUNNO" if new == "active" else "450"
            t0 = time.time()
            writer.stdin.write("dn: %s\nchangetype: modify\nreplace: xproxyStatus\nxproxyStatus: %s\n\n"
                               % (user_dn(SUFFIX, a), new))
            writer.stdin.flush()
            while not pol.ask(a).startswith(want):
                time.sleep(0.002)  # polling leaves the machine to the sync
                if time.time() > t0 + 120:
                    raise RuntimeError("change %d (%s -> %s) not seen after 120 s" % (k, a, new))
            latencies.append(time.time() - t0)
            state[a] = new
        writer.stdin.close()
        if writer.wait(60) != 0:
            raise RuntimeError("ldapmodify failed")
        if slow:
            print("modify -> decision: " + slow)
        print("modify -> decision over %d changes (from the change's write to ldapmodify until the daemon answers "
              "it): p50 %.1f ms, p99 %.1f ms, max %.1f ms (target p99 < 1 s: x%.3f)" %
              (len(latencies), pct(latencies, 50) * 1000, pct(latencies, 99) * 1000, max(latencies) * 1000,
               pct(latencies, 99)))

        # ---- lookups idle vs during a burst of changes
        reqs = []
        for _ in range(1000):
            i, j = rnd.randrange(DOMAINS), rnd.randrange(PER + 2)  # j >= PER: unknown users
            reqs.append("request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.1\n"
                        "sender=s@sender.example\nrecipient=%s\n\n" % address(i, j))
        mix = sb.write("mix", "".join(reqs))
        load = os.path.join(os.environ["XPROXY_BUILD_DIR"], "bench", "policyd_load")

        def lookups():
            out = subprocess.run([load, str(port), "10", str(SECONDS), mix, str(RATE)], capture_output=True,
                                 text=True, check=True).stdout
            return dict(kv.split("=", 1) for kv in out.split())

        idle = lookups()
        burst = min(BURST, users)
        burst_users = rnd.sample([(i, j) for i in range(min(DOMAINS, burst)) for j in range(PER)], burst)
        burst_ldif = sb.write("burst.ldif", "".join(
            "dn: %s\nchangetype: modify\nreplace: xproxyStatus\nxproxyStatus: deleted\n\n"
            % user_dn(SUFFIX, address(i, j)) for i, j in burst_users))
        loader = subprocess.Popen([load, str(port), "10", str(SECONDS), mix, str(RATE)], stdout=subprocess.PIPE,
                                  text=True)
        time.sleep(min(1.5, SECONDS / 5))
        t_burst = time.time()
        ldap._tool("ldapmodify", "-f", burst_ldif, timeout=600)
        t_written = time.time() - t_burst
        i, j = burst_users[-1]
        probe = Policy(port)
        while not probe.ask(address(i, j)).startswith("550 5.1.6"):
            time.sleep(0.01)
            if time.time() - t_burst > 900:
                raise RuntimeError("the burst's last change did not arrive within 900 s")
        t_applied = time.time() - t_burst
        busy = dict(kv.split("=", 1) for kv in loader.communicate(timeout=600)[0].split())
        window = SECONDS - min(1.5, SECONDS / 5)
        print("burst of %d changes: written by ldapmodify in %.1f s (%.0f/s), all applied by the daemon after "
              "%.1f s%s" % (burst, t_written, burst / t_written, t_applied,
                            "" if t_applied <= window else " (longer than the lookup run: raise SECONDS)"))
        for name, r in (("idle (reference)", idle), ("during the burst", busy)):
            print("lookups %s: %s req/s p50 %s us, p99 %s us, p999 %s us, max %s us, lag_p99 %s us, errors %s"
                  % (name, r["rate"], r["p50_us"], r["p99_us"], r["p999_us"], r["max_us"], r["lag_p99_us"],
                     r["errors"]))
        print("lookup ratio burst/idle: p50 x%.2f, p99 x%.2f" % (float(busy["p50_us"]) / float(idle["p50_us"]),
                                                                float(busy["p99_us"]) / float(idle["p99_us"])))
        print("policyd resident size after all: %.0f MiB" % (vm(p.pid, "VmRSS") / 2 ** 20))


if __name__ == "__main__":
    main()
