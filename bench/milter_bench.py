#!/usr/bin/env python3
"""milter_bench.py: Postfix throughput with and without xproxy-milter, in one run.

smtp-source (-s SESSIONS -m MESSAGES -l 1024) -> Postfix -> counting sink, one private
Postfix per configuration, all started once and measured in ROUNDS rounds:
  none             Postfix without a milter (the reference every ratio is taken against)
  xproxy-unix      xproxy-milter inject mode on a unix socket
  xproxy-tcp       xproxy-milter inject mode on 127.0.0.1 TCP (TCP_NODELAY)
  floor-unix       bench/milter_floor on a unix socket: a libmilter filter that asks for
                   nothing but the end of message and inserts one header, i.e. what the
                   milter protocol itself costs Postfix (the floor for any header-adding filter)
  floor-tcp        the same on 127.0.0.1 TCP
  opendkim-tcp     Debian's opendkim signing (rsa-sha256) on 127.0.0.1 TCP, as a reference
Two workloads: one message per SMTP session (smtp-source's default: every message also
pays the milter connection set-up) and persistent sessions (smtp-source -d).

How it measures, so that no configuration is favoured by its place in the run:
- The time is end to end: from the start of smtp-source until the sink that every Postfix
  relays to has received the final dot of the last message (smtp-sink -c, discarding the
  mail; bench/counting_sink.py notes when its count last grew). The time Postfix takes to
  accept the mail (smtp-source's wall time, the figure this script used to report) is
  printed beside it.
- Between two measurements the queue is drained: the sink count is reached and the
  Postfix queue (incoming, active, deferred, maildrop, hold) is empty, confirmed by
  `postqueue -p`; a deferred message stops the run.
- The order of the configurations changes every round: rotated by one place (ORDER=rotate,
  the default) or shuffled (ORDER=shuffle, with SEED, printed, to repeat a run).
- Medians over the rounds, and each configuration's ratio to `none` measured in the same
  run (target for xproxy-milter: >= 0.90) and, for xproxy-milter, to the floor filter on
  the same transport; the CPU time of the milter processes per 1000 messages too.
Env: XPROXY_BUILD_DIR, MESSAGES (500), SESSIONS (20), ROUNDS (3), ORDER (rotate), SEED."""

import os
import random
import statistics
import subprocess
import sys
import time

MESSAGES = int(os.environ.get("MESSAGES", "500"))
SESSIONS = int(os.environ.get("SESSIONS", "20"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
ORDER = os.environ.get("ORDER", "rotate")
QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")


# ---------------------------------------------------------------- the measured parts

def start_opendkim(sb, procs):
    d = sb.mkdir("dkim", mode=0o700)
    subprocess.run(["opendkim-genkey", "-D", d, "-d", "sender.example", "-s", "bench", "-b", "2048"], check=True)
    port = free_port()
    conf = sb.write("dkim/opendkim.conf", "\n".join([
        "Syslog no", "Socket inet:%d@127.0.0.1" % port, "Domain sender.example", "Selector bench",
        "KeyFile %s/bench.private" % d, "Mode s", "InternalHosts 127.0.0.0/8", "PidFile %s/pid" % d,
        "RequireSafeKeys false", "Canonicalization relaxed/simple", ""]))
    procs.start("opendkim", ["opendkim", "-f", "-x", conf])
    wait_for_port("127.0.0.1", port, timeout=20)
    return "inet:127.0.0.1:%d" % port


def start_floor(sb, procs, unix):
    """bench/milter_floor on a unix socket or 127.0.0.1 TCP: (Postfix milter spec, pid)."""
    if unix:
        path = sb.path("floor.sock")
        p = procs.start("milter-floor-unix", [binary("bench/milter_floor"), "unix:" + path])
        wait_until(lambda: os.path.exists(path), 15, 0.05, "milter_floor socket")
        os.chmod(path, 0o666)
        return "unix:" + path, p.pid
    port = free_port()
    p = procs.start("milter-floor-tcp", [binary("bench/milter_floor"), "inet:%d@127.0.0.1" % port])
    wait_for_port("127.0.0.1", port, timeout=15)
    return "inet:127.0.0.1:%d" % port, p.pid


def cpu_seconds(pid):
    """User + system CPU seconds of a process (all its threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def queued_files(pf):
    n = 0
    for q in QUEUES:
        for _, _, files in os.walk(os.path.join(pf.spool, q)):
            n += len(files)
    return n


def drain(pf, sink, expect, what):
    """Wait until the sink has `expect` messages and pf's queue is empty; return the
    monotonic time the sink received the last message."""
    def no_deferral():  # a deferred message would leave the count short for minutes
        deferred = sum(len(files) for _, _, files in os.walk(os.path.join(pf.spool, "deferred")))
        if deferred:
            raise RuntimeError("%s: %d message(s) deferred; see %s" % (what, deferred, pf.maillog))
    last = sink.wait(expect, 600, no_deferral, "%s: messages at the sink" % what)
    wait_until(lambda: queued_files(pf) == 0, 60, 0.01, "%s: an empty queue" % what)
    r = subprocess.run(["postqueue", "-c", pf.conf, "-p"], capture_output=True, text=True, timeout=60)
    if "Mail queue is empty" not in r.stdout:
        raise RuntimeError("%s: queue not empty: %s%s" % (what, r.stdout, r.stderr))
    return last


def round_order(names, r, rng):
    if ORDER == "shuffle":
        order = list(names)
        rng.shuffle(order)
        return order
    k = r % len(names)
    return names[k:] + names[:k]


def main():
    if os.geteuid() != 0:
        sys.exit("milter_bench: needs root (Postfix)")
    if ORDER not in ("rotate", "shuffle"):
        sys.exit("milter_bench: ORDER is rotate or shuffle")
    seed = int(os.environ.get("SEED") or random.SystemRandom().randrange(1 << 31))
    rng = random.Random(seed)
    with standalone("milter-bench") as (sb, procs):
        sink = CountingSink(procs, free_port())
        wait_for_port("127.0.0.1", sink.port)
        mu = Milter(sb, procs, "xproxy-unix", "inject", ["--log", "off"], unix=True)
        mt = Milter(sb, procs, "xproxy-tcp", "inject", ["--log", "off"])
        floor_unix, floor_unix_pid = start_floor(sb, procs, True)
        floor_tcp, floor_tcp_pid = start_floor(sb, procs, False)
        configs = [("none", None), ("xproxy-unix", mu.postfix), ("floor-unix", floor_unix),
                   ("xproxy-tcp", mt.postfix), ("floor-tcp", floor_tcp)]
        try:
            configs.append(("opendkim-tcp", start_opendkim(sb, procs)))
        except (OSError, subprocess.CalledProcessError, TimeoutError) as e:
            print("opendkim not available (%s); install opendkim opendkim-tools" % e)
        instances = {}
        for name, milter in configs:
            cf = {"default_process_limit": "200", "smtpd_client_connection_count_limit": "0",
                  "smtpd_client_event_limit_exceptions": "127.0.0.0/8"}
            if milter:
                cf.update({"smtpd_milters": milter, "milter_default_action": "tempfail"})
            pf = Postfix(sb, procs, "pf-" + name, free_port(), relay_port=sink.port, main_cf=cf)
            pf.start()
            instances[name] = pf
        names = [name for name, _ in configs]
        milter_pid = {"xproxy-unix": mu.proc.pid, "xproxy-tcp": mt.proc.pid, "floor-unix": floor_unix_pid,
                      "floor-tcp": floor_tcp_pid}
        workloads = [("1 message per session", []), ("persistent sessions (-d)", ["-d"])]

        def run(name, n, wargs):
            """n messages through configuration `name`: (end-to-end s, accept-only s)."""
            pf = instances[name]
            before = sink.read()[0]
            if queued_files(pf):
                raise RuntimeError("%s: queue not empty before the run" % name)
            t0 = time.monotonic()
            subprocess.run(["/usr/sbin/smtp-source", "-s", str(SESSIONS), "-m", str(n), "-l", "1024",
                            "-f", "a@sender.example", "-t", "b@rcpt.example"] + wargs + ["127.0.0.1:%d" % pf.port],
                           check=True, timeout=600)
            accepted = time.monotonic() - t0
            last = drain(pf, sink, before + n, name)
            return last - t0, accepted

        print("milter benchmark: %d messages of 1 KiB per measurement, %d sessions, %d rounds, order %s%s; "
              "time = smtp-source start to the last message at the sink, queue drained between measurements"
              % (MESSAGES, SESSIONS, ROUNDS, ORDER, " (SEED=%d)" % seed if ORDER == "shuffle" else ""), flush=True)
        for name in names:  # warm-up
            run(name, 50, [])
        summary = []
        for wname, wargs in workloads:
            e2e = {name: [] for name in names}
            acc = {name: [] for name in names}
            cpu = {name: 0.0 for name in milter_pid}
            for r in range(ROUNDS):
                order = round_order(names, r, rng)
                print("%s, round %d, order: %s" % (wname, r + 1, " ".join(order)), flush=True)
                for name in order:
                    c0 = cpu_seconds(milter_pid[name]) if name in milter_pid else 0
                    total, accepted = run(name, MESSAGES, wargs)
                    if name in milter_pid:
                        cpu[name] += cpu_seconds(milter_pid[name]) - c0
                    e2e[name].append(MESSAGES / total)
                    acc[name].append(MESSAGES / accepted)
                    print("  %-13s %7.1f msg/s end to end (%7.1f accepted)" % (name, e2e[name][-1], acc[name][-1]),
                          flush=True)
            base = statistics.median(e2e["none"])
            base_acc = statistics.median(acc["none"])
            summary.append("== %s: median of %d rounds, %d messages of 1 KiB, %d sessions; ratio to `none` "
                           "in this run (end to end | accept-only)" % (wname, ROUNDS, MESSAGES, SESSIONS))
            for name in names:
                med = statistics.median(e2e[name])
                med_acc = statistics.median(acc[name])
                extra = ""
                if name in milter_pid:
                    extra = "  milter CPU %.2f s/1000 msg" % (cpu[name] * 1000 / (MESSAGES * ROUNDS))
                if name.startswith("xproxy"):
                    floor = statistics.median(e2e[name.replace("xproxy", "floor")])
                    extra += "  (target >= 0.90; %.2f of the floor filter)" % (med / floor)
                summary.append("%-13s %7.1f msg/s  ratio %.2f | accepted %7.1f msg/s  ratio %.2f%s"
                               % (name, med, med / base, med_acc, med_acc / base_acc, extra))
        print("\n".join(summary))


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from harness import Postfix, binary, free_port, standalone, wait_for_port, wait_until  # noqa: E402
from milter_util import Milter  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from counting_sink import CountingSink  # noqa: E402

if __name__ == "__main__":
    main()
