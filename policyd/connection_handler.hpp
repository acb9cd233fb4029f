// connection_handler.hpp: what the policy daemon's network loop asks of the protocol
// layer. The loop (server.cpp) owns sockets, timers and buffers; a ConnectionHandler owns
// one connection's protocol state (the request parser) and turns received bytes into
// replies. Keeping the two apart lets the protocol side be unit-tested without sockets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace xproxy::policyd {

struct FeedResult {
    std::string replies;  // bytes to send back (zero or more complete replies)
    bool close = false;   // close the connection after sending `replies`
};

class ConnectionHandler {
public:
    virtual ~ConnectionHandler() = default;
    virtual FeedResult feed(const char* data, std::size_t size) = 0;
    // The peer closed or timed out; for logging of half-sent requests.
    virtual void finish(const char* why) = 0;
};

// Creates a handler for a new connection; `peer` is printable ("127.0.0.1:41234",
// "unix"), used in log lines.
class HandlerFactory {
public:
    virtual ~HandlerFactory() = default;
    virtual std::unique_ptr<ConnectionHandler> make(const std::string& peer) = 0;
};

}  // namespace xproxy::policyd
