// server.cpp: Boost.Asio accept loop and per-connection coroutines for xproxy-policyd.
#include "server.hpp"

#include <sys/socket.h>

#include <array>
#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio.hpp>
#include <thread>

#include <xproxy/daemon/access.hpp>
#include <xproxy/daemon/log.hpp>
#include <xproxy/base/ip.hpp>

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

namespace xproxy::policyd {

namespace {

std::string peer_name(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "unknown";
    if (ss.ss_family == AF_UNIX) return "unix";
    auto ep = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    return ep ? ep->to_string() : "unknown";
}

// One connection's socket and its idle watchdog. Reads and writes only move `deadline`
// (no timer operation per request); the timer wakes at the deadline, sleeps again if it
// moved, or else cancels the socket's pending read or write. The timer's handler holds
// the state, so it can never outlive it; `done` keeps it from re-arming after the end.
template <class Socket>
struct Connection {
    explicit Connection(Socket s) : sock(std::move(s)), timer(sock.get_executor()) {}
    Socket sock;
    asio::steady_timer timer;
    std::chrono::steady_clock::time_point deadline;
    bool done = false;
};

template <class Socket>
void watch(std::shared_ptr<Connection<Socket>> c) {
    c->timer.expires_at(c->deadline);
    c->timer.async_wait([c](boost::system::error_code ec) {
        if (ec || c->done) return;
        if (std::chrono::steady_clock::now() < c->deadline) return watch(c);  // active meanwhile
        boost::system::error_code ignored;
        c->sock.cancel(ignored);  // the pending read or write ends with operation_aborted
    });
}

template <class Socket>
awaitable<void> serve(Socket s, std::shared_ptr<HandlerFactory> factory, std::chrono::seconds idle) {
    auto c = std::make_shared<Connection<Socket>>(std::move(s));
    auto& sock = c->sock;
    auto handler = factory->make(peer_name(sock.native_handle()));
    std::array<char, 8192> buf;
    const char* why = "peer closed the connection";
    c->deadline = std::chrono::steady_clock::now() + idle;
    watch(c);
    for (;;) {
        c->deadline = std::chrono::steady_clock::now() + idle;
        boost::system::error_code ec;
        std::size_t n = co_await sock.async_read_some(asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::operation_aborted) why = "idle timeout";
            else if (ec != asio::error::eof) why = "read error";
            break;
        }
        FeedResult r = handler->feed(buf.data(), n);
        if (!r.replies.empty()) {
            c->deadline = std::chrono::steady_clock::now() + idle;
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
    c->done = true;
    c->timer.cancel();
    if (why) handler->finish(why);
    boost::system::error_code ignored;
    sock.shutdown(asio::socket_base::shutdown_both, ignored);
    sock.close(ignored);
}

template <class Acceptor>
awaitable<void> accept_loop(Acceptor acc, std::shared_ptr<HandlerFactory> factory, std::chrono::seconds idle,
                            const CidrSet* allow) {
    for (;;) {
        // Each connection lives on its own strand: its coroutine and its idle timer never
        // run concurrently, whatever the size of the thread pool.
        boost::system::error_code ec;
        auto sock = co_await acc.async_accept(asio::make_strand(acc.get_executor()), asio::redirect_error(use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::operation_aborted) co_return;
            log::warning("event=accept_error error=\"%s\"", ec.message().c_str());
            // EMFILE and friends: back off instead of spinning.
            asio::steady_timer t(acc.get_executor(), std::chrono::milliseconds(100));
            co_await t.async_wait(use_awaitable);
            continue;
        }
        if constexpr (std::is_same_v<typename Acceptor::protocol_type, asio::ip::tcp>) {
            boost::system::error_code ignored;
            std::string peer;
            if (!daemon::peer_allowed(sock.native_handle(), *allow, &peer)) {
                log::warning("event=peer_refused peer=%s reason=\"not in --allow-peers\"", peer.c_str());
                sock.close(ignored);
                continue;
            }
            sock.set_option(asio::ip::tcp::no_delay(true), ignored);
        }
        auto ex = sock.get_executor();
        asio::co_spawn(ex, serve(std::move(sock), factory, idle), asio::detached);
    }
}

}  // namespace

struct Server::Impl {
    ServerOptions opts;
    std::shared_ptr<HandlerFactory> factory;
    asio::io_context io;
};

Server::Server(ServerOptions opts, std::shared_ptr<HandlerFactory> factory) : impl_(std::make_unique<Impl>()) {
    impl_->opts = std::move(opts);
    impl_->factory = std::move(factory);
}

Server::~Server() = default;

void Server::stop() { impl_->io.stop(); }

int Server::run(bool handle_signals, void (*on_hup)()) {
    auto& io = impl_->io;
    const CidrSet* allow = &impl_->opts.allow_peers;
    for (int fd : impl_->opts.listen_fds) {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
        if (ss.ss_family == AF_UNIX) {
            asio::local::stream_protocol::acceptor acc(io, asio::local::stream_protocol(), fd);
            asio::co_spawn(io, accept_loop(std::move(acc), impl_->factory, impl_->opts.idle_timeout, allow),
                           asio::detached);
        } else {
            asio::ip::tcp::acceptor acc(io, ss.ss_family == AF_INET6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4(), fd);
            asio::co_spawn(io, accept_loop(std::move(acc), impl_->factory, impl_->opts.idle_timeout, allow),
                           asio::detached);
        }
    }
    asio::signal_set signals(io);
    std::function<void()> wait_signal;
    if (handle_signals) {
        signals.add(SIGTERM);
        signals.add(SIGINT);
        signals.add(SIGHUP);
        wait_signal = [&]() {
            signals.async_wait([&](boost::system::error_code ec, int sig) {
                if (ec) return;
                if (sig == SIGHUP) {
                    if (on_hup) on_hup();
                    wait_signal();
                    return;
                }
                log::info("event=stop signal=%d", sig);
                io.stop();
            });
        };
        wait_signal();
    }
    std::vector<std::thread> pool;
    unsigned extra = impl_->opts.threads > 1 ? impl_->opts.threads - 1 : 0;
    for (unsigned i = 0; i < extra; ++i) pool.emplace_back([&io] { io.run(); });
    io.run();
    for (auto& t : pool) t.join();
    return 0;
}

}  // namespace xproxy::policyd
