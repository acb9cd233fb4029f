// session_shared.hpp: what every session of a listener is given (the configuration, the
// TLS contexts, the parked downstream connections, the spill quota, the session counter),
// and the small helpers the parts of a session (Session, TransactionRelay, DataRelay)
// share for their log lines.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "body_buffer.hpp"
#include "config.hpp"
#include "conn.hpp"
#include "downstream_pool.hpp"
#include "mx_lookup.hpp"

namespace xproxy::xproxyd {

struct Shared {
    const Config& cfg;
    asio::ssl::context* front_tls = nullptr;  // STARTTLS offered when set
    // Towards each downstream (index as in cfg.downstreams); null with tls=none.
    std::vector<asio::ssl::context*> client_tls;
    DownstreamPool& pool;
    SpillQuota& spill;
    std::atomic<std::uint64_t> sessions{0};
    MxLookup* mx = nullptr;                          // with a destinations=mx downstream
    class SubmissionServices* submission = nullptr;  // with a mode=submission listener
    // Messages each egress (index as in cfg.egresses) relayed with a 2xx, for the stats.
    std::unique_ptr<std::atomic<std::uint64_t>[]> egress_relayed {};
    void count_relayed(const Egress* e) {
        if (e && egress_relayed)
            egress_relayed[static_cast<std::size_t>(e - cfg.egresses.data())].fetch_add(1, std::memory_order_relaxed);
    }
    asio::ssl::context* client_tls_for(const DownstreamConfig& d) const {
        for (std::size_t i = 0; i < client_tls.size() && i < cfg.downstreams.size(); ++i)
            if (&cfg.downstreams[i] == &d) return client_tls[i];
        return nullptr;
    }
};

inline std::string endpoint_text(const std::optional<Endpoint>& e) { return e ? e->to_string() : "unknown"; }

}  // namespace xproxy::xproxyd
