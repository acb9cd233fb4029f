"""deposit_bench: 2 KiB messages deposited over HTTPS into xproxy-depositd, against the
same messages submitted over SMTP with STARTTLS and AUTH to the same Postfix, in one run
(see deposit_bench.sh for the target).

  deposit  client --HTTPS keep-alive, Bearer token--> xproxy-depositd
                  --SMTP + XCLIENT ADDR= LOGIN=--> Postfix (plain listener) --> sink
  smtp     client --SMTP, STARTTLS, AUTH PLAIN (Dovecot)--> Postfix (submission listener) --> sink

  One Postfix (deposit_helpers.DepositMta: XCLIENT from 127.0.0.0/8, SASL by Dovecot, a
  submission listener with STARTTLS and AUTH only after it) relays to a discarding,
  counting smtp-sink. The daemon fetches its identity provider's keys by OpenID discovery
  over HTTPS (a Python server, idle during the measurement) and signs a receipt per
  message; it answers only after Postfix accepted the final dot, as SMTP does.

  CLIENTS client processes (default 10; forked), each with ONE connection kept for all its
  messages: http.client over TLS (a POST per message, each with its user's RS256 token,
  the 303 read, the receipt not fetched), or smtplib (STARTTLS and AUTH once, then
  MAIL/RCPT/DATA per message). Both verify the server's certificate. A measurement runs
  from the clients' common start until the last one had its last answer; then the queue
  is let drain before the next. Both paths take turns in every round, the first
  alternating; medians over ROUNDS. Beside each rate: the CPU time per message of the
  servers (depositd, Postfix with every process it forks, Dovecot) and of the clients,
  with the clients' share of the machine (near 100% of the cores: the clients limit), and
  the daemon's own part of the deposit path's servers.

  xclient  (no target: the deposit path's floor) what the daemon's injection alone asks of
           Postfix: a new plain SMTP session per message with XCLIENT ADDR= LOGIN=, as the
           daemon opens one per deposit, where the smtp path keeps its session.

  JWT verify cost per request: bench/jose_bench's BM_Validate (RS256, ES256, EdDSA: the
  whole check the daemon does per request, CPU time) when it is built, and the daemon's
  own CPU time per deposit for comparison.

Env: XPROXY_BUILD_DIR, CLIENTS (10), MESSAGES (2000 per measurement), ROUNDS (5), SIZE
(2048), USERS (100), PATHS (subset of deposit,smtp,xclient), DEPOSITD_ARGS (extra options).
Needs root (Postfix, Dovecot, smtp-sink -u nobody)."""

import http.client
import multiprocessing
import os
import resource
import smtplib
import ssl
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from deposit_helpers import AUDIENCE, DepositMta, IdentityProvider  # noqa: E402
from harness import BUILD_DIR, Depositd, free_port, standalone, wait_for_port, wait_until  # noqa: E402
from xproxyd_helpers import TestPki  # noqa: E402
sys.path.insert(0, HERE)
from bench_common import queued_files, raise_fd_limit, tree_cpu_ns  # noqa: E402
from counting_sink import CountingSink  # noqa: E402

CLIENTS = int(os.environ.get("CLIENTS", "10"))
MESSAGES = int(os.environ.get("MESSAGES", "2000"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
SIZE = int(os.environ.get("SIZE", "2048"))
NUSERS = int(os.environ.get("USERS", "100"))
PATHS = os.environ.get("PATHS", "deposit,smtp,xclient").split(",")
TARGET = 1.0
DOMAIN = "example.com"
RCPT = "friend@example.com"


def users():
    return {"user%03d@%s" % (i, DOMAIN): "pw-%03d-secret" % i for i in range(NUSERS)}


def message(user, size):
    head = "From: <%s>\r\nTo: <%s>\r\nSubject: deposit benchmark\r\nMessage-ID: <%d.%s>\r\n\r\n" % (
        user, RCPT, os.getpid(), user)
    line = "x" * 76 + "\r\n"
    room = max(len(line), size - len(head))
    body = line * (room // len(line))
    if room % len(line) >= 2:
        body += "y" * (room % len(line) - 2) + "\r\n"
    return (head + body).encode()


def directory_text():
    return "domain %s\n" % DOMAIN + "".join("user %s\n" % u for u in users()) + "user %s\n" % RCPT


# ---------------------------------------------------------------- the clients

def deposit_client(port, cafile, creds, n):
    """n deposits on one kept-alive TLS connection: (accepted, errors, first error)."""
    ok = errors = 0
    first = ""
    conn = http.client.HTTPSConnection("localhost", port, context=ssl.create_default_context(cafile=cafile),
                                       timeout=60)
    for i in range(n):
        user, token = creds[i % len(creds)]
        try:
            conn.request("POST", "/v1/deposit", body=message(user, SIZE),
                         headers={"Authorization": "Bearer " + token, "Content-Type": "message/rfc822"})
            r = conn.getresponse()
            body = r.read()
            if r.status == 303:
                ok += 1
            else:
                errors += 1
                first = first or "HTTP %d %r" % (r.status, body[:200])
        except (OSError, http.client.HTTPException) as e:
            errors += 1
            first = first or "%s: %s" % (type(e).__name__, e)
            conn.close()
    conn.close()
    return ok, errors, first


def smtp_client(port, cafile, creds, n):
    """n messages in one SMTP session (STARTTLS, AUTH PLAIN once): (accepted, errors, first)."""
    ok = errors = 0
    first = ""
    user, password = creds[0]
    try:
        with smtplib.SMTP("127.0.0.1", port, local_hostname="client.bench.invalid", timeout=60) as s:
            s.starttls(context=ssl.create_default_context(cafile=cafile))
            s.ehlo("client.bench.invalid")
            s.login(user, password)
            for _ in range(n):
                s.sendmail(user, [RCPT], message(user, SIZE))
                ok += 1
    except (OSError, smtplib.SMTPException) as e:
        errors += n - ok
        first = "%s: %s" % (type(e).__name__, e)
    return ok, errors, first


def xclient_client(port, cafile, creds, n):
    """What the daemon's injection costs Postfix, without the daemon: per message a new
    plain SMTP session with XCLIENT ADDR= LOGIN=, EHLO again, one message, QUIT."""
    ok = errors = 0
    first = ""
    for i in range(n):
        user = creds[i % len(creds)][0]
        try:
            with smtplib.SMTP("127.0.0.1", port, local_hostname="deposit.bench.invalid", timeout=60) as s:
                s.ehlo("deposit.bench.invalid")
                code, text = s.docmd("XCLIENT", "ADDR=127.0.0.1 PORT=%d NAME=[UNAVAILABLE] PROTO=ESMTP LOGIN=%s"
                                     % (40000 + i % 20000, user))
                if code != 220:
                    raise smtplib.SMTPResponseException(code, text)
                s.ehlo("client.bench.invalid")
                s.sendmail(user, [RCPT], message(user, SIZE))
                ok += 1
        except (OSError, smtplib.SMTPException) as e:
            errors += 1
            first = first or "%s: %s" % (type(e).__name__, e)
    return ok, errors, first


def _worker(fn, port, cafile, creds, n, barrier, results):
    barrier.wait()
    results.put(fn(port, cafile, creds, n))


def run_clients(path, n):
    """n messages from CLIENTS processes: (seconds, accepted, errors, first error, client CPU s)."""
    mp = multiprocessing.get_context("fork")
    barrier, results = mp.Barrier(CLIENTS + 1), mp.Queue()
    share = [n // CLIENTS + (1 if i < n % CLIENTS else 0) for i in range(CLIENTS)]
    procs = [mp.Process(target=_worker, args=(path.client, path.port, path.cafile, path.creds[i::CLIENTS]
                                              or path.creds, c, barrier, results))
             for i, c in enumerate(share)]
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
    return (secs, sum(g[0] for g in got), sum(g[1] for g in got), next((g[2] for g in got if g[2]), ""),
            client_cpu)


# ---------------------------------------------------------------- the paths

class Path:
    """own: the PIDs of the path's own server (depositd), counted apart as well."""

    def __init__(self, name, client, port, cafile, creds, roots, own=()):
        self.name, self.client, self.port, self.cafile, self.creds, self.roots = (name, client, port, cafile,
                                                                                  creds, roots)
        self.own = set(own)


def measure(path, mta, sink, n):
    """One timed run: (msg/s, servers' CPU ms/msg, clients' CPU ms/msg, client share, own
    server's CPU ms/msg)."""
    want = sink.read()[0] + n
    c0, o0 = tree_cpu_ns(path.roots), tree_cpu_ns(path.own) if path.own else 0
    secs, ok, errors, first, client_cpu = run_clients(path, n)
    if errors or ok != n:
        raise RuntimeError("%s: %d of %d messages accepted, %d failed (first: %s)" % (path.name, ok, n, errors,
                                                                                     first))
    sink.wait(want, 600, None, "%d messages at the sink" % n)
    wait_until(lambda: queued_files(mta.pf) == 0, 120, 0.05, "an empty queue")
    server_ms = (tree_cpu_ns(path.roots) - c0) / 1e6 / ok
    own_ms = (tree_cpu_ns(path.own) - o0) / 1e6 / ok if path.own else 0.0
    return ok / secs, server_ms, client_cpu * 1000.0 / ok, client_cpu / secs / os.cpu_count(), own_ms


def jose_validate_cost():
    """bench/jose_bench's BM_Validate lines (CPU time per token check), or why not."""
    exe = os.path.join(BUILD_DIR, "bench", "jose_bench")
    if not os.path.exists(exe):
        return None, "bench/jose_bench is not built (cmake --build BUILD --target jose_bench)"
    r = subprocess.run([exe, "--benchmark_filter=BM_Validate", "--benchmark_min_time=0.2"], capture_output=True,
                       text=True, timeout=300)
    lines = [line for line in r.stdout.splitlines() if line.startswith("BM_Validate")]
    return lines, None if lines else "jose_bench printed nothing: " + r.stderr[-300:]


def main():
    raise_fd_limit()
    with standalone("deposit-bench") as (sb, procs):
        sink_port = free_port()
        sink = CountingSink(procs, sink_port)
        wait_for_port("127.0.0.1", sink_port)
        pki = TestPki(sb)
        limit = str(max(100, 2 * CLIENTS + 20))
        mta = DepositMta(sb, procs, users=users(), submission=True, sink_port=sink_port, pki=pki, main_cf={
            "smtpd_end_of_data_restrictions": "", "default_process_limit": limit, "smtpd_tls_loglevel": "0",
            "default_destination_concurrency_limit": "20"})
        idp = IdentityProvider(pki)
        cert, key = pki.issue("depositd", dns=["localhost"], ips=["127.0.0.1"])
        directory = sb.write("directory", directory_text(), mode=0o644)
        tokens = [(u, idp.token(u, kid="rsa", exp=int(time.time()) + 7200)) for u in users()]
        server_roots = {mta.pf.proc.pid, mta.dovecot.proc.pid}
        paths = []
        failure = None
        if "deposit" in PATHS:
            try:
                d = Depositd(sb, procs, mta.port, cert, key, idp.issuer, directory, audience=AUDIENCE,
                             jwks_ca=pki.ca, log_level="info",
                             extra=["--rate-limit", "0", "--max-connections", str(4 * CLIENTS + 16)]
                             + os.environ.get("DEPOSITD_ARGS", "").split())
                paths.append(Path("deposit", deposit_client, d.port, pki.ca, tokens, server_roots | {d.proc.pid},
                                  own={d.proc.pid}))
                before = sink.read()[0]
                ok, errors, first = deposit_client(d.port, pki.ca, tokens, 1)
                if ok:
                    sink.wait(before + 1, 30, None, "the test deposit at the sink")
                else:
                    paths.pop()
                    failure = "xproxy-depositd refused a test deposit: %s" % first
            except (AssertionError, OSError, TimeoutError) as e:
                failure = "xproxy-depositd did not start: %s" % e
        if "smtp" in PATHS:
            paths.append(Path("smtp", smtp_client, mta.submission_port, pki.ca, sorted(users().items()),
                              server_roots))
        if "xclient" in PATHS:
            paths.append(Path("xclient", xclient_client, mta.port, pki.ca, sorted(users().items()), server_roots))
        print("deposit benchmark: %d clients, each one kept-alive connection, %d-byte messages: HTTPS deposits "
              "(RS256 tokens, receipts signed) into xproxy-depositd -> Postfix (XCLIENT), against SMTP with STARTTLS "
              "and AUTH PLAIN (Dovecot) into the same Postfix; Postfix relays to a discarding sink; rate = messages "
              "answered per second of the clients' run, %d per measurement, first path alternated, median of %d "
              "rounds; %d CPUs" % (CLIENTS, len(message(RCPT, SIZE)), MESSAGES, ROUNDS, os.cpu_count()),
              flush=True)
        if failure:
            print("\ndeposit: NOT MEASURED: %s\n" % failure, flush=True)
        for p in paths:  # warm-up: Postfix's processes, the daemon's keys and connections
            measure(p, mta, sink, min(MESSAGES, 10 * CLIENTS))
        figs = {p.name: [] for p in paths}
        for r in range(ROUNDS):
            order = paths if r % 2 == 0 else paths[::-1]
            for p in order:
                figs[p.name].append(measure(p, mta, sink, MESSAGES))
            print("round %d (%s): %s" % (r + 1, " ".join(p.name for p in order), " | ".join(
                "%s %.0f msg/s, servers %.2f ms/msg, clients %.2f ms/msg (%.0f%% of the CPUs)" % (
                    (name,) + tuple(f[-1][i] * (100 if i == 3 else 1) for i in range(4)))
                for name, f in figs.items())), flush=True)
        med = {name: [statistics.median(f[i] for f in v) for i in range(5)] for name, v in figs.items()}
        dep, smtp = med.get("deposit"), med.get("smtp")
        print("\n%-8s %10s %10s %8s %15s %15s %15s %13s" % ("path", "msg/s", "ratio", "target", "servers CPU/msg",
                                                            "depositd alone", "clients CPU/msg", "client share"))
        for name, m in med.items():
            ratio = m[0] / smtp[0] if smtp else None
            print("%-8s %10.0f %10s %8s %12.2f ms %15s %12.2f ms %12.0f%%" % (
                name, m[0], "%.2f" % ratio if ratio is not None else "-",
                ">= %.2f" % TARGET if name == "deposit" else "", m[1], "%.2f ms" % m[4] if name == "deposit" else "-",
                m[2], 100 * m[3]))
        if dep and smtp:
            ratio = dep[0] / smtp[0]
            print("deposit / smtp = %.2f: target >= %.2f %s" % (ratio, TARGET, "met" if ratio >= TARGET else "NOT met"))
        lines, why = jose_validate_cost()
        print("\nJWT verify cost per request (jose_bench BM_Validate: the daemon's whole token check, CPU time; "
              "/0 RS256, /1 ES256, /2 EdDSA):")
        for line in lines or ["  " + why]:
            print("  " + line.strip())
        if dep:
            print("  for scale: the deposit path's servers spend %.2f ms of CPU per message" % dep[1])


if __name__ == "__main__":
    main()
