// http_listener.hpp: a small HTTP/1.1 server on Boost.Beast for a daemon's side services
// (metrics, policy queries): plain HTTP on loopback or a unix socket, keep-alive, bounded.
//
// Promises:
//   - one request at a time per connection, answered in order (keep-alive when the client
//     asks for it); the handler's Response gets the request's version, keep_alive and
//     Content-Length set by the listener;
//   - a request header block over Limits::max_header_bytes is answered 431, a body over
//     Limits::max_body_bytes 413, a malformed request 400, a handler that throws 500; the
//     connection is closed after each of these (and after a handler's 400, 401, 405, 413 or
//     431, answered with "Connection: close"), and each is logged once (event=http_error,
//     with the peer and the listener; nothing the client sent reaches the log unescaped);
//   - a connection that does not complete a request body, or read an answer, within
//     idle_timeout is closed (a half-sent request is logged as event=http_error, an idle keep-alive
//     connection only at debug level);
//   - with Limits::allow_peers set, a TCP peer whose address is not in it is closed at
//     once, before anything is read (logged once per burst: event=http_peer_refused, then
//     event=http_peer_refused_end with the count); unix peers are left to the socket's mode;
//   - a connection gets header_timeout from accept, and from each response, to send the
//     header block of its next request (so a keep-alive connection idles that long);
//   - at most max_connections connections at a time: when full, the connection that has
//     been waiting longest without a request in progress is closed to make room (logged
//     once per burst: event=http_evicted, then event=http_evicted_end with the count);
//     only when every connection has a request in progress is the newcomer closed at
//     once, logged once per burst (event=http_refused, then event=http_refused_end);
//   - the handler runs on a thread of the io_context (on a per-connection strand; on
//     several threads at once when the io_context has several): it must be quick and never
//     block;
//   - close() stops accepting; open connections end after the request in progress
//     (answered with "Connection: close") or at their idle timeout.
// A Listener must be destroyed before its io_context. ListenerThread
// (http_listener_thread.hpp) runs one on its own small io_context thread, for a daemon
// without one (the milter).
#pragma once

#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio/io_context.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <optional>

#include <xproxy/base/ip.hpp>
#include <xproxy/base/result.hpp>
#include <xproxy/base/unique_fd.hpp>

namespace xproxy::http {

using Request = boost::beast::http::request<boost::beast::http::string_body>;
using Response = boost::beast::http::response<boost::beast::http::string_body>;
using Status = boost::beast::http::status;

struct Limits {
    std::size_t max_header_bytes = 8192;  // request line and header fields
    std::size_t max_body_bytes = 64 * 1024;
    // From accept, and from each response, to the end of the next request's header block:
    // a connection that sends no request in time is closed (a silent one quietly).
    std::chrono::milliseconds header_timeout{5000};
    std::chrono::milliseconds idle_timeout{30000};  // to complete a body, or to write an answer
    std::size_t max_connections = 64;
    // TCP peers served (daemon::peer_allowed); unset: every peer that can connect.
    std::optional<CidrSet> allow_peers;
};

// `peer` is printable ("127.0.0.1:41234", "unix"), for the handler's log lines.
using Handler = std::function<Response(const Request& request, std::string_view peer)>;

class Listener {
public:
    // Listens on `spec`, the house listen syntax (listen.hpp): inet:HOST:PORT,
    // inet6:[ADDR]:PORT, unix:PATH (bound with unix_mode permissions) or fd:N (not
    // "systemd": its sockets belong to the daemon's main listener). Serving starts once
    // the io_context runs.
    static Expected<std::unique_ptr<Listener>> open(boost::asio::io_context& io, std::string_view spec, Limits limits,
                                                    Handler handler, unsigned unix_mode = 0660);
    // The same on an already listening descriptor; `name` appears in log lines.
    static std::unique_ptr<Listener> adopt(boost::asio::io_context& io, UniqueFd listening, std::string name,
                                           Limits limits, Handler handler);

    ~Listener();
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;

    // Stops accepting (idempotent, from any thread).
    void close();
    // The spec as written (or adopt()'s name).
    const std::string& name() const;
    // The local TCP port (0 for a unix socket).
    std::uint16_t port() const;
    // Connections open now.
    std::size_t connections() const;

    struct Impl;

private:
    explicit Listener(std::shared_ptr<Impl> impl);
    std::shared_ptr<Impl> impl_;
};

// A response with `body` and its Content-Type (the listener sets version, keep-alive and
// Content-Length).
Response text_response(Status status, std::string body, std::string_view content_type = "text/plain; charset=utf-8");
// application/json
Response json_response(Status status, std::string body);

}  // namespace xproxy::http
