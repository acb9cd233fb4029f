// server.cpp: per-connection coroutines for xproxy-policyd, on the shared accept loop
// (xproxy/daemon/acceptor.hpp).
#include "server.hpp"

#include <array>
#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio.hpp>
#include <functional>

#include <xproxy/base/ip.hpp>
#include <xproxy/daemon/acceptor.hpp>
#include <xproxy/daemon/access.hpp>
#include <xproxy/daemon/metrics.hpp>
#include <xproxy/daemon/watchdog.hpp>

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

namespace xproxy::policyd {

namespace {

const metrics::ListenerMetrics& connection_metrics() {
    static const metrics::ListenerMetrics m = metrics::listener_metrics("xproxy_policyd", "policy");
    return m;
}

template <class Socket>
awaitable<void> serve(Socket s, std::shared_ptr<HandlerFactory> factory, std::chrono::seconds idle) {
    const metrics::SessionCount counted(connection_metrics());
    auto c = std::make_shared<daemon::WatchedSocket<Socket>>(std::move(s), idle);
    auto& sock = c->sock;
    auto handler = factory->make(daemon::peer_name(sock.native_handle()));
    std::array<char, 8192> buf;
    const char* why = "peer closed the connection";
    daemon::start_watchdog(c);
    for (;;) {
        c->touch();
        boost::system::error_code ec;
        std::size_t n = co_await sock.async_read_some(asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::operation_aborted) why = "idle timeout";
            else if (ec != asio::error::eof) why = "read error";
            break;
        }
        FeedResult r = handler->feed(buf.data(), n);
        if (!r.replies.empty()) {
            c->touch();
            boost::system::error_code wec;
            co_await asio::async_write(sock, asio::buffer(r.replies), asio::redirect_error(use_awaitable, wec));
            if (wec) {
                why = wec == asio::error::operation_aborted ? "write timeout" : "write error";
                break;
            }
        }
        if (r.close) {
            why = nullptr;  // the handler logged its reason
            break;
        }
    }
    c->stop();
    if (why) handler->finish(why);
    boost::system::error_code ignored;
    sock.shutdown(asio::socket_base::shutdown_both, ignored);
    sock.close(ignored);
}

}  // namespace

struct Server::Impl {
    ServerOptions opts;
    std::shared_ptr<HandlerFactory> factory;
    asio::io_context io;
    std::vector<std::unique_ptr<http::Listener>> http;  // destroyed before io
};

Server::Server(ServerOptions opts, std::shared_ptr<HandlerFactory> factory) : impl_(std::make_unique<Impl>()) {
    impl_->opts = std::move(opts);
    impl_->factory = std::move(factory);
}

Server::~Server() = default;

void Server::stop() { impl_->io.stop(); }

int Server::run(const std::function<void()>& on_hup, const std::function<void()>& started) {
    const auto factory = impl_->factory;
    const auto idle = impl_->opts.idle_timeout;
    daemon::ConnectionHandlers handlers;
    handlers.tcp = [factory, idle](daemon::TcpSocket sock) {
        auto ex = sock.get_executor();
        asio::co_spawn(ex, serve(std::move(sock), factory, idle), asio::detached);
    };
    handlers.unix_ = [factory, idle](daemon::UnixSocket sock) {
        auto ex = sock.get_executor();
        asio::co_spawn(ex, serve(std::move(sock), factory, idle), asio::detached);
    };
    (void)connection_metrics();  // the series exist before the first connection
    const daemon::AcceptOptions accept{&impl_->opts.allow_peers, true};
    for (int fd : impl_->opts.listen_fds) daemon::serve_listener(impl_->io, fd, accept, handlers);
    for (auto& svc : impl_->opts.http_services)
        impl_->http.push_back(http::Listener::adopt(impl_->io, UniqueFd(std::exchange(svc.fd, -1)), svc.name,
                                                    svc.limits, std::move(svc.handler)));
    return daemon::run_until_stopped(impl_->io, impl_->opts.threads, on_hup, started);
}

}  // namespace xproxy::policyd
