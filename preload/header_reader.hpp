// header_reader.hpp: the I/O adapter between a non-blocking socket and the PROXY codec
// (<xproxy/wire/proxy_protocol.hpp>). It peeks, decodes, and consumes exactly the header: the
// bytes that follow belong to the application and stay in the socket. It never blocks
// and never allocates more than one header's worth (at most 16 + 65535 bytes, released
// on every path).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "config.hpp"
#include "handoff_wire.hpp"
#include <xproxy/base/ip.hpp>

namespace xproxy::preload {

enum class ReadStatus {
    complete,   // header consumed; client/destination set when it carried addresses
    need_more,  // every byte so far is a valid prefix (or nothing arrived yet)
    drop,       // invalid, unauthenticated, closed or failed: never becomes valid
    wake,       // one of the shim's own wake-up connections (see waker.hpp)
};

struct ReadResult {
    ReadStatus status = ReadStatus::need_more;
    std::string_view reason;  // drop: why (static storage)
    std::string first_bytes;  // drop on invalid input: the start of it, escaped for logs
    int version = 0;
    std::optional<Endpoint> client;  // PROXY command with INET/INET6 addresses only
    std::optional<Endpoint> destination;
};

// Reads the header from fd (non-blocking). cfg.hmac_key non-empty: only a v2 header with
// a valid HMAC TLV made with that key and a signed time within cfg.hmac_window seconds
// of ours is accepted.
// need (in/out, 0 at first): on need_more, how many bytes must be queued before another
// attempt can get further. While fewer are queued (FIONREAD) nothing is peeked again, so
// a header trickled byte by byte costs linear work: a v2 header is peeked whole once, when
// all of it has arrived, and before that only its first 16 bytes (v1: at most 107).
ReadResult read_header(int fd, const Config& cfg, std::size_t& need);
inline ReadResult read_header(int fd, const Config& cfg) {
    std::size_t need = 0;
    return read_header(fd, cfg, need);
}

// True when the bytes already received on fd start with kWakeMagic (peek only).
bool peek_wake_magic(int fd);

}  // namespace xproxy::preload
