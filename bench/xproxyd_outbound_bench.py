"""xproxyd_outbound_bench: Postfix delivering through xproxyd's outbound mode next to the
same Postfix set-up delivering directly to the same MX hosts, in one run (see
xproxyd_outbound_bench.sh for the target).

  direct   Postfix -> MX host sinks               (transport_maps: each domain to its MX host)
  xproxyd  Postfix -> xproxyd -> MX host sinks     (relayhost = xproxyd, which finds the MX
                                                   hosts in the DNS, NSD here, and binds to
                                                   an egress address of its pool)

  The MX hosts: DOMAINS recipient domains (default 6) under out.test, spread over three
  discarding, counting smtp-sink instances on 127.0.0.31-33 (one port, as on the
  internet). NSD serves their MX and A records; xproxyd asks it through libunbound.
  Postfix cannot ask NSD (it uses the system resolver, and NSD listens on a free port,
  not 53), so the direct path gets the same answers from transport_maps
  (`dN.out.test bench:[127.0.0.3x]:PORT`): it pays no DNS lookup, xproxyd pays one per
  domain and TTL (its MX cache, whose hit rate is printed).
  Two pools: Postfix sends the senders of bulk@src.out.test to xproxyd's second listener
  (sender_dependent_relayhost_maps, risk=bulk: pool "bulk", egresses bulk 127.0.0.42 and
  warm 127.0.0.43, weight 1 each); the other half, from a@src.out.test, goes to the first
  listener (pool "default", egress clean 127.0.0.41).

  Both paths use two Postfix instances configured alike but for the route: one delivery
  transport "bench" (smtp) limited to SESSIONS processes (default 20) and a destination
  concurrency of SESSIONS, so both deliver over at most SESSIONS parallel connections
  (directly to the three MX hosts, or to xproxyd's two listeners, each of those sessions
  holding one connection to an MX host). Postfix's own connection cache is on as by
  default in both.

  A measurement is the queue drain time: N messages (one recipient each, the domains and
  the two senders in turn) are injected with smtp-source into the Postfix instance of the
  path, which puts them on hold (smtpd_end_of_data_restrictions HOLD); then the clock
  starts, `postsuper -H ALL` and `postqueue -f` release them, and it stops when the sinks
  have received the last message (and the queue is empty again). So only the delivery
  leg is timed: what xproxyd adds to it, not Postfix's reception. Both paths take turns
  in every round, the first one alternating; medians over ROUNDS, ratio of the medians.
  xproxyd's CPU time per message in the same timed runs (all threads, schedstat) is
  printed beside.

  After the rounds xproxyd gets SIGHUP and the script prints its event=outbound_stats
  (MX cache hits, misses, hit rate) and event=egress_stats lines (messages relayed per
  pool member): counted since start, the warm-up included. xproxyd logs at its default
  level, info (a line or two per session and per transaction), as Postfix logs each
  delivery in both paths.

Env: XPROXY_BUILD_DIR, SIZES (subset of 2k,100k; default both), MESSAGES_SMALL (2000),
MESSAGES_LARGE (500), ROUNDS (5), SESSIONS (20), DOMAINS (6, at most 26),
XPROXYD_ARGS (extra xproxyd options, e.g. "--threads 2"), LOG_LEVEL (xproxyd's, default
info; above info it writes neither the figures nor the lines counted after SIGHUP).
Needs root, nsd, Postfix.
MODE=strace: no rounds; xproxyd's system calls per message (strace -c -f attached for one
drain through it of COUNT_MESSAGES_SMALL/LARGE messages, default 200/50, after a
warm-up), by call: a load-independent figure on a busy machine."""

import os
import re
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from harness import Postfix, free_port, read_text, standalone, wait_for_port, wait_until  # noqa: E402
from xproxyd_helpers import Nsd, Xproxyd  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import cpu_ns, queued_files, raise_fd_limit, strace_attach, strace_calls  # noqa: E402
from counting_sink import CountingSink  # noqa: E402

SMALL = int(os.environ.get("MESSAGES_SMALL", "2000"))
LARGE = int(os.environ.get("MESSAGES_LARGE", "500"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
SESSIONS = int(os.environ.get("SESSIONS", "20"))
DOMAINS = int(os.environ.get("DOMAINS", "6"))
SIZES = os.environ.get("SIZES", "2k,100k").split(",")
MODE = os.environ.get("MODE", "")
LOG_LEVEL = os.environ.get("LOG_LEVEL", "info")
if MODE == "strace":
    SMALL = int(os.environ.get("COUNT_MESSAGES_SMALL", "200"))
    LARGE = int(os.environ.get("COUNT_MESSAGES_LARGE", "50"))
elif MODE:
    raise SystemExit("MODE: strace or empty")
ALL_SIZES = (("2k", "2 KiB", 2048, SMALL), ("100k", "100 KiB", 102400, LARGE))
TARGET = 0.90

MX_HOSTS = ("127.0.0.31", "127.0.0.32", "127.0.0.33")
EGRESSES = (("clean", "127.0.0.41"), ("bulk", "127.0.0.42"), ("warm", "127.0.0.43"))
SENDERS = ("a@src.out.test", "bulk@src.out.test")  # the second one goes to the bulk listener


def domains():
    """(domain, index of its MX host) for each recipient domain."""
    return [("%s.out.test" % chr(ord("a") + i), i % len(MX_HOSTS)) for i in range(DOMAINS)]


def zone():
    lines = ["$ORIGIN out.test.", "$TTL 300", "@ IN SOA ns1 hostmaster 1 3600 600 86400 60", "@ IN NS ns1",
             "ns1 IN A 127.0.0.1"]
    lines += ["mx%d IN A %s" % (i + 1, a) for i, a in enumerate(MX_HOSTS)]
    lines += ["%s IN MX 10 mx%d" % (d.split(".")[0], h + 1) for d, h in domains()]
    return "\n".join(lines) + "\n"


def plan(n):
    """The injection of n messages: [(sender, domain, count)], domains and senders in turn."""
    groups = [(s, d) for d, _ in domains() for s in SENDERS]
    return [(s, d, n // len(groups) + (1 if i < n % len(groups) else 0)) for i, (s, d) in enumerate(groups)]


def source_postfix(sb, procs, name, route):
    """A source Postfix instance; route: main.cf lines choosing where mail goes."""
    cfg = {"default_transport": "bench", "bench_destination_concurrency_limit": str(SESSIONS),
           "default_process_limit": "100", "smtpd_client_connection_count_limit": "0",
           "smtpd_client_connection_rate_limit": "0",
           # Everything received waits on hold until the measurement releases it.
           "smtpd_end_of_data_restrictions": "check_client_access static:HOLD",
           "queue_run_delay": "300s", "minimal_backoff_time": "300s", "maximal_backoff_time": "600s"}
    cfg.update(route)
    return Postfix(sb, procs, name, free_port(), main_cf=cfg,
                   services=["bench unix - - n - %d smtp" % SESSIONS]).start()


def inject(pf, n, size):
    """n messages of size bytes into pf, all left on hold."""
    before = queued_files(pf, ("hold",))
    runs = []
    for sender, domain, count in plan(n):
        if count:
            runs.append(subprocess.Popen(["smtp-source", "-s", "2", "-m", str(count), "-l", str(size), "-f", sender,
                                          "-t", "u@%s" % domain, "127.0.0.1:%d" % pf.port],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    for r in runs:
        _, err = r.communicate(timeout=600)
        if r.returncode != 0:
            raise RuntimeError("smtp-source failed: %s" % err.decode("utf-8", "replace"))
    wait_until(lambda: queued_files(pf, ("hold",)) == before + n, 120, 0.05, "%d messages on hold" % n)
    wait_until(lambda: queued_files(pf, ("maildrop", "incoming", "active", "deferred")) == 0, 60, 0.05,
               "nothing but the held messages queued")


def drain(pf, n, sinks, xp=None):
    """Release the held messages: (seconds until the sinks had all n, xproxyd CPU us/msg)."""
    want = [s.read()[0] for s in sinks]
    for _, domain, count in plan(n):
        want[dict(domains())[domain]] += count
    mark = pf.log_mark()

    def check():
        m = re.search(r"status=(deferred|bounced).*", pf.log()[mark:])
        if m:
            raise RuntimeError("%s: %s; see %s" % (pf.name, m.group(0), pf.maillog))
    c0 = cpu_ns(xp.proc.pid) if xp else 0
    t0 = time.monotonic()
    subprocess.run(["postsuper", "-c", pf.conf, "-H", "ALL"], check=True, capture_output=True, timeout=120)
    subprocess.run(["postqueue", "-c", pf.conf, "-f"], check=True, capture_output=True, timeout=60)
    last = max(s.wait(w, 600, check, "messages at %s" % s.host) for s, w in zip(sinks, want))
    wait_until(lambda: queued_files(pf) == 0, 60, 0.01, "an empty queue in %s" % pf.name)
    cpu = (cpu_ns(xp.proc.pid) - c0) / n / 1000.0 if xp else 0.0
    return last - t0, cpu


def stats(xp):
    """xproxyd's figures after SIGHUP: (outbound_stats fields, [egress_stats fields])."""
    mark = len(xp.log())
    xp.proc.send_signal(signal.SIGHUP)
    last_pool = "pool=bulk egress=%s " % EGRESSES[-1][0]
    if LOG_LEVEL not in ("info", "debug"):
        return {}, []
    wait_until(lambda: last_pool in xp.log()[mark:], 10, 0.05, "xproxyd's egress_stats lines")
    text = xp.log()[mark:]
    kv = lambda line: dict(re.findall(r"(\w+)=(\S+)", line))
    outbound = [kv(l) for l in text.splitlines() if "event=outbound_stats" in l]
    egress = [kv(l) for l in text.splitlines() if "event=egress_stats" in l]
    return outbound[-1] if outbound else {}, egress


def main():
    raise_fd_limit()
    with standalone("xproxyd-outbound-bench") as (sb, procs):
        nsd = Nsd(sb, procs, {"out.test": zone()})
        mx_port = free_port(MX_HOSTS[0])
        sinks = [CountingSink(procs, mx_port, host=h, name="mx%d" % (i + 1)) for i, h in enumerate(MX_HOSTS)]
        for s in sinks:
            wait_for_port(s.host, mx_port)
        bulk_port = free_port()
        xp = Xproxyd(sb, procs, ["internet destinations=mx mx-port=%d tls=may" % mx_port], log_level=LOG_LEVEL,
                     extra=["--listen", "inet:127.0.0.1:%d internet risk=bulk" % bulk_port]
                     + [a for name, addr in EGRESSES for a in ("--egress", "%s address=%s helo=%s.out.test"
                                                               % (name, addr, name))]
                     + ["--pool", "default clean", "--pool", "bulk bulk,warm", "--refused-destinations", "none"]
                     + nsd.dns_args + os.environ.get("XPROXYD_ARGS", "").split())
        transport = ", ".join("%s=bench:[%s]:%d" % (d, MX_HOSTS[h], mx_port) for d, h in domains())
        direct = source_postfix(sb, procs, "direct", {"transport_maps": "inline:{ %s }" % transport})
        via = source_postfix(sb, procs, "via-xproxyd", {
            "relayhost": "[127.0.0.1]:%d" % xp.port,
            "sender_dependent_relayhost_maps": "inline:{ %s=[127.0.0.1]:%d }" % (SENDERS[1], bulk_port)})
        paths = [("direct", direct, None), ("xproxyd", via, xp)]
        if MODE == "strace":
            count_calls(sb, via, sinks, xp)
        else:
            rounds(paths, sinks, xp)


def count_calls(sb, via, sinks, xp):
    print("xproxyd outbound: system calls per message of xproxyd (strace -c -f), Postfix delivering held "
          "messages through it (%d domains, %d MX hosts, 2 senders, at most %d connections), after a warm-up"
          % (DOMAINS, len(MX_HOSTS), SESSIONS), flush=True)
    for key, label, size, n in ALL_SIZES:
        if key not in SIZES:
            continue
        inject(via, min(n, 60), size)
        drain(via, min(n, 60), sinks, xp)
        inject(via, n, size)
        trace = sb.path("xproxyd-%s.strace" % key)
        st = strace_attach(xp.proc.pid, trace)
        drain(via, n, sinks, xp)
        calls = strace_calls(st, trace)
        top = sorted(((v / n, k) for k, v in calls.items() if k != "total" and v / n >= 0.05), reverse=True)
        print("%-8s %d messages: xproxyd system calls per message %.1f (%s)"
              % (label, n, calls.get("total", 0) / n, ", ".join("%s %.1f" % (k, v) for v, k in top)), flush=True)
    print_stats(xp)


def rounds(paths, sinks, xp):
    print("xproxyd outbound benchmark: Postfix delivering N held messages (one recipient each, %d domains on "
          "%d MX hosts, 2 senders) over at most %d connections, directly (transport_maps) or through xproxyd "
          "(relayhost; MX lookup via NSD; pools default and bulk); time = release to the last message at the "
          "sinks; first path alternated each round, median of %d rounds; xproxyd CPU = its CPU time per "
          "message in the same runs" % (DOMAINS, len(MX_HOSTS), SESSIONS, ROUNDS), flush=True)
    summary = []
    for key, label, size, n in ALL_SIZES:
        if key not in SIZES:
            continue
        for _, pf, x in paths:  # warm-up: processes, connections, the MX cache
            inject(pf, min(n, 60), size)
            drain(pf, min(n, 60), sinks, x)
        rates = {name: [] for name, _, _ in paths}
        cpus = []
        for r in range(ROUNDS):
            order = paths if r % 2 == 0 else paths[::-1]
            for name, pf, x in order:
                inject(pf, n, size)
                secs, cpu = drain(pf, n, sinks, x)
                rates[name].append(n / secs)
                if x:
                    cpus.append(cpu)
            print("%-8s round %d (%s): direct %.0f msg/s | xproxyd %.0f msg/s | xproxyd CPU %.0f us/msg"
                  % (label, r + 1, " ".join(p[0] for p in order), rates["direct"][-1], rates["xproxyd"][-1],
                     cpus[-1]), flush=True)
        d, v = statistics.median(rates["direct"]), statistics.median(rates["xproxyd"])
        summary.append((label, n, d, v, v / d, statistics.median(cpus)))
    print("\n%-8s %8s %12s %13s %6s %7s %8s %18s" % ("size", "messages", "direct msg/s", "xproxyd msg/s",
                                                   "ratio", "target", "met", "xproxyd CPU/msg"))
    for label, n, d, v, ratio, cpu in summary:
        print("%-8s %8d %12.0f %13.0f %6.2f %7s %8s %15.0f us" % (label, n, d, v, ratio, ">= %.2f" % TARGET,
                                                                 "met" if ratio >= TARGET else "not met", cpu))
    print_stats(xp)


def print_stats(xp):
    outbound, egress = stats(xp)
    if not egress:
        print("\nxproxyd's figures not shown: it logs them at level info (LOG_LEVEL=%s)" % LOG_LEVEL, flush=True)
        return
    print("\nxproxyd after SIGHUP (since start, warm-up included): MX cache hits %s, misses %s, hit rate %s"
          % (outbound.get("mx_cache_hits", "?"), outbound.get("mx_cache_misses", "?"),
             outbound.get("mx_cache_hit_rate", "?")))
    for e in egress:
        print("  pool %-8s egress %-6s source %-11s weight %s relayed %s"
              % (e.get("pool"), e.get("egress"), e.get("source"), e.get("weight"), e.get("relayed")))
    print("  relayed in all %d" % sum(int(e.get("relayed", 0)) for e in egress))
    log = read_text(xp.log_path)
    opened, transactions = log.count("event=downstream_open "), log.count("event=mail ")
    print("  MX connections opened %d for %d transactions (%.2f per transaction)"
          % (opened, transactions, opened / transactions if transactions else 0), flush=True)


if __name__ == "__main__":
    main()
