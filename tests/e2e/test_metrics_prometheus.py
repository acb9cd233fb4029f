"""--metrics of every daemon, scraped by a real Prometheus 2.42 (Debian's).

The chain: swaks from 127.0.0.66 -> Postfix A (xproxy-policyd as its policy service,
xproxy-milter inject) -> xproxyd (XCLIENT) -> Postfix C (xproxy-milter verify) ->
smtp-sink. Each of the four daemons serves /metrics on its own loopback port; Prometheus
scrapes them every second. After N messages, Prometheus's HTTP API must give the counts a
dashboard would show: N decisions of policyd, N injected and N verified headers, N 2xx
replies to RCPT and to the end of data at xproxyd, N decision latencies, build info per
program, every target up. A SIGHUP reload of policyd is counted and keeps the counters.
The endpoint itself answers 404 off /metrics and 405 to POST."""

import json
import os
import signal
import urllib.error
import urllib.parse
import urllib.request

from harness import E2ETestCase, Postfix, SmtpSink, binary, free_port, main, swaks, wait_for_port, wait_until
from milter_util import Milter
from xproxyd_helpers import Xproxyd

N = 3


def http_get(url, method="GET"):
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


class Prometheus:
    """Prometheus on 127.0.0.1 scraping `targets` ({job: "127.0.0.1:PORT"}) every second."""

    def __init__(self, sandbox, procs, targets):
        self.port = free_port()
        jobs = "".join("  - job_name: %s\n    static_configs:\n      - targets: ['%s']\n" % (j, t)
                       for j, t in sorted(targets.items()))
        cfg = sandbox.write("prometheus.yml", "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                            "  evaluation_interval: 1s\nscrape_configs:\n" + jobs)
        log = sandbox.path("prometheus.log")
        sandbox.logs.append(log)
        with open(log, "wb") as out:
            self.proc = procs.start("prometheus", ["/usr/bin/prometheus", "--config.file=" + cfg,
                                                   "--storage.tsdb.path=" + sandbox.mkdir("prom-data"),
                                                   "--web.listen-address=127.0.0.1:%d" % self.port],
                                    stdout=out, stderr=out)
        wait_for_port("127.0.0.1", self.port, timeout=20)

    def query(self, q):
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (self.port, urllib.parse.urlencode({"query": q}))
        status, _, body = http_get(url)
        if status != 200:
            raise AssertionError("query %s: HTTP %d %s" % (q, status, body))
        return [(r["metric"], float(r["value"][1])) for r in json.loads(body)["data"]["result"]]

    def value(self, q):
        rows = self.query(q)
        return rows[0][1] if len(rows) == 1 else None

    def wait_value(self, q, want, timeout=30):
        """Polls until the query gives one series with value `want` (first scrapes take ~5.5 s)."""
        seen = []

        def ok():
            seen.append(self.value(q))
            return seen[-1] == want
        try:
            wait_until(ok, timeout, 0.2, "%s == %s" % (q, want))
        except (AssertionError, TimeoutError):
            raise AssertionError("%s: want %s, last value %s" % (q, want, seen[-1] if seen else None))


class MetricsPrometheus(E2ETestCase):
    def test_counters_of_a_chain_scraped_by_prometheus(self):
        sink = SmtpSink(self.sandbox, self.procs)
        ports = {name: free_port() for name in ("policyd", "milter_a", "milter_c", "xproxyd")}
        spec = lambda name: "inet:127.0.0.1:%d" % ports[name]

        mc = Milter(self.sandbox, self.procs, "milter-c", "verify", extra=["--metrics", spec("milter_c")])
        c_port = free_port()
        c = Postfix(self.sandbox, self.procs, "pfc", c_port, relay_port=sink.port,
                    main_cf={"smtpd_milters": mc.postfix, "milter_default_action": "tempfail",
                             "smtpd_authorized_xclient_hosts": "127.0.0.1"})
        c.start()
        xp = Xproxyd(self.sandbox, self.procs, ["c destinations=127.0.0.1:%d encoding=xclient" % c_port],
                     extra=["--metrics", spec("xproxyd")], log_level="info")
        ma = Milter(self.sandbox, self.procs, "milter-a", "inject", ring=mc.ring, extra=["--metrics", spec("milter_a")])
        pd_port = free_port()
        pd_log = self.sandbox.path("policyd.log")
        self.sandbox.logs.append(pd_log)
        with open(pd_log, "wb") as out:
            pd = self.procs.start("policyd", [binary("policyd/xproxy-policyd"), "--listen",
                                              "inet:127.0.0.1:%d" % pd_port, "--allow-peers", "127.0.0.1/32",
                                              "--log", "stderr", "--metrics", spec("policyd")], stdout=out)
        wait_for_port("127.0.0.1", pd_port)
        policy = "check_policy_service inet:127.0.0.1:%d" % pd_port
        a = Postfix(self.sandbox, self.procs, "pfa", free_port(), relay_port=xp.port,
                    main_cf={"smtpd_milters": ma.postfix, "milter_default_action": "tempfail",
                             "smtp_send_xforward_command": "yes",
                             "smtpd_recipient_restrictions": policy + ", permit_mynetworks, reject_unauth_destination"})
        a.start()
        for name in ports:
            wait_for_port("127.0.0.1", ports[name])
        prom = Prometheus(self.sandbox, self.procs, {name: "127.0.0.1:%d" % p for name, p in ports.items()})

        # The endpoint as a scraper and a stray client see it.
        status, ctype, body = http_get("http://127.0.0.1:%d/metrics" % ports["xproxyd"])
        self.assertEqual(status, 200)
        self.assertIn("version=0.0.4", ctype)
        self.assertIn("# TYPE xproxyd_downstream_replies_total counter", body)
        self.assertIn('xproxyd_final_reply_duration_seconds_bucket{le="+Inf"} 0', body)
        self.assertEqual(http_get("http://127.0.0.1:%d/" % ports["policyd"])[0], 404)
        self.assertEqual(http_get("http://127.0.0.1:%d/metrics" % ports["milter_a"], "POST")[0], 405)

        for i in range(N):
            rc, out = swaks(a.port, source="127.0.0.66", helo="client-66.example", headers=["Subject: m%d" % i])
            self.assertEqual(rc, 0, out)
        sink.wait_messages(N, timeout=60)

        prom.wait_value("count(up == 1)", 4)
        prom.wait_value('xproxy_policyd_decisions_total{policy="none",action="dunno"}', N)
        prom.wait_value("xproxy_policyd_decision_duration_seconds_count", N)
        # Each smtpd process keeps its own policy connection open: between 1 and N.
        self.assertTrue(1 <= prom.value('xproxy_policyd_connections_total{listener="policy"}') <= N)
        prom.wait_value('xproxy_milter_messages_total{job="milter_a",mode="inject",outcome="injected"}', N)
        prom.wait_value('xproxy_milter_header_verify_total{job="milter_c",mode="verify",outcome="ok"}', N)
        prom.wait_value('xproxy_milter_header_verify_total{job="milter_c",mode="verify",outcome="bad_signature"}', 0, timeout=5)
        prom.wait_value('xproxy_milter_messages_total{job="milter_c",mode="verify",outcome="verified"}', N)
        prom.wait_value('xproxyd_downstream_replies_total{stage="rcpt",class="2xx"}', N)
        prom.wait_value('xproxyd_downstream_replies_total{stage="data",class="2xx"}', N)
        prom.wait_value("xproxyd_final_reply_duration_seconds_count", N)
        prom.wait_value('xproxyd_unrouted_total', 0, timeout=5)
        self.assertGreaterEqual(prom.value('xproxyd_connections_total{listener="relay"}'), 1)
        for program in ("xproxy-policyd", "xproxy-milter", "xproxyd"):
            rows = prom.query('xproxy_build_info{program="%s"}' % program)
            self.assertTrue(rows and all(v == 1 for _, v in rows), (program, rows))
            self.assertTrue(all(m.get("version") for m, _ in rows), rows)
        # No label carries an address, a user or a domain.
        for m, _ in prom.query('{__name__=~"xproxy.*"}'):
            for k, v in m.items():
                if k not in ("instance",):
                    self.assertNotIn("127.0.0.66", v, m)
                    self.assertNotIn("example", v, m)

        # A reload is counted and keeps every counter.
        os.kill(pd.pid, signal.SIGHUP)
        prom.wait_value('xproxy_policyd_config_reloads_total{result="ok"}', 1)
        self.assertEqual(prom.value('xproxy_policyd_decisions_total{policy="none",action="dunno"}'), N)


if __name__ == "__main__":
    main()
