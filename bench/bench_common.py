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
    """strace -c -f attached to pid (or to each of a list of PIDs) and all its threads and
    later children, counting into path; stop it with strace_calls()."""
    pids = [pid] if isinstance(pid, int) else list(pid)
    st = subprocess.Popen(["strace", "-c", "-f", "-o", path] + [a for p in pids for a in ("-p", str(p))],
                          stderr=subprocess.DEVNULL)
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


_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def _stat_fields(pid):
    """(ppid, CPU ticks of pid itself and of its reaped children), or None when gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            w = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    # utime stime cutime cstime
    return int(w[1]), int(w[11]) + int(w[12]) + int(w[13]) + int(w[14])


def _tree(roots):
    """{pid: CPU ticks} of roots and every live descendant (ticks as _stat_fields)."""
    parent, ticks = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            f = _stat_fields(int(entry))
            if f:
                parent[int(entry)], ticks[int(entry)] = f
    out = {}
    for pid, t in ticks.items():
        p = pid
        while p and p not in roots:
            p = parent.get(p, 0)
        if p:
            out[pid] = t
    return out


def tree_pids(roots):
    """roots and every live descendant, e.g. to attach strace to a forking server."""
    return sorted(_tree(set(roots)))


def tree_cpu_ns(roots):
    """CPU time so far of the processes roots and all their descendants, counting the ones
    that have ended and were waited for through their parents (cutime, cstime): the cost
    of a server that forks a process per session (Postfix's smtpd, Dovecot's auth), which
    schedstat of live threads misses. Clock-tick resolution (10 ms): use over many
    messages. The difference of two readings is exact when every ended process was waited
    for by a parent inside the tree."""
    return sum(_tree(set(roots)).values()) * _TICK_NS
