"""counting_sink: smtp-sink that discards mail and tells, message by message, how many it
has received and when the last one ended, for the benchmarks that time mail end to end
(milter_bench.py, xproxyd_bench.py).

smtp-sink -c prints "sess=N quit=N mesg=N" followed by a carriage return whenever a
session ends, QUIT is executed or a message's final "." is received; a thread reads that
through a pipe and notes the time (CLOCK_MONOTONIC) at which the count last grew."""

import re
import subprocess
import threading
import time

_MESG = re.compile(rb"mesg=(\d+)")


class CountingSink:
    def __init__(self, procs, port, backlog=256, name="smtp-sink", extra_args=(), host="127.0.0.1"):
        self.port, self.host = port, host
        self.count = 0
        self.last = 0.0
        self.cond = threading.Condition()
        argv = ["/usr/sbin/smtp-sink", "-u", "nobody", "-c"] + list(extra_args) + ["%s:%d" % (host, port), str(backlog)]
        self.proc = procs.start(name, argv, stdout=subprocess.PIPE)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        out, rest = self.proc.stdout, b""
        while True:
            chunk = out.read1(65536)
            if not chunk:
                return
            now = time.monotonic()
            rest += chunk
            cut = rest.rfind(b"\r")
            if cut < 0:
                continue
            counts = _MESG.findall(rest[:cut])
            rest = rest[cut + 1:]
            if counts:
                n = int(counts[-1])
                with self.cond:
                    if n > self.count:
                        self.count, self.last = n, now
                        self.cond.notify_all()

    def read(self):
        """(messages received so far, monotonic time at which the last one was seen)."""
        with self.cond:
            return self.count, self.last

    def wait(self, n, timeout, check=None, what="messages at the sink"):
        """Wait until n messages have been received; return the time the n-th was seen.
        check(): called about once a second meanwhile (raise to give up early)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.count >= n, max(0.0, min(deadline - time.monotonic(), 1.0)))
                count, last = self.count, self.last
            if count >= n:
                break
            if time.monotonic() >= deadline or self.proc.poll() is not None:
                raise TimeoutError("%s: %d of %d" % (what, count, n))
            if check is not None:
                check()
        if count > n:
            raise RuntimeError("%s: %d, %d expected" % (what, count, n))
        return last
