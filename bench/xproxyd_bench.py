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
  memory      xproxyd's resident size with 1,000 and 5,000 idle sessions (greeting read,
              nothing sent), per session = growth / sessions.
Env: XPROXY_BUILD_DIR, SESSIONS (20 parallel smtp-source sessions), MESSAGES_SMALL (6000),
MESSAGES_LARGE (1000), MESSAGES_HUGE (100), ROUNDS (5; medians reported), XPROXYD_ARGS
(extra xproxyd options, e.g. "--threads 2")."""

import os
import resource
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from harness import HAProxy, Postfix, free_port, standalone, wait_for_port, wait_until  # noqa: E402
from xproxyd_helpers import Xproxyd  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from counting_sink import CountingSink  # noqa: E402

SESSIONS = int(os.environ.get("SESSIONS", "20"))
SMALL = int(os.environ.get("MESSAGES_SMALL", "6000"))
LARGE = int(os.environ.get("MESSAGES_LARGE", "1000"))
HUGE = int(os.environ.get("MESSAGES_HUGE", "100"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")


def queued_files(pf):
    return sum(len(files) for q in QUEUES for _, _, files in os.walk(os.path.join(pf.spool, q)))


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


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    with standalone("xproxyd-bench") as (sb, procs):
        sink = CountingSink(procs, free_port())
        wait_for_port("127.0.0.1", sink.port)
        # The idle-session measurement holds 5,000 sessions from one address: above the
        # default session limits, as Postfix's connection limits are lifted below.
        xp = Xproxyd(sb, procs, ["sink destinations=127.0.0.1:%d encoding=xforward" % sink.port],
                     log_level="warning", extra=["--max-sessions", "6000", "--max-sessions-per-client", "6000"]
                     + os.environ.get("XPROXYD_ARGS", "").split())
        pf = Postfix(sb, procs, "hop", free_port(), relay_port=sink.port,
                     main_cf={"smtp_send_xforward_command": "yes", "default_process_limit": "100",
                              "smtpd_client_connection_count_limit": "0", "smtpd_client_connection_rate_limit": "0"})
        pf.start()
        hp = HAProxy(sb, procs, sink.port, mode=None)
        paths = [("direct", sink.port, None), ("xproxyd", xp.port, None), ("haproxy", hp.port, None),
                 ("postfix", pf.port, pf)]
        print("xproxyd benchmark: %d parallel smtp-source sessions, one message and recipient per session, "
              "downstream encoding xforward, discarding smtp-sink; time = smtp-source start to the last message "
              "at the sink (Postfix hop: and its queue empty); order rotated each round, median of %d rounds"
              % (SESSIONS, ROUNDS), flush=True)
        summary = []
        for label, size, n in (("2 KiB", 2048, SMALL), ("100 KiB", 102400, LARGE), ("1 MiB", 1048576, HUGE)):
            for _, port, hop in paths:  # warm-up
                run_load(port, min(n, 50), size, sink, hop)
            rounds = {name: [] for name, _, _ in paths}
            for r in range(ROUNDS):
                k = r % len(paths)
                order = paths[k:] + paths[:k]
                for name, port, hop in order:
                    rounds[name].append(n / run_load(port, n, size, sink, hop))
                print("%-8s round %d (%s): %s" % (label, r + 1, " ".join(name for name, _, _ in order),
                      " ".join("%s %.0f" % (name, rounds[name][-1]) for name, _, _ in paths)), flush=True)
            direct, proxied, relay, postfix = (statistics.median(rounds[k])
                                               for k in ("direct", "xproxyd", "haproxy", "postfix"))
            haproxy_target = ">= 1.5" if size < 102400 else ">= 1.0"
            direct_target = " (target >= 0.90)" if size >= 102400 else ""
            summary.append(
                "%-8s %d messages: direct %6.0f msg/s | xproxyd %6.0f | HAProxy TCP relay %6.0f | Postfix hop %6.0f\n"
                "         xproxyd/direct %.2f%s | xproxyd/HAProxy %.2f (target %s) | HAProxy/direct %.2f | "
                "xproxyd/Postfix %.1fx (target >= 3)"
                % (label, n, direct, proxied, relay, postfix, proxied / direct, direct_target, proxied / relay,
                   haproxy_target, relay / direct, proxied / postfix))
        print("\n".join(summary), flush=True)
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


if __name__ == "__main__":
    main()
