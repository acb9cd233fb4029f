"""xproxyd_bench: xproxyd's throughput and memory, each figure next to its reference
measured in the same run (see xproxyd_bench.sh for the targets).

  throughput  smtp-source -> smtp-sink                      (direct)
              smtp-source -> xproxyd -> smtp-sink           (cut-through, fast path)
              smtp-source -> HAProxy -> smtp-sink           (a plain TCP relay: HAProxy in
                                                             mode tcp, as Debian ships it;
                                                             what any relay hop costs here)
              smtp-source -> Postfix -> smtp-sink           (store-and-forward hop)
              for 2 KiB, 100 KiB and 1 MiB messages. The sink discards the mail (smtp-sink
              without -d: a sink that writes files makes every path as slow as the disk and
              hides what the relay costs) and counts it (smtp-sink -c, read by
              bench/counting_sink.py). A measurement runs from the start of smtp-source until
              the sink has received the last message and, for the Postfix hop, its queue is
              empty again. The four paths take turns in every round, their order rotated by
              one place per round; medians over ROUNDS, ratios of medians of the same run.
  relay CPU   the CPU time xproxyd and HAProxy spent per message in the same timed runs
              (all their threads, from /proc/PID/task/*/schedstat): on a machine where
              client, relay and sink share few cores this is the fairer figure of what
              the relay costs; median over ROUNDS, and their ratio.
  memory      xproxyd's resident size with 1,000 and 5,000 idle sessions (greeting read,
              nothing sent), per session = growth / sessions.
Env: XPROXY_BUILD_DIR, SESSIONS (20 parallel smtp-source sessions), MESSAGES_SMALL (6000),
MESSAGES_LARGE (1000), MESSAGES_HUGE (100), ROUNDS (5; medians reported), XPROXYD_ARGS
(extra xproxyd options, e.g. "--threads 2"), PATHS (comma-separated subset of
direct,xproxyd,haproxy,postfix; default all), SIZES (subset of 2k,100k,1m; default all),
IDLE (0: skip the idle-session measurement).
Counting modes (no throughput rounds; each runs xproxyd and HAProxy one after the other
for COUNT_MESSAGES_SMALL/LARGE/HUGE messages, default 200/50/10, after a warm-up):
  MODE=callgrind  both relays under valgrind --tool=callgrind: instructions per message
                  (counters zeroed after the warm-up, dumped after the load; load-independent)
  MODE=strace     strace -c -f attached for the load: system calls per message, by call"""

import glob
import os
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from harness import HAProxy, Postfix, binary, haproxy_config, free_port, standalone, wait_for_port, wait_until  # noqa: E402
from xproxyd_helpers import Xproxyd  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import cpu_ns, queued_files, raise_fd_limit, strace_attach, strace_calls  # noqa: E402
from counting_sink import CountingSink  # noqa: E402

SESSIONS = int(os.environ.get("SESSIONS", "20"))
SMALL = int(os.environ.get("MESSAGES_SMALL", "6000"))
LARGE = int(os.environ.get("MESSAGES_LARGE", "1000"))
HUGE = int(os.environ.get("MESSAGES_HUGE", "100"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
PATHS = os.environ.get("PATHS", "direct,xproxyd,haproxy,postfix").split(",")
SIZES = os.environ.get("SIZES", "2k,100k,1m").split(",")
IDLE = os.environ.get("IDLE", "1") != "0"
MODE = os.environ.get("MODE", "")
COUNTS = (int(os.environ.get("COUNT_MESSAGES_SMALL", "200")), int(os.environ.get("COUNT_MESSAGES_LARGE", "50")),
          int(os.environ.get("COUNT_MESSAGES_HUGE", "10")))
ALL_SIZES = (("2k", "2 KiB", 2048, SMALL), ("100k", "100 KiB", 102400, LARGE), ("1m", "1 MiB", 1048576, HUGE))
XPROXYD_OPTS = ["--max-sessions", "6000", "--max-sessions-per-client", "6000"]


def run_load(port, n, size, sink, pf=None):
    """smtp-source n messages of `size` bytes: seconds until the sink has them all (and,
    through Postfix pf, until its queue is empty again)."""
    before = sink.read()[0]
    t0 = time.monotonic()
    r = subprocess.run(["smtp-source", "-s", str(SESSIONS), "-m", str(n), "-l", str(size), "-f", "a@example.org",
                        "-t", "b@example.net", "127.0.0.1:%d" % port], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError("smtp-source failed: %s" % r.stderr)
    check = None
    if pf is not None:
        def check():
            if sum(len(f) for _, _, f in os.walk(os.path.join(pf.spool, "deferred"))):
                raise RuntimeError("messages deferred by Postfix; see %s" % pf.maillog)
    last = sink.wait(before + n, 600, check, "%d messages of %d bytes at the sink" % (n, size))
    if pf is not None:
        wait_until(lambda: queued_files(pf) == 0, 60, 0.01, "an empty Postfix queue")
    return last - t0


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def idle_sessions(port, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        socks.append(s)
    for s in socks:
        s.settimeout(10)
        buf = b""
        while not buf.endswith(b"\r\n"):
            buf += s.recv(512)
    return socks


def sizes():
    return [s for s in ALL_SIZES if s[0] in SIZES]


def xproxyd_downstream(sink):
    return ["sink destinations=127.0.0.1:%d encoding=xforward" % sink.port]


def throughput(sb, procs, sink):
    # The idle-session measurement holds 5,000 sessions from one address: above the
    # default session limits, as Postfix's connection limits are lifted below.
    xp = Xproxyd(sb, procs, xproxyd_downstream(sink), log_level="warning",
                 extra=XPROXYD_OPTS + os.environ.get("XPROXYD_ARGS", "").split())
    paths = []
    for name in PATHS:
        if name == "direct":
            paths.append(("direct", sink.port, None, None))
        elif name == "xproxyd":
            paths.append(("xproxyd", xp.port, None, xp.proc.pid))
        elif name == "haproxy":
            hp = HAProxy(sb, procs, sink.port, mode=None)
            paths.append(("haproxy", hp.port, None, hp.proc.pid))
        elif name == "postfix":
            pf = Postfix(sb, procs, "hop", free_port(), relay_port=sink.port,
                         main_cf={"smtp_send_xforward_command": "yes", "default_process_limit": "100",
                                  "smtpd_client_connection_count_limit": "0",
                                  "smtpd_client_connection_rate_limit": "0"})
            pf.start()
            paths.append(("postfix", pf.port, pf, None))
        else:
            raise SystemExit("PATHS: unknown path %r" % name)
    names = [p[0] for p in paths]
    print("xproxyd benchmark: %d parallel smtp-source sessions, one message and recipient per session, "
          "downstream encoding xforward, discarding smtp-sink; time = smtp-source start to the last message "
          "at the sink (Postfix hop: and its queue empty); order rotated each round, median of %d rounds; "
          "relay CPU = CPU time of the relay process per message in the same runs"
          % (SESSIONS, ROUNDS), flush=True)
    summary = []
    for _, label, size, n in sizes():
        for _, port, hop, _ in paths:  # warm-up
            run_load(port, min(n, 50), size, sink, hop)
        rounds = {name: [] for name in names}
        cpu = {name: [] for name in names}
        for r in range(ROUNDS):
            k = r % len(paths)
            order = paths[k:] + paths[:k]
            for name, port, hop, pid in order:
                c0 = cpu_ns(pid) if pid else 0
                rounds[name].append(n / run_load(port, n, size, sink, hop))
                if pid:
                    cpu[name].append((cpu_ns(pid) - c0) / n / 1000.0)
            print("%-8s round %d (%s): %s" % (label, r + 1, " ".join(p[0] for p in order),
                  " ".join("%s %.0f" % (name, rounds[name][-1]) for name in names)
                  + "".join(" | %s CPU %.0f us/msg" % (name, cpu[name][-1]) for name in names if cpu[name])),
                  flush=True)
        med = {name: statistics.median(rounds[name]) for name in names}
        mcpu = {name: statistics.median(cpu[name]) for name in names if cpu[name]}
        line = "%-8s %d messages: %s" % (label, n, " | ".join("%s %6.0f msg/s" % (name, med[name]) for name in names))
        ratios = []
        haproxy_target = ">= 1.5" if size < 102400 else ">= 1.0"
        direct_target = " (target >= 0.90)" if size >= 102400 else ""
        if "xproxyd" in med and "direct" in med:
            ratios.append("xproxyd/direct %.2f%s" % (med["xproxyd"] / med["direct"], direct_target))
        if "xproxyd" in med and "haproxy" in med:
            ratios.append("xproxyd/HAProxy %.2f (target %s)" % (med["xproxyd"] / med["haproxy"], haproxy_target))
        if "haproxy" in med and "direct" in med:
            ratios.append("HAProxy/direct %.2f" % (med["haproxy"] / med["direct"]))
        if "xproxyd" in med and "postfix" in med:
            ratios.append("xproxyd/Postfix %.1fx (target >= 3)" % (med["xproxyd"] / med["postfix"]))
        if mcpu:
            c = "relay CPU per message: " + " | ".join("%s %.0f us" % (name, v) for name, v in mcpu.items())
            if "xproxyd" in mcpu and "haproxy" in mcpu and mcpu["xproxyd"] > 0:
                c += " | HAProxy/xproxyd %.2f (above 1: xproxyd spends less)" % (mcpu["haproxy"] / mcpu["xproxyd"])
            ratios.append(c)
        summary.append(line + "".join("\n         " + r for r in ratios))
    print("\n".join(summary), flush=True)
    if not IDLE:
        return
    base = rss_kib(xp.proc.pid)
    for n in (1000, 5000):
        socks = idle_sessions(xp.port, n)
        time.sleep(0.5)
        grown = rss_kib(xp.proc.pid) - base
        print("idle sessions %5d: xproxyd RSS %d KiB (+%d KiB), %.1f KiB per session (target <= 64)"
              % (n, rss_kib(xp.proc.pid), grown, grown / n))
        for s in socks:
            s.close()
        time.sleep(1)


def relay_argv(sb, which, port, sink):
    if which == "xproxyd":
        spool = sb.mkdir("count-spool-%d" % port, mode=0o700)
        return [binary("xproxyd/xproxyd"), "--log", "stderr", "--log-level", "warning", "--listen",
                "inet:127.0.0.1:%d" % port, "--spool-dir", spool, "--hostname", "xproxyd.test.invalid",
                "--trusted-upstreams", "127.0.0.1/32", "--downstream", xproxyd_downstream(sink)[0]] \
            + XPROXYD_OPTS + os.environ.get("XPROXYD_ARGS", "").split()
    return ["haproxy", "-db", "-f", haproxy_config(sb, port, sink.port)]


def count_one(sb, procs, sink, which, size, n):
    """Instructions (callgrind) or system calls (strace) of one relay per message."""
    port = free_port()
    argv = relay_argv(sb, which, port, sink)
    out = sb.path("count-%s-%d" % (which, port))
    if MODE == "callgrind":
        argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=%s.%%p" % out, "--dump-line=no"] + argv
    proc = procs.start("count-" + which, argv, stdout=open(out + ".log", "wb"))
    wait_for_port("127.0.0.1", port, timeout=60)
    run_load(port, min(n, 20), size, sink)  # warm-up: connections, pools, code paths
    if MODE == "callgrind":
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True, timeout=60)
        run_load(port, n, size, sink)
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True, timeout=60)
        dumps = sorted(glob.glob(out + ".%d.*" % proc.pid), key=os.path.getmtime)
        total = 0
        with open(dumps[-1]) as f:
            for line in f:
                if line.startswith("summary:") or line.startswith("totals:"):
                    total = int(line.split()[1])
        result = {"instructions": total / n}
    else:
        trace = out + ".strace"
        st = strace_attach(proc.pid, trace)
        run_load(port, n, size, sink)
        result = {k: v / n for k, v in strace_calls(st, trace).items()}
    procs.stop(proc)
    return result


def counting(sb, procs, sink):
    what = "instructions" if MODE == "callgrind" else "system calls"
    print("xproxyd %s per message next to HAProxy's (plain TCP relay), same sink and smtp-source load "
          "(%d sessions, one message per connection), after a warm-up" % (what, SESSIONS), flush=True)
    for (key, label, size, _), n in zip(ALL_SIZES, COUNTS):
        if key not in SIZES:
            continue
        res = {which: count_one(sb, procs, sink, which, size, n) for which in ("xproxyd", "haproxy")}
        if MODE == "callgrind":
            x, h = res["xproxyd"]["instructions"], res["haproxy"]["instructions"]
            print("%-8s %d messages: instructions per message: xproxyd %.0f | HAProxy %.0f | HAProxy/xproxyd %.2f"
                  % (label, n, x, h, h / x if x else 0), flush=True)
        else:
            for which in ("xproxyd", "haproxy"):
                calls = res[which]
                top = sorted(((v, k) for k, v in calls.items() if k != "total" and v >= 0.05), reverse=True)
                print("%-8s %d messages: %s system calls per message %.1f (%s)"
                      % (label, n, which, calls.get("total", 0), ", ".join("%s %.1f" % (k, v) for v, k in top)),
                      flush=True)


def main():
    raise_fd_limit()
    with standalone("xproxyd-bench") as (sb, procs):
        sink = CountingSink(procs, free_port())
        wait_for_port("127.0.0.1", sink.port)
        if MODE in ("callgrind", "strace"):
            counting(sb, procs, sink)
        elif MODE:
            raise SystemExit("MODE: callgrind, strace or empty")
        else:
            throughput(sb, procs, sink)


if __name__ == "__main__":
    main()
