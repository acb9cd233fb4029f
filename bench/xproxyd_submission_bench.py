"""xproxyd_submission_bench: mail clients submitting over TLS with AUTH PLAIN, directly to
a Postfix submission service and through xproxyd's submission mode in front of the same
Postfix, in one run (see xproxyd_submission_bench.sh for the target).

  direct   client -> Postfix :587-like (STARTTLS, AUTH PLAIN checked by Dovecot) -> sink
  xproxyd  client -> xproxyd (STARTTLS, AUTH PLAIN checked by the same Dovecot)
                  -> the same Postfix's plain listener (XCLIENT ADDR= LOGIN=) -> sink

  One Postfix (xproxyd_helpers.HomePostfix) relays only authenticated mail to a discarding,
  counting smtp-sink; Dovecot (harness.Dovecot) holds USERS users with {PLAIN} passwords,
  its own per-address delay after failures off. Both use one self-signed certificate
  (RSA 2048); clients verify it, and do a full handshake per connection (no resumption,
  as most mail clients). Two ways to submit, each measured on both paths:
    per-connection   a new connection per message: connect, EHLO, STARTTLS, EHLO,
                     AUTH PLAIN, MAIL, RCPT, DATA, QUIT
    10-per-conn      one connection, TLS and AUTH, then PER_CONN messages (default 10)
  CLIENTS client processes (default 10; Python smtplib + ssl, forked) share the messages
  and submit at once; a measurement runs from their common start until the last one has
  had its last 250 after DATA; then the queue is let drain to the sink before the next.
  Both paths take turns in every round, the first alternating; medians over ROUNDS.
  Beside each rate: the CPU time per message of the servers of the path (Postfix with
  every process it forks, Dovecot, xproxyd: /proc utime+stime, including the ended
  processes through their parents), and of the clients, with the clients' share of the
  machine: a client share near 100% of the cores means the client limits (lower CLIENTS
  or use a faster client), not the servers.

  xproxyd's command line: xproxyd_command() below (the submission mode's options). When
  xproxyd does not start or does not relay a test submission, the script says so and
  prints the direct figures alone.

Env: XPROXY_BUILD_DIR, CLIENTS (10), MESSAGES_SINGLE (600: messages per measurement, new
connection each), MESSAGES_MULTI (2000, PER_CONN per connection), PER_CONN (10), ROUNDS (5),
SIZE (message bytes, 2048), USERS (100), MODES (subset of single,multi; default both),
PATHS (subset of direct,xproxyd; default both), XPROXYD_ARGS (extra xproxyd options).
Needs root (Postfix, Dovecot, smtp-sink -u nobody).
MODE=strace: no rounds; the system calls per message of each path's servers (strace -c -f
attached to Postfix's, Dovecot's and xproxyd's processes, following the ones they fork)
for COUNT_MESSAGES_SINGLE/MULTI messages (default 100/200) after a warm-up: a
load-independent figure on a busy machine, and its ratio xproxyd/direct."""

import multiprocessing
import os
import resource
import smtplib
import ssl
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from harness import Dovecot, binary, free_port, read_text, standalone, wait_for_port, wait_until  # noqa: E402
from xproxyd_helpers import HomePostfix  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import queued_files, raise_fd_limit, strace_attach, strace_calls, tree_cpu_ns, tree_pids  # noqa: E402
from counting_sink import CountingSink  # noqa: E402

CLIENTS = int(os.environ.get("CLIENTS", "10"))
SINGLE = int(os.environ.get("MESSAGES_SINGLE", "600"))
MULTI = int(os.environ.get("MESSAGES_MULTI", "2000"))
PER_CONN = int(os.environ.get("PER_CONN", "10"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
SIZE = int(os.environ.get("SIZE", "2048"))
NUSERS = int(os.environ.get("USERS", "100"))
MODES = os.environ.get("MODES", "single,multi").split(",")
PATHS = os.environ.get("PATHS", "direct,xproxyd").split(",")
TARGET = 0.85
DOMAIN = "example.com"
RCPT = "friend@other.example"
MODE = os.environ.get("MODE", "")
if MODE == "strace":
    SINGLE = int(os.environ.get("COUNT_MESSAGES_SINGLE", "100"))
    MULTI = int(os.environ.get("COUNT_MESSAGES_MULTI", "200"))
elif MODE:
    raise SystemExit("MODE: strace or empty")
ALL_MODES = (("single", "per-connection", SINGLE, 1), ("multi", "%d-per-conn" % PER_CONN, MULTI, PER_CONN))


def users():
    return {"user%03d@%s" % (i, DOMAIN): "pw-%03d-secret" % i for i in range(NUSERS)}


def message(size):
    head = "From: <user000@%s>\r\nTo: <%s>\r\nSubject: submission benchmark\r\n\r\n" % (DOMAIN, RCPT)
    line = "x" * 76 + "\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return (head + body).encode()


def xproxyd_command(port, home_port, directory, auth_port, cert, key, spool):
    """xproxyd in front of the home Postfix, in submission mode: STARTTLS and AUTH on its
    listener, the credentials checked by Dovecot, the mail relayed to the user's home MTA
    (from the directory; here every user's) with XCLIENT ADDR= LOGIN=."""
    return [binary("xproxyd/xproxyd"),
            "--listen", "inet:127.0.0.1:%d home mode=submission" % port,
            "--downstream", "home destinations=127.0.0.1:%d encoding=xclient" % home_port,
            "--directory", directory,
            "--dovecot-auth", "inet:127.0.0.1:%d" % auth_port,
            "--tls-cert", cert, "--tls-key", key,
            "--trusted-upstreams", "127.0.0.1/32",
            "--hostname", "xproxyd.bench.invalid", "--spool-dir", spool,
            "--log", "stderr", "--log-level", "info"] + os.environ.get("XPROXYD_ARGS", "").split()


def directory_text(home_port):
    """The directory xproxyd finds the users and their home MTA in."""
    lines = ["mta home destinations=127.0.0.1:%d encoding=xclient tls=none" % home_port,
             "domain %s state=active services=smtp,submission home=home" % DOMAIN]
    lines += ["user %s" % u for u in users()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the clients

def submit(port, ctx, creds, msg, connections, per_conn):
    """connections sessions of per_conn messages each; returns (messages accepted, errors,
    first error text)."""
    ok = errors = 0
    first = ""
    for i in range(connections):
        user, password = creds[i % len(creds)]
        try:
            with smtplib.SMTP("127.0.0.1", port, local_hostname="client.bench.invalid", timeout=60) as s:
                s.starttls(context=ctx)
                s.ehlo("client.bench.invalid")
                s.user, s.password = user, password
                s.auth("PLAIN", s.auth_plain)
                for _ in range(per_conn):
                    s.sendmail(user, [RCPT], msg)
                    ok += 1
        except (OSError, smtplib.SMTPException) as e:
            errors += 1
            first = first or "%s: %s" % (type(e).__name__, e)
    return ok, errors, first


def _worker(port, cafile, creds, msg, connections, per_conn, barrier, results):
    ctx = ssl.create_default_context(cafile=cafile)
    barrier.wait()
    results.put(submit(port, ctx, creds, msg, connections, per_conn))


def run_clients(port, cafile, creds, msg, n, per_conn):
    """n messages from CLIENTS processes: (seconds, accepted, errors, first error, client CPU s)."""
    conns = max(1, n // per_conn)
    mp = multiprocessing.get_context("fork")
    barrier, results = mp.Barrier(CLIENTS + 1), mp.Queue()
    share = [conns // CLIENTS + (1 if i < conns % CLIENTS else 0) for i in range(CLIENTS)]
    procs = []
    for i, c in enumerate(share):
        mine = creds[i::CLIENTS] or creds
        procs.append(mp.Process(target=_worker, args=(port, cafile, mine, msg, c, per_conn, barrier, results)))
    for p in procs:
        p.start()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    barrier.wait()
    t0 = time.monotonic()
    got = [results.get(timeout=1200) for _ in procs]
    secs = time.monotonic() - t0
    for p in procs:
        p.join()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    ok, errors = sum(g[0] for g in got), sum(g[1] for g in got)
    first = next((g[2] for g in got if g[2]), "")
    return secs, ok, errors, first, client_cpu


# ---------------------------------------------------------------- the paths

class Path:
    def __init__(self, name, port, roots):
        self.name, self.port, self.roots = name, port, roots


def measure(path, home, sink, cafile, creds, msg, n, per_conn):
    """One timed run on path: (msg/s, server CPU ms/msg, client CPU ms/msg, client share).
    Timed: the clients' run; the servers' CPU: until the sink has every message."""
    want = sink.read()[0] + n
    c0 = tree_cpu_ns(path.roots)
    secs, ok, errors, first, client_cpu = run_clients(path.port, cafile, creds, msg, n, per_conn)
    if errors or ok != n:
        raise RuntimeError("%s: %d of %d messages accepted, %d sessions failed (first: %s)"
                           % (path.name, ok, n, errors, first))
    sink.wait(want, 600, None, "%d messages at the sink" % n)
    wait_until(lambda: queued_files(home.pf) == 0, 120, 0.05, "an empty queue")
    # The servers' CPU until the queue is empty: Postfix's delivery of the messages counts.
    server_ms = (tree_cpu_ns(path.roots) - c0) / 1e6 / ok
    share = client_cpu / secs / os.cpu_count()
    return ok / secs, server_ms, client_cpu * 1000.0 / ok, share


def start_xproxyd(sb, procs, home, dovecot, sink, cafile, creds, msg):
    """xproxyd in submission mode, checked with one submission: (Path, None) or (None, why)."""
    port = free_port()
    directory = sb.write("directory.txt", directory_text(home.port), mode=0o640)
    spool = sb.mkdir("xproxyd-spool", mode=0o700)
    argv = xproxyd_command(port, home.port, directory, dovecot.auth_port, home.cert, home.key, spool)
    log = sb.path("xproxyd.log")
    sb.logs.append(log)
    with open(log, "wb") as out:
        proc = procs.start("xproxyd", argv, stdout=out)

    def why(text):
        if proc.poll() is None:
            procs.stop(proc)
        tail = read_text(log).strip().splitlines()[-5:]
        return "%s\n  command: %s\n  its log (last lines):\n    %s" % (
            text, " ".join(argv), "\n    ".join(tail) if tail else "(empty)")
    try:
        wait_until(lambda: proc.poll() is not None or _listening(port), 15, 0.05, "xproxyd to listen")
    except TimeoutError:
        return None, why("xproxyd did not listen on port %d within 15 s" % port)
    if proc.poll() is not None:
        return None, why("xproxyd exited at start with status %d" % proc.returncode)
    before = sink.read()[0]
    ok, errors, first = submit(port, ssl.create_default_context(cafile=cafile), creds, msg, 1, 1)
    if not ok:
        return None, why("xproxyd refused a test submission: %s" % first)
    try:
        sink.wait(before + 1, 30, None, "the test submission at the sink")
    except TimeoutError:
        return None, why("xproxyd accepted a test submission that never reached the sink")
    return Path("xproxyd", port, {proc.pid, home.pf.proc.pid, dovecot.proc.pid}), None


def _listening(port):
    try:
        wait_for_port("127.0.0.1", port, 0.05)
        return True
    except (TimeoutError, OSError):
        return False


def main():
    raise_fd_limit()
    with standalone("xproxyd-submission-bench") as (sb, procs):
        dv = Dovecot(sb, procs, users())
        sink_port = free_port()
        sink = CountingSink(procs, sink_port)
        wait_for_port("127.0.0.1", sink_port)
        limit = str(max(100, 2 * CLIENTS + 20))
        home = HomePostfix(sb, procs, sink_port, dv, submission=True, main_cf={
            "default_process_limit": limit, "smtpd_tls_loglevel": "0",
            "default_destination_concurrency_limit": "20"})
        cafile = home.pki.ca
        creds = sorted(users().items())
        msg = message(SIZE)
        paths = []
        if "direct" in PATHS:
            paths.append(Path("direct", home.submission_port, {home.pf.proc.pid, dv.proc.pid}))
        failure = None
        if "xproxyd" in PATHS:
            xp, failure = start_xproxyd(sb, procs, home, dv, sink, cafile, creds, msg)
            if xp:
                paths.append(xp)
        print("xproxyd submission benchmark%s: %d clients submitting %d-byte messages over STARTTLS with AUTH PLAIN "
              "(%d users, Dovecot) to Postfix directly or through xproxyd, Postfix relaying to a discarding sink; "
              "rate = messages accepted per second of the clients' run, first path alternated each round, median of "
              "%d rounds; CPU per message: servers of the path (Postfix with its processes, Dovecot, xproxyd) and "
              "clients; %d CPUs" % (" (MODE=strace: no rounds)" if MODE else "", CLIENTS, len(msg), NUSERS, ROUNDS,
                                    os.cpu_count()), flush=True)
        if failure:
            print("\nxproxyd: NOT MEASURED: %s\n" % failure, flush=True)
        if MODE == "strace":
            count_calls(sb, paths, home, sink, cafile, creds, msg)
        else:
            rounds(paths, home, sink, cafile, creds, msg, failure)


def count_calls(sb, paths, home, sink, cafile, creds, msg):
    print("system calls per message of the servers of each path (strace -c -f: Postfix, Dovecot, xproxyd and "
          "the processes they fork), after a warm-up", flush=True)
    for key, label, n, per_conn in ALL_MODES:
        if key not in MODES:
            continue
        per = {}
        for p in paths:
            measure(p, home, sink, cafile, creds, msg, min(n, 2 * CLIENTS * per_conn), per_conn)
            trace = sb.path("%s-%s.strace" % (p.name, key))
            st = strace_attach(tree_pids(p.roots), trace)
            measure(p, home, sink, cafile, creds, msg, n, per_conn)
            calls = strace_calls(st, trace)
            per[p.name] = calls.get("total", 0) / n
            top = sorted(((v / n, k) for k, v in calls.items() if k != "total" and v / n >= 0.5), reverse=True)
            print("%-15s %-7s %d messages: system calls per message %.1f (%s)" % (
                label, p.name, n, per[p.name], ", ".join("%s %.1f" % (k, v) for v, k in top[:12])), flush=True)
        if "direct" in per and "xproxyd" in per and per["direct"]:
            print("%-15s ratio xproxyd/direct %.2f" % (label, per["xproxyd"] / per["direct"]), flush=True)


def rounds(paths, home, sink, cafile, creds, msg, failure):
    summary = []
    for key, label, n, per_conn in ALL_MODES:
        if key not in MODES or not paths:
            continue
        for p in paths:  # warm-up: Postfix's and Dovecot's processes, xproxyd's connections
            measure(p, home, sink, cafile, creds, msg, min(n, 10 * CLIENTS * per_conn), per_conn)
        figs = {p.name: [] for p in paths}
        for r in range(ROUNDS):
            order = paths if r % 2 == 0 else paths[::-1]
            for p in order:
                figs[p.name].append(measure(p, home, sink, cafile, creds, msg, n, per_conn))
            print("%-15s round %d (%s): %s" % (label, r + 1, " ".join(p.name for p in order), " | ".join(
                "%s %.0f msg/s, servers %.2f ms/msg, clients %.2f ms/msg (%.0f%% of the CPUs)"
                % (p.name, figs[p.name][-1][0], figs[p.name][-1][1], figs[p.name][-1][2], 100 * figs[p.name][-1][3])
                for p in paths)), flush=True)
        med = {name: [statistics.median(f[i] for f in v) for i in range(4)] for name, v in figs.items()}
        summary.append((label, n, med))
    print("\n%-15s %8s %12s %13s %6s %7s %8s %15s %16s %9s %13s" % (
        "mode", "messages", "direct msg/s", "xproxyd msg/s", "ratio", "target", "met", "direct CPU/msg",
        "xproxyd CPU/msg", "CPU ratio", "client share"))
    fmt = lambda m, i, f: f % m[i] if m else "-"
    for label, n, med in summary:
        d, x = med.get("direct"), med.get("xproxyd")
        ratio = x[0] / d[0] if d and x else None
        print("%-15s %8d %12s %13s %6s %7s %8s %15s %16s %9s %13s" % (
            label, n, fmt(d, 0, "%.0f"), fmt(x, 0, "%.0f"), "%.2f" % ratio if ratio is not None else "n/a",
            ">= %.2f" % TARGET, ("met" if ratio >= TARGET else "not met") if ratio is not None else "-",
            fmt(d, 1, "%.2f ms"), fmt(x, 1, "%.2f ms"), "%.2f" % (x[1] / d[1]) if d and x and d[1] else "-",
            "/".join("%.0f%%" % (100 * m[3]) for m in (d, x) if m)), flush=True)
    print("(CPU/msg: the servers of the path, Postfix's delivery to the sink included; client share: the clients' "
          "CPU time over the run's wall time and CPUs, direct/xproxyd)", flush=True)
    if failure:
        print("\nxproxyd was not measured (see above): the ratios are missing.", flush=True)


if __name__ == "__main__":
    main()
