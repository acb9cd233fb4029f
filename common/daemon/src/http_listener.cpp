// http_listener.cpp: the side-service HTTP server; see http_listener.hpp.
//
// Its own accept loop rather than serve_listener() (acceptor.hpp): this one can be closed,
// and it counts connections against Limits::max_connections. Parsing is Beast's
// (request_parser with header and body limits); timeouts are the shared idle watchdog's
// (watchdog.hpp), which works for unix sockets as well as TCP.
#include <xproxy/daemon/http_listener.hpp>

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <type_traits>

#include <xproxy/base/escape.hpp>
#include <xproxy/daemon/access.hpp>
#include <xproxy/daemon/listen.hpp>
#include <xproxy/daemon/log.hpp>
#include <xproxy/daemon/watchdog.hpp>

namespace xproxy::http {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using TcpAcceptor = asio::ip::tcp::acceptor;
using UnixAcceptor = asio::local::stream_protocol::acceptor;

struct Listener::Impl {
    Impl(asio::io_context& io_context, std::string listener_name, Limits l, Handler h)
        : io(io_context),
          strand(asio::make_strand(io_context)),
          name(std::move(listener_name)),
          limits(std::move(l)),
          handler(std::move(h)) {}

    asio::io_context& io;
    asio::strand<asio::io_context::executor_type> strand;  // the accept loop and close()
    std::optional<TcpAcceptor> tcp;
    std::optional<UnixAcceptor> unix_;
    std::string name;
    std::uint16_t port = 0;
    Limits limits;
    Handler handler;
    std::atomic<std::size_t> open_connections{0};
    std::atomic<std::size_t> refused{0};        // in the current burst of refusals
    std::atomic<std::size_t> refused_peers{0};  // peers not in allow_peers, current burst
    std::atomic<bool> closed{false};
    // The open connections, for eviction when full (under conn_mutex).
    struct Conn {
        bool busy = false;     // a request in progress (header block read, not yet answered)
        bool evicted = false;  // chosen to make room
        std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now();
        std::function<void()> cancel;  // ends its pending read (posted to its strand)
    };
    std::mutex conn_mutex;
    std::list<std::shared_ptr<Conn>> conns;
    std::atomic<std::size_t> evicted{0};  // in the current burst of evictions
};

namespace {

using Impl = Listener::Impl;

// One open connection, counted for max_connections while it lives.
class ConnectionSlot {
public:
    ConnectionSlot(std::shared_ptr<Impl> impl, std::function<void()> cancel)
        : impl_(std::move(impl)), conn_(std::make_shared<Impl::Conn>()) {
        conn_->cancel = std::move(cancel);
        const std::lock_guard lock(impl_->conn_mutex);
        it_ = impl_->conns.insert(impl_->conns.end(), conn_);
    }
    ~ConnectionSlot() {
        {
            const std::lock_guard lock(impl_->conn_mutex);
            impl_->conns.erase(it_);
        }
        impl_->open_connections.fetch_sub(1);
    }
    ConnectionSlot(const ConnectionSlot&) = delete;
    ConnectionSlot& operator=(const ConnectionSlot&) = delete;

    // Waiting for a request (false when evicted meanwhile: the connection should end).
    bool waiting() {
        const std::lock_guard lock(impl_->conn_mutex);
        conn_->busy = false;
        conn_->since = std::chrono::steady_clock::now();
        return !conn_->evicted;
    }
    void busy() {
        const std::lock_guard lock(impl_->conn_mutex);
        conn_->busy = true;
    }

private:
    std::shared_ptr<Impl> impl_;
    std::shared_ptr<Impl::Conn> conn_;
    std::list<std::shared_ptr<Impl::Conn>>::iterator it_;
};

// Chooses the connection waiting longest without a request in progress and ends it;
// false when every connection has a request in progress.
bool evict_one(Impl& impl) {
    std::shared_ptr<Impl::Conn> victim;
    {
        const std::lock_guard lock(impl.conn_mutex);
        for (const auto& c : impl.conns)
            if (!c->busy && !c->evicted && (!victim || c->since < victim->since)) victim = c;
        if (!victim) return false;
        victim->evicted = true;
    }
    victim->cancel();
    return true;
}

void log_error(const Impl& impl, const std::string& peer, unsigned status, const char* reason) {
    log::warning("event=http_error listener=%s peer=%s status=%u reason=\"%s\"",
                 escape_value(impl.name, 128, false).c_str(), peer.c_str(), status, reason);
}

// What a failed read means: the status to answer (0: none, just close) and the reason.
struct ReadFailure {
    unsigned status = 0;
    const char* reason = nullptr;  // nullptr: nothing worth a warning
};

ReadFailure classify(const boost::system::error_code& ec, bool started) {
    if (ec == bhttp::error::header_limit) return {431, "request header too large"};
    if (ec == bhttp::error::body_limit || ec == bhttp::error::buffer_overflow) return {413, "request body too large"};
    if (ec == asio::error::operation_aborted) return {0, started ? "timeout before the request was complete" : nullptr};
    if (ec == bhttp::error::end_of_stream) return {};  // closed between requests
    if (ec == bhttp::error::partial_message) return {0, "connection closed within a request"};
    if (ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category()) return {400, "malformed request"};
    return {0, started ? "read error within a request" : nullptr};
}

Response finish(Response res, unsigned version, bool keep_alive) {
    res.version(version);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    return res;
}

Response call_handler(const Impl& impl, const Request& req, const std::string& peer) {
    try {
        return impl.handler(req, peer);
    } catch (const std::exception& e) {
        log::error("event=http_error listener=%s peer=%s status=500 reason=\"handler failed: %s\"",
                   escape_value(impl.name, 128, false).c_str(), peer.c_str(), escape_value(e.what(), 200).c_str());
    } catch (...) {
        log::error("event=http_error listener=%s peer=%s status=500 reason=\"handler failed\"",
                   escape_value(impl.name, 128, false).c_str(), peer.c_str());
    }
    return text_response(Status::internal_server_error, "internal error\n");
}

// Gives the connection `d` from now; re-arms the watchdog when that is sooner than the
// wake-up it waits for (the watchdog only ever re-arms later by itself).
template <class Socket>
void set_deadline(const std::shared_ptr<daemon::WatchedSocket<Socket>>& c, std::chrono::milliseconds d) {
    c->idle = d;
    c->touch();
    if (c->deadline < c->timer.expiry()) daemon::start_watchdog(c);
}

template <class Socket>
asio::awaitable<void> serve_connection(std::shared_ptr<Impl> impl, Socket sock) {
    const std::string peer = daemon::peer_name(sock.native_handle());
    auto c = std::make_shared<daemon::WatchedSocket<Socket>>(std::move(sock), impl->limits.header_timeout);
    ConnectionSlot slot(impl, [w = std::weak_ptr(c)] {
        auto conn = w.lock();
        if (!conn) return;
        asio::post(conn->sock.get_executor(), [conn] {
            boost::system::error_code ignored;
            conn->sock.cancel(ignored);
        });
    });
    daemon::start_watchdog(c);
    // Room for one whole request and one read beyond it; the parser's limits come first.
    boost::beast::flat_buffer buf(impl->limits.max_header_bytes + impl->limits.max_body_bytes + 16384);
    for (;;) {
        bhttp::request_parser<bhttp::string_body> parser;
        parser.header_limit(
            static_cast<std::uint32_t>(std::min<std::size_t>(impl->limits.max_header_bytes, UINT32_MAX)));
        parser.body_limit(impl->limits.max_body_bytes);
        if (!slot.waiting()) break;  // evicted to make room
        set_deadline(c, impl->limits.header_timeout);
        boost::system::error_code ec;
        co_await bhttp::async_read_header(c->sock, buf, parser, asio::redirect_error(asio::use_awaitable, ec));
        if (!ec) {
            slot.busy();
            set_deadline(c, impl->limits.idle_timeout);
            if (!parser.is_done())
                co_await bhttp::async_read(c->sock, buf, parser, asio::redirect_error(asio::use_awaitable, ec));
        }
        if (ec) {
            const bool started = parser.got_some() || buf.size() > 0;
            const ReadFailure f = classify(ec, started);
            if (f.reason) log_error(*impl, peer, f.status, f.reason);
            else if (ec == asio::error::operation_aborted)
                log::debug("event=http_idle_close listener=%s peer=%s", escape_value(impl->name, 128, false).c_str(),
                           peer.c_str());
            if (f.status != 0) {
                auto res = finish(text_response(static_cast<Status>(f.status), std::string(f.reason) + "\n"), 11,
                                  false);
                c->touch();
                boost::system::error_code ignored;
                co_await bhttp::async_write(c->sock, res, asio::redirect_error(asio::use_awaitable, ignored));
            }
            break;
        }
        const Request& req = parser.get();
        Response handled = call_handler(*impl, req, peer);
        // A refusal ends the connection: whatever the client pipelined after it is not read.
        const auto code = handled.result_int();
        const bool refusal = code == 400 || code == 401 || code == 405 || code == 413 || code == 431;
        const bool keep_alive = req.keep_alive() && !impl->closed.load() && !refusal;
        auto res = finish(std::move(handled), req.version(), keep_alive);
        c->touch();
        boost::system::error_code wec;
        co_await bhttp::async_write(c->sock, res, asio::redirect_error(asio::use_awaitable, wec));
        if (wec) {
            log_error(*impl, peer, 0, wec == asio::error::operation_aborted ? "write timeout" : "write error");
            break;
        }
        if (refusal) {
            // Lingering close: the bytes the client pipelined are read and dropped for a
            // moment, so that closing does not reset the connection before it has read
            // the answer.
            boost::system::error_code ignored;
            c->sock.shutdown(asio::socket_base::shutdown_send, ignored);
            set_deadline(c, std::chrono::milliseconds(500));
            std::array<char, 4096> sink{};
            for (std::size_t drained = 0; drained < 1024 * 1024;) {
                const std::size_t n = co_await c->sock.async_read_some(
                    asio::buffer(sink), asio::redirect_error(asio::use_awaitable, ignored));
                if (ignored) break;
                drained += n;
            }
            break;
        }
        if (!keep_alive) break;
    }
    c->stop();
    boost::system::error_code ignored;
    c->sock.shutdown(asio::socket_base::shutdown_both, ignored);
    c->sock.close(ignored);
}

// Admits an accepted socket or closes it when max_connections are open.
template <class Socket>
void admit(const std::shared_ptr<Impl>& impl, Socket sock) {
    if (impl->limits.allow_peers) {
        std::string peer;
        if (!daemon::peer_allowed(sock.native_handle(), *impl->limits.allow_peers, &peer)) {
            if (impl->refused_peers.fetch_add(1) == 0)
                log::warning(
                    "event=http_peer_refused listener=%s peer=%s reason=\"peer not in the allow list\" (further "
                    "refusals are counted until a peer is admitted)",
                    escape_value(impl->name, 128, false).c_str(), peer.c_str());
            boost::system::error_code ignored;
            sock.close(ignored);
            return;
        }
        if (std::size_t n = impl->refused_peers.exchange(0); n > 0)
            log::warning("event=http_peer_refused_end listener=%s refused=%zu",
                         escape_value(impl->name, 128, false).c_str(), n);
    }
    if (impl->open_connections.fetch_add(1) >= impl->limits.max_connections) {
        if (evict_one(*impl)) {
            if (impl->evicted.fetch_add(1) == 0)
                log::warning(
                    "event=http_evicted listener=%s reason=\"too many connections: the one waiting longest without "
                    "a request closed\" max=%zu (further evictions are counted until one is not needed)",
                    escape_value(impl->name, 128, false).c_str(), impl->limits.max_connections);
        } else {
            impl->open_connections.fetch_sub(1);
            if (impl->refused.fetch_add(1) == 0)
                log::warning(
                    "event=http_refused listener=%s peer=%s reason=\"too many connections\" max=%zu (further "
                    "refusals are counted until one is admitted)",
                    escape_value(impl->name, 128, false).c_str(), daemon::peer_name(sock.native_handle()).c_str(),
                    impl->limits.max_connections);
            boost::system::error_code ignored;
            sock.close(ignored);
            return;
        }
    } else if (std::size_t n = impl->evicted.exchange(0); n > 0) {
        log::warning("event=http_evicted_end listener=%s evicted=%zu", escape_value(impl->name, 128, false).c_str(), n);
    }
    if (std::size_t n = impl->refused.exchange(0); n > 0)
        log::warning("event=http_refused_end listener=%s refused=%zu", escape_value(impl->name, 128, false).c_str(), n);
    auto ex = sock.get_executor();
    asio::co_spawn(ex, serve_connection(impl, std::move(sock)), asio::detached);
}

template <class Acceptor>
asio::awaitable<void> accept_loop(std::shared_ptr<Impl> impl, Acceptor& acc) {
    for (;;) {
        boost::system::error_code ec;
        auto sock = co_await acc.async_accept(asio::make_strand(impl->io),
                                              asio::redirect_error(asio::use_awaitable, ec));
        if (impl->closed.load()) co_return;
        if (ec) {
            if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) co_return;
            log::warning("event=accept_error listener=%s error=\"%s\"", escape_value(impl->name, 128, false).c_str(),
                         ec.message().c_str());
            asio::steady_timer t(impl->strand, std::chrono::milliseconds(100));  // EMFILE: no spinning
            co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            continue;
        }
        if constexpr (std::is_same_v<typename Acceptor::protocol_type, asio::ip::tcp>) {
            boost::system::error_code ignored;
            sock.set_option(asio::ip::tcp::no_delay(true), ignored);
        }
        admit(impl, std::move(sock));
    }
}

}  // namespace

Listener::Listener(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Listener::~Listener() { close(); }

Expected<std::unique_ptr<Listener>> Listener::open(asio::io_context& io, std::string_view spec, Limits limits,
                                                   Handler handler, unsigned unix_mode) {
    auto parsed = daemon::parse_listen(spec);
    if (!parsed) return Failure{parsed.error()};
    if (parsed->kind == daemon::ListenSpec::Kind::systemd)
        return Failure{"invalid listener '" + parsed->text + "': an HTTP listener takes inet:, inet6:, unix: or fd:"};
    auto fds = daemon::open_listeners(*parsed, unix_mode);
    if (!fds) return Failure{fds.error()};
    return adopt(io, std::move(fds->front()), parsed->text, std::move(limits), std::move(handler));
}

std::unique_ptr<Listener> Listener::adopt(asio::io_context& io, UniqueFd listening, std::string name, Limits limits,
                                          Handler handler) {
    auto impl = std::make_shared<Impl>(io, std::move(name), std::move(limits), std::move(handler));
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    getsockname(listening.get(), reinterpret_cast<sockaddr*>(&ss), &len);
    if (ss.ss_family == AF_UNIX) {
        impl->unix_.emplace(io, asio::local::stream_protocol(), listening.release());
        asio::co_spawn(impl->strand, accept_loop(impl, *impl->unix_), asio::detached);
    } else {
        impl->tcp.emplace(io, ss.ss_family == AF_INET6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4(),
                          listening.release());
        boost::system::error_code ec;
        impl->port = impl->tcp->local_endpoint(ec).port();
        asio::co_spawn(impl->strand, accept_loop(impl, *impl->tcp), asio::detached);
    }
    return std::unique_ptr<Listener>(new Listener(std::move(impl)));
}

void Listener::close() {
    if (impl_->closed.exchange(true)) return;
    // On the accept loop's strand: an acceptor is not safe for concurrent use.
    asio::post(impl_->strand, [impl = impl_] {
        boost::system::error_code ignored;
        if (impl->tcp) impl->tcp->close(ignored);
        if (impl->unix_) impl->unix_->close(ignored);
    });
}

const std::string& Listener::name() const { return impl_->name; }
std::uint16_t Listener::port() const { return impl_->port; }
std::size_t Listener::connections() const { return impl_->open_connections.load(); }

Response text_response(Status status, std::string body, std::string_view content_type) {
    Response res{status, 11};
    res.set(bhttp::field::content_type, boost::beast::string_view(content_type.data(), content_type.size()));
    res.body() = std::move(body);
    return res;
}

Response json_response(Status status, std::string body) {
    return text_response(status, std::move(body), "application/json");
}

}  // namespace xproxy::http
