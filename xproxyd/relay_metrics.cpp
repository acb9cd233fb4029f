// relay_metrics.cpp: the series of relay_metrics.hpp in the process registry.
#include "relay_metrics.hpp"

namespace xproxy::xproxyd {

namespace {

struct RelayMetrics {
    metrics::Registry& r = metrics::registry();
    metrics::CounterGrid replies{
        r.counter("xproxyd_downstream_replies_total",
                  "Downstream replies by stage (mail, rcpt, data, bdat) and class (2xx, 4xx, 5xx, failed: none).",
                  {"stage", "class"}),
        {"mail", "rcpt", "data", "bdat"},
        {"2xx", "4xx", "5xx", "failed"}};
    metrics::Counter& failover_ok = r.counter("xproxyd_failovers_total",
                                              "Transactions moved to the next destination, by result.", {"result"})
                                        .with({"ok"});
    metrics::Counter& failover_refused = r.counter("xproxyd_failovers_total", "", {"result"}).with({"refused"});
    metrics::Counter& unrouted =
        r.counter("xproxyd_unrouted_total", "Transactions accepted at MAIL with no destination available.").get();
    metrics::Counter& spill_bytes =
        r.counter("xproxyd_spill_bytes_total", "Bytes of message bodies written to spill files.").get();
    metrics::Counter& spill_files =
        r.counter("xproxyd_spill_files_total", "Message bodies that went to a spill file.").get();
    metrics::Counter& pool_hit = r.counter("xproxyd_downstream_pool_lookups_total",
                                           "Look-ups in the pool of parked downstream connections, by result.",
                                           {"result"})
                                     .with({"hit"});
    metrics::Counter& pool_miss = r.counter("xproxyd_downstream_pool_lookups_total", "", {"result"}).with({"miss"});
    metrics::Histogram& final_reply = r.histogram("xproxyd_final_reply_duration_seconds",
                                                  "Time from the client's end of data to the downstream's final reply.")
                                          .get();
};

const RelayMetrics& m() {
    static const RelayMetrics x;
    return x;
}

std::size_t reply_class(const Reply& r) {
    if (r.failed()) return 3;
    if (r.code >= 500) return 2;
    if (r.code >= 400) return 1;
    return 0;  // 2xx (and a 3xx where a final reply was due: counted with the accepted)
}

}  // namespace

void register_relay_metrics() { (void)m(); }
void count_reply(RelayStage stage, const Reply& r) { m().replies.inc(static_cast<std::size_t>(stage), reply_class(r)); }
void count_failover(bool ok) { (ok ? m().failover_ok : m().failover_refused).inc(); }
void count_unrouted() { m().unrouted.inc(); }
void count_spill_bytes(std::uint64_t n) { m().spill_bytes.inc(n); }
void count_spill_file() { m().spill_files.inc(); }
void count_pool_lookup(bool hit) { (hit ? m().pool_hit : m().pool_miss).inc(); }
metrics::Histogram& final_reply_seconds() { return m().final_reply; }

}  // namespace xproxy::xproxyd
