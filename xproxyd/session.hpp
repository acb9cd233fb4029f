// session.hpp: one front-side SMTP session (RFC 5321 server) and its cut-through relay.
//
// The session reads commands (pipelined or not), answers what it can itself (EHLO, NOOP,
// RSET, QUIT, syntax errors, the source commands) and relays each transaction to the
// downstream, which it opens lazily at the first MAIL with the transaction's source:
// MAIL and RCPT replies are the downstream's, DATA is accepted (354) only after the
// downstream accepted it, and the reply to the final dot is the downstream's reply to
// it. xproxyd never answers 250 to a message the downstream did not accept. With the
// fast path the body is also kept (BodyBuffer) so that a destination failing before its
// final reply is replaced by the next one without asking the client to resend.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "body_buffer.hpp"
#include "config.hpp"
#include "conn.hpp"
#include "downstream_pool.hpp"

namespace xproxy::xproxyd {

struct Shared {
    const Config& cfg;
    asio::ssl::context* front_tls = nullptr;  // STARTTLS offered when set
    // Towards each downstream (index as in cfg.downstreams); null with tls=none.
    std::vector<asio::ssl::context*> client_tls;
    DownstreamPool& pool;
    SpillQuota& spill;
    std::atomic<std::uint64_t> sessions{0};
    asio::ssl::context* client_tls_for(const DownstreamConfig& d) const {
        for (std::size_t i = 0; i < client_tls.size() && i < cfg.downstreams.size(); ++i)
            if (&cfg.downstreams[i] == &d) return client_tls[i];
        return nullptr;
    }
};

asio::awaitable<void> run_session(std::shared_ptr<Conn> conn, const DownstreamConfig& ds, Shared& shared);

}  // namespace xproxy::xproxyd
