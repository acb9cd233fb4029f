"""The demo behind scripts/demo: the suite's main job, a chain of mail hops on loopback,
with and without xproxy. Prints, hop by hop, which client each hop saw, and ends with
`xproxy-wire trace` of the delivered message.

With xproxy: client -> Postfix A (xproxy-milter inject: signs the original client into
X-Original-Source) -> xproxyd (PROXY v2) -> legacy Postfix B under libxproxy-preload.so
(its access table rejects 127.0.0.66) -> Postfix C (xproxy-milter verify) -> smtp-sink.
Without xproxy: client -> A -> B -> C -> smtp-sink, each hop seeing only the one before."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))

from harness import Postfix, Procs, Sandbox, SmtpSink, binary, free_port, read_text, send_mail, wait_until  # noqa: E402
from milter_util import Milter  # noqa: E402
from xproxyd_helpers import Xproxyd  # noqa: E402

CLIENTS = ["127.0.0.66", "127.0.0.77"]
SENDER = "alice@example.org"
FMT = "  %-11s %-12s %-12s %-12s %-22s %s"


def client_seen(pf, client_port_start, qid_regex):
    """The address Postfix logged for the session (client= or reject: RCPT from)."""
    try:
        m = pf.wait_log(r"(?:client=|reject: RCPT from )[^\[\s]*\[([0-9a-f.:]+)\]" + qid_regex, timeout=15,
                        start=client_port_start)
        return m.group(1)
    except TimeoutError:
        return "-"


def run(with_xproxy, sandbox, procs):
    name = "with" if with_xproxy else "without"
    sink = SmtpSink(sandbox, procs, name="sink-" + name)
    mc = None
    c_cf = {}
    if with_xproxy:
        mc = Milter(sandbox, procs, "milter-c-" + name, "verify", extra=["--keep-header"])
        c_cf = {"smtpd_milters": mc.postfix, "milter_default_action": "tempfail"}
    c = Postfix(sandbox, procs, "c-" + name, free_port(), relay_port=sink.port, main_cf=c_cf).start()
    b_port = free_port()
    access = sandbox.write("access-%s.cidr" % name, "127.0.0.66/32 REJECT blocked by the legacy gateway\n")
    b_kw = {}
    if with_xproxy:
        b_kw = dict(preload=binary("preload/libxproxy-preload.so"),
                    preload_env={"XPROXY_TRUSTED": "127.0.0.1/32", "XPROXY_PORTS": str(b_port),
                                 "XPROXY_LOG": "file:" + sandbox.path("shim.log")})
    b = Postfix(sandbox, procs, "b-" + name, b_port, relay_port=c.port,
                main_cf={"smtpd_client_restrictions": "check_client_access cidr:" + access}, **b_kw).start()
    # soft_bounce: A keeps a refused message deferred instead of bouncing it, so that no
    # bounce from A crosses B while the next client's message is being followed.
    a_relay, a_cf, ma = b.port, {"soft_bounce": "yes"}, None
    if with_xproxy:
        xp = Xproxyd(sandbox, procs, ["legacy destinations=127.0.0.1:%d encoding=proxy-v2" % b.port],
                     log_level="info", name="xproxyd-" + name)
        ma = Milter(sandbox, procs, "milter-a-" + name, "inject", ring=mc.ring)
        a_relay = xp.port
        a_cf.update({"smtpd_milters": ma.postfix, "milter_default_action": "tempfail", "smtp_send_xforward_command": "yes"})
    a = Postfix(sandbox, procs, "a-" + name, free_port(), relay_port=a_relay, main_cf=a_cf).start()

    rows = []
    for client in CLIENTS:
        marks = [h.log_mark() for h in (a, b, c)]
        mark_c = len(read_text(mc.log)) if mc else 0
        replies = send_mail(a.port, source=client, sender=SENDER, helo="client.example",
                            body="Subject: demo from %s\r\n\r\nhello\r\n" % client)
        answer = next((t for code, t in replies if code >= 400 or t.startswith("250 2.0.0")), replies[-1][1])
        outcome = "A: " + answer.splitlines()[-1].replace("Ok: ", "")[:24]
        seen_a = client_seen(a, marks[0], "")
        seen_b = client_seen(b, marks[1], "")
        seen_c, verified = "-", "-"
        if client != "127.0.0.66" or not with_xproxy:
            seen_c = client_seen(c, marks[2], "")
            if mc:
                start = mark_c

                def verdict():
                    return re.search(r"event=message .*original=([0-9.]+):\d+ .*outcome=(\w+)", read_text(mc.log)[start:])
                try:
                    wait_until(verdict, 15, 0.05, "milter C's verdict")
                    m = verdict()
                    verified = "%s (%s)" % (m.group(1), m.group(2))
                except TimeoutError:
                    verified = "-"
        else:
            try:
                m = b.wait_log(r"reject: RCPT from \S+\[127\.0\.0\.66\]: (\d{3} [0-9.]+) (.{0,30})", timeout=15,
                               start=marks[1])
                outcome = "B: " + m.group(1) + " " + m.group(2).split(";")[0]
            except TimeoutError:
                outcome = "B: ?"
        rows.append((client, seen_a, seen_b, seen_c, verified, outcome))

    def last_delivered():
        found = [m for m in sink.messages() if "demo from %s" % CLIENTS[-1] in m]
        return found[-1] if found else None
    wait_until(last_delivered, 30, 0.1, "the message from %s at the sink" % CLIENTS[-1])
    delivered = last_delivered()
    ring = mc.ring if mc else None
    procs.stop_all()
    return rows, delivered, ring


def trace(message, ring, sandbox):
    path = sandbox.write("delivered.eml", message)
    if not ring:
        ring = sandbox.write("demo.keyring", "k1 hex:00112233445566778899aabbccddeeff\n", mode=0o600)
    r = subprocess.run([binary("tools/xproxy-wire"), "trace", path, "--keyring", ring, "--sender", SENDER],
                       capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


def main():
    if os.geteuid() != 0:
        sys.exit("scripts/demo must run as root (it starts private Postfix instances)")
    keep = "--keep" in sys.argv
    sandbox = Sandbox("demo")
    procs = Procs()
    try:
        print("\nxproxy demo: client -> Postfix A -> (xproxyd) -> legacy Postfix B, which rejects 127.0.0.66 "
              "-> Postfix C -> sink\n")
        ok = True
        for with_xproxy in (False, True):
            title = ("with xproxy: A's xproxy-milter signs the client, xproxyd sends PROXY v2 to B under "
                     "libxproxy-preload.so, C's xproxy-milter verifies" if with_xproxy else
                     "without xproxy: plain relaying")
            rows, delivered, ring = run(with_xproxy, sandbox, procs)
            print(title)
            print(FMT % ("client", "A saw", "B saw", "C saw", "C verified", "answer"))
            for row in rows:
                print(FMT % row)
            rc, text = trace(delivered, ring, sandbox)
            print("  xproxy-wire trace of the message delivered from %s (exit %d):" % (CLIENTS[-1], rc))
            print("".join("    " + line + "\n" for line in text.splitlines()))
            if with_xproxy:
                ok = ok and rows[0][2] == "127.0.0.66" and rows[0][5].startswith("B: 554") and \
                    rows[1][2] == "127.0.0.77" and rows[1][4].startswith("127.0.0.77") and rc == 0
            else:
                ok = ok and all(r[2] == "127.0.0.1" and r[3] == "127.0.0.1" for r in rows) and rc == 1
        print("result: " + ("with xproxy every hop knows the original client; without it each sees only the hop "
                            "before" if ok else "UNEXPECTED: see the logs in " + sandbox.root))
        return 0 if ok else 1
    finally:
        procs.stop_all()
        if keep:
            print("kept " + sandbox.root)
        else:
            sandbox.remove()


if __name__ == "__main__":
    sys.exit(main())
