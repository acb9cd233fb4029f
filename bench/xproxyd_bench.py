"""xproxyd_bench: xproxyd's throughput and memory, each figure next to its reference
measured in the same run (see xproxyd_bench.sh for the targets).

  throughput  smtp-source -> smtp-sink                      (direct)
              smtp-source -> xproxyd -> smtp-sink           (cut-through, fast path)
              smtp-source -> HAProxy -> smtp-sink           (a plain TCP relay: HAProxy in
                                                             mode tcp, as Debian ships it;
                                                             what any relay hop costs here)
              smtp-source -> Postfix -> smtp-sink           (store-and-forward hop)
              for 2 KiB and 100 KiB messages; a run ends when the sink has stored every
              message, so the Postfix hop is charged for its queue.
  memory      xproxyd's resident size with 1,000 and 5,000 idle sessions (greeting read,
              nothing sent), per session = growth / sessions.
Env: XPROXY_BUILD_DIR, SESSIONS (20 parallel smtp-source sessions), MESSAGES_SMALL (6000),
MESSAGES_LARGE (1000), ROUNDS (5, interleaved; medians reported), XPROXYD_ARGS (extra xproxyd options, e.g. "--threads 2")."""

import os
import resource
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from harness import HAProxy, Postfix, SmtpSink, free_port, standalone, wait_until  # noqa: E402
from xproxyd_helpers import Xproxyd  # noqa: E402

SESSIONS = int(os.environ.get("SESSIONS", "20"))
SMALL = int(os.environ.get("MESSAGES_SMALL", "6000"))
LARGE = int(os.environ.get("MESSAGES_LARGE", "1000"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))


def count_files(d):
    return sum(len(f) for _, _, f in os.walk(d))


def run_load(port, n, size, sink):
    """smtp-source n messages of `size` bytes; seconds until the sink stored them all."""
    before = count_files(sink.dir)
    t0 = time.monotonic()
    r = subprocess.run(["smtp-source", "-s", str(SESSIONS), "-m", str(n), "-l", str(size), "-f", "a@example.org",
                        "-t", "b@example.net", "127.0.0.1:%d" % port], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError("smtp-source failed: %s" % r.stderr)
    wait_until(lambda: count_files(sink.dir) >= before + n, 600, 0.02, "%d messages at the sink" % n)
    return time.monotonic() - t0


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
        sink = SmtpSink(sb, procs)
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
        print("xproxyd benchmark: %d parallel smtp-source sessions, one recipient per message, downstream "
              "encoding xforward, median of %d interleaved rounds" % (SESSIONS, ROUNDS))
        for label, size, n in (("2 KiB", 2048, SMALL), ("100 KiB", 102400, LARGE)):
            run_load(sink.port, min(n, 100), size, sink)  # warm-up
            # Interleaved rounds, median of each: the machine is shared and noisy.
            rounds = {"direct": [], "xproxyd": [], "haproxy": [], "postfix": []}
            for _ in range(ROUNDS):
                rounds["direct"].append(n / run_load(sink.port, n, size, sink))
                rounds["xproxyd"].append(n / run_load(xp.port, n, size, sink))
                rounds["haproxy"].append(n / run_load(hp.port, n, size, sink))
                rounds["postfix"].append(n / run_load(pf.port, n, size, sink))
            direct, proxied, relay, postfix = (statistics.median(rounds[k])
                                               for k in ("direct", "xproxyd", "haproxy", "postfix"))
            print("%-8s direct %6.0f msg/s | xproxyd %6.0f | HAProxy TCP relay %6.0f | Postfix hop %6.0f\n"
                  "         xproxyd/direct %.2f (target >= 0.90; HAProxy/direct %.2f) | "
                  "xproxyd/Postfix %.1fx (target >= 3)"
                  % (label, direct, proxied, relay, postfix, proxied / direct, relay / direct, proxied / postfix))
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
