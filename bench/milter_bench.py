#!/usr/bin/env python3
"""milter_bench.py: Postfix throughput with and without xproxy-milter, in one run.

smtp-source (-s SESSIONS -m MESSAGES -l 1024) -> Postfix -> smtp-sink, one private
Postfix per configuration, all started once and measured in interleaved rounds (ROUNDS,
median reported) so that machine noise hits every configuration alike:
  none             Postfix without a milter (the reference)
  xproxy-unix      xproxy-milter inject mode on a unix socket
  xproxy-tcp       xproxy-milter inject mode on 127.0.0.1 TCP (TCP_NODELAY)
  floor-unix       bench/milter_floor on a unix socket: a libmilter filter that asks for
                   nothing but the end of message and inserts one header, i.e. what the
                   milter protocol itself costs Postfix (the floor for any header-adding filter)
  floor-tcp        the same on 127.0.0.1 TCP
  opendkim-tcp     Debian's opendkim signing (rsa-sha256) on 127.0.0.1 TCP, as a reference
Two workloads: one message per SMTP session (smtp-source's default: every message also
pays the milter connection set-up) and persistent sessions (smtp-source -d). The figure
is messages accepted per second by Postfix (smtp-source wall time), and each milter
configuration's ratio to `none` (target for xproxy-milter: >= 0.90) and, for xproxy-milter,
to the floor filter on the same transport; the CPU time of the xproxy-milter processes per
1000 messages is printed too.
Env: XPROXY_BUILD_DIR, MESSAGES (500), SESSIONS (20), ROUNDS (3)."""

import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from harness import Postfix, binary, free_port, standalone, wait_for_port, wait_until  # noqa: E402
from milter_util import Milter  # noqa: E402

MESSAGES = int(os.environ.get("MESSAGES", "500"))
SESSIONS = int(os.environ.get("SESSIONS", "20"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))


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


def main():
    if os.geteuid() != 0:
        sys.exit("milter_bench: needs root (Postfix)")
    with standalone("milter-bench") as (sb, procs):
        sink_port = free_port()
        procs.start("smtp-sink", ["/usr/sbin/smtp-sink", "-u", "nobody", "-c", "127.0.0.1:%d" % sink_port, "256"])
        wait_for_port("127.0.0.1", sink_port)
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
        instances = []
        for name, milter in configs:
            cf = {"default_process_limit": "200", "smtpd_client_connection_count_limit": "0",
                  "smtpd_client_event_limit_exceptions": "127.0.0.0/8"}
            if milter:
                cf.update({"smtpd_milters": milter, "milter_default_action": "tempfail"})
            pf = Postfix(sb, procs, "pf-" + name, free_port(), relay_port=sink_port, main_cf=cf)
            pf.start()
            instances.append((name, pf))
        milter_pid = {"xproxy-unix": mu.proc.pid, "xproxy-tcp": mt.proc.pid, "floor-unix": floor_unix_pid,
                      "floor-tcp": floor_tcp_pid}
        workloads = [("1 message per session", []), ("persistent sessions (-d)", ["-d"])]
        argv = ["/usr/sbin/smtp-source", "-s", str(SESSIONS), "-m", str(MESSAGES), "-l", "1024",
                "-f", "a@sender.example", "-t", "b@rcpt.example"]
        for name, pf in instances:  # warm-up
            subprocess.run(argv[:4] + ["50"] + argv[5:] + ["127.0.0.1:%d" % pf.port], check=True, timeout=300)
        summary = []
        for wname, wargs in workloads:
            results = {name: [] for name, _ in instances}
            cpu = {name: 0.0 for name in milter_pid}
            for r in range(ROUNDS):
                for name, pf in instances:
                    c0 = cpu_seconds(milter_pid[name]) if name in milter_pid else 0
                    t0 = time.monotonic()
                    subprocess.run(argv + wargs + ["127.0.0.1:%d" % pf.port], check=True, timeout=600)
                    rate = MESSAGES / (time.monotonic() - t0)
                    if name in milter_pid:
                        cpu[name] += cpu_seconds(milter_pid[name]) - c0
                    results[name].append(rate)
                    print("%s, round %d: %-13s %7.1f msg/s" % (wname, r + 1, name, rate), flush=True)
            base = statistics.median(results["none"])
            summary.append("== %s: median of %d rounds, %d messages of 1 KiB, %d sessions, one run"
                           % (wname, ROUNDS, MESSAGES, SESSIONS))
            for name, _ in instances:
                med = statistics.median(results[name])
                extra = ""
                if name in milter_pid:
                    extra = "  milter CPU %.2f s/1000 msg" % (cpu[name] * 1000 / (MESSAGES * ROUNDS))
                if name.startswith("xproxy"):
                    floor = statistics.median(results[name.replace("xproxy", "floor")])
                    extra += "  (target >= 0.90; %.2f of the floor filter)" % (med / floor)
                summary.append("%-13s %7.1f msg/s  ratio %.2f%s" % (name, med, med / base, extra))
        print("\n".join(summary))


if __name__ == "__main__":
    main()
