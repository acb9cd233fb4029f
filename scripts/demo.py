"""The demo behind scripts/demo: a legacy Postfix behind HAProxy, without and with the
xproxy LD_PRELOAD shim. Prints what the legacy gateway logged for each client."""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))

from harness import HAProxy, Postfix, Procs, Sandbox, SmtpSink, binary, free_port, send_mail  # noqa: E402

CLIENTS = ["127.0.0.66", "127.0.0.77"]


def run(with_shim, sandbox, procs):
    name = "with" if with_shim else "without"
    sink = SmtpSink(sandbox, procs, name="sink-" + name)
    port = free_port()
    access = sandbox.write("access-%s.cidr" % name, "127.0.0.66/32 REJECT blocked by the legacy gateway\n")
    kwargs = {}
    if with_shim:
        kwargs = dict(preload=binary("preload/libxproxy-preload.so"),
                      preload_env={"XPROXY_TRUSTED": "127.0.0.1/32", "XPROXY_PORTS": str(port),
                                   "XPROXY_LOG": "file:" + sandbox.path("shim.log")})
    pf = Postfix(sandbox, procs, "legacy-" + name, port, relay_port=sink.port,
                 main_cf={"smtpd_client_restrictions": "check_client_access cidr:" + access}, **kwargs).start()
    hp = HAProxy(sandbox, procs, port, mode="send-proxy-v2" if with_shim else None)
    rows = []
    for client in CLIENTS:
        start = len(pf.log())
        replies = send_mail(hp.port, source=client, helo="client.example")
        final = next((t for c, t in replies if c >= 400 or t.startswith("250 2.0.0")), replies[-1][1])
        log = ""
        try:
            m = pf.wait_log(r"(?:client=|reject: RCPT from )unknown\[([0-9.]+)\]", timeout=10, start=start)
            log = m.group(1)
        except TimeoutError:
            log = "?"
        rows.append((client, log, final.splitlines()[-1][:60]))
    procs.stop_all()
    return rows


def main():
    if os.geteuid() != 0:
        sys.exit("scripts/demo must run as root (it starts private Postfix instances)")
    keep = "--keep" in sys.argv
    sandbox = Sandbox("demo")
    procs = Procs()
    try:
        print("\nxproxy demo: HAProxy on 127.0.0.1 in front of a legacy Postfix that rejects 127.0.0.66\n")
        results = [("without the shim (HAProxy forwards plain TCP)", run(False, sandbox, procs)),
                   ("with libxproxy-preload.so (HAProxy send-proxy-v2)", run(True, sandbox, procs))]
        fmt = "  %-12s %-22s %s"
        for title, rows in results:
            print(title)
            print(fmt % ("client", "legacy Postfix saw", "answer"))
            for client, seen, answer in rows:
                print(fmt % (client, seen, answer))
            print()
        ok = (all(seen == "127.0.0.1" for _, seen, _ in results[0][1]) and
              [seen for _, seen, _ in results[1][1]] == CLIENTS and
              results[1][1][0][2].startswith("554"))
        print("result: " + ("the legacy gateway sees every original client and its access rule applies"
                            if ok else "UNEXPECTED: see the logs in " + sandbox.root))
        return 0 if ok else 1
    finally:
        procs.stop_all()
        if keep:
            print("kept " + sandbox.root)
        else:
            sandbox.remove()


if __name__ == "__main__":
    sys.exit(main())
