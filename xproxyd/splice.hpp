// splice.hpp: the layer-4 mode after XPROXYTO (seed 000, claim 9): once the exchange is
// answered, the bytes of the source and of the target are copied both ways unchanged
// (TLS ended at xproxyd on either side is decrypted and encrypted again) until either side
// closes or nothing moves for `idle`. What either connection had buffered goes first (a
// source may pipeline MAIL behind XPROXYTO). xproxyd then no longer reads SMTP: the
// source gets the target's replies as they are, so "nothing acknowledged that the target
// did not accept" holds by construction, and a connection lost in the middle is the
// source's to retry (as with any direct connection).
#pragma once

#include <cstdint>

#include "conn.hpp"

namespace xproxy::xproxyd {

struct SpliceResult {
    std::uint64_t to_target = 0;  // bytes from the source to the target
    std::uint64_t to_source = 0;
    const char* ended = "";  // "source closed", "target closed", "idle", "error"
};

// Both connections are closed when it returns.
asio::awaitable<SpliceResult> splice(std::shared_ptr<Conn> source, std::shared_ptr<Conn> target,
                                     std::chrono::seconds idle);

}  // namespace xproxy::xproxyd
