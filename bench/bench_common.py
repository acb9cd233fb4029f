"""bench_common: small pieces shared by the benchmarks that run real mail software
(xproxyd_bench.py, xproxyd_outbound_bench.py)."""

import glob
import os
import resource
import signal
import subprocess
import time

QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")


def queued_files(pf, queues=QUEUES):
    """Messages in the given queues of a harness Postfix instance."""
    return sum(len(files) for q in queues for _, _, files in os.walk(os.path.join(pf.spool, q)))


def cpu_ns(pid):
    """CPU time of every thread of pid so far, in nanoseconds."""
    total = 0
    for path in glob.glob("/proc/%d/task/*/schedstat" % pid):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that just ended
    return total


def raise_fd_limit(want=65536):
    """As many descriptors as the hard limit allows, up to want, for the processes started."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, want), hard))


def strace_attach(pid, path):
    """strace -c -f attached to pid and all its threads, counting into path; stop it with
    strace_calls()."""
    st = subprocess.Popen(["strace", "-c", "-f", "-o", path, "-p", str(pid)], stderr=subprocess.DEVNULL)
    time.sleep(1)  # attached to every thread
    return st


def strace_calls(st, path):
    """Stop strace_attach()'s strace: {system call: calls} ("total": all of them)."""
    st.send_signal(signal.SIGINT)
    st.wait(timeout=30)
    calls = {}
    with open(path) as f:
        for line in f:
            w = line.split()
            # % time, seconds, usecs/call, calls, [errors], syscall
            if len(w) >= 5 and w[0][0].isdigit() and w[3].isdigit():
                calls[w[-1]] = int(w[3])
    return calls
