// acceptor.hpp: the daemons' accept loop and event loop (Boost.Asio, C++20 coroutines).
//
// serve_listener() accepts on one already-listening descriptor (see listen.hpp), TCP or
// unix, and hands every admitted connection to the daemon's handler, which spawns its
// session. What it promises:
//   - a TCP peer outside AcceptOptions::allow_peers (when set) is closed before it can
//     send a byte, logged as event=peer_refused (access.hpp: peer_allowed());
//   - an admitted TCP connection has TCP_NODELAY;
//   - each connection gets its own strand when AcceptOptions::strand is set, so its
//     coroutine and its timers never run concurrently, whatever the size of the pool;
//   - an accept() error (EMFILE and friends) is logged as event=accept_error and the loop
//     backs off for 100 ms instead of spinning; the loop ends when the io_context stops.
// run_until_stopped() runs the io_context on a pool until SIGTERM or SIGINT.
#pragma once

#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio.hpp>
#include <functional>

#include <xproxy/base/ip.hpp>

namespace xproxy::daemon {

namespace asio = boost::asio;

using TcpSocket = asio::ip::tcp::socket;
using UnixSocket = asio::local::stream_protocol::socket;

struct AcceptOptions {
    const CidrSet* allow_peers = nullptr;  // TCP peers served (must outlive the loop); nullptr: every peer
    bool strand = true;                    // one strand per connection (false: one thread needs none)
};

// What to do with an admitted connection; its executor is the connection's (strand).
struct ConnectionHandlers {
    std::function<void(TcpSocket)> tcp;
    std::function<void(UnixSocket)> unix_;  // unset: every listener is served as TCP
};

// Starts the accept loop of listening descriptor fd on io; Asio owns fd from now on.
void serve_listener(asio::io_context& io, int fd, const AcceptOptions& opts, const ConnectionHandlers& handlers);

// Runs io on `threads` threads (this one included; at least one) until SIGTERM or SIGINT,
// logged as event=stop signal=N and announced as STOPPING=1 (notify.hpp). With on_hup,
// SIGHUP calls it (else SIGHUP is left alone). `started` runs once the signals are caught,
// before the first connection is served. Returns the exit status, 0.
int run_until_stopped(asio::io_context& io, unsigned threads, const std::function<void()>& on_hup = {},
                      const std::function<void()>& started = {});

}  // namespace xproxy::daemon
