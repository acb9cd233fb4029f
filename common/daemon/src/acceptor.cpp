// acceptor.cpp: the accept loop and the event loop; see acceptor.hpp.
#include <xproxy/daemon/acceptor.hpp>

#include <sys/socket.h>

#include <csignal>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <xproxy/daemon/access.hpp>
#include <xproxy/daemon/log.hpp>
#include <xproxy/daemon/notify.hpp>

namespace xproxy::daemon {

namespace {

template <class Acceptor, class Handler>
asio::awaitable<void> accept_loop(Acceptor acc, AcceptOptions opts, Handler handler) {
    for (;;) {
        auto ex = opts.strand ? asio::any_io_executor(asio::make_strand(acc.get_executor()))
                              : asio::any_io_executor(acc.get_executor());
        boost::system::error_code ec;
        auto sock = co_await acc.async_accept(ex, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::operation_aborted) co_return;
            log::warning("event=accept_error error=\"%s\"", ec.message().c_str());
            // EMFILE and friends: back off instead of spinning.
            asio::steady_timer t(acc.get_executor(), std::chrono::milliseconds(100));
            co_await t.async_wait(asio::use_awaitable);
            continue;
        }
        if constexpr (std::is_same_v<typename Acceptor::protocol_type, asio::ip::tcp>) {
            boost::system::error_code ignored;
            std::string peer;
            if (opts.allow_peers && !peer_allowed(sock.native_handle(), *opts.allow_peers, &peer)) {
                log::warning("event=peer_refused peer=%s reason=\"not in --allow-peers\"", peer.c_str());
                sock.close(ignored);
                continue;
            }
            sock.set_option(asio::ip::tcp::no_delay(true), ignored);
        }
        handler(std::move(sock));
    }
}

}  // namespace

void serve_listener(asio::io_context& io, int fd, const AcceptOptions& opts, const ConnectionHandlers& handlers) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    if (ss.ss_family == AF_UNIX && handlers.unix_) {
        asio::local::stream_protocol::acceptor acc(io, asio::local::stream_protocol(), fd);
        asio::co_spawn(io, accept_loop(std::move(acc), opts, handlers.unix_), asio::detached);
    } else {
        asio::ip::tcp::acceptor acc(io, ss.ss_family == AF_INET6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4(), fd);
        asio::co_spawn(io, accept_loop(std::move(acc), opts, handlers.tcp), asio::detached);
    }
}

int run_until_stopped(asio::io_context& io, unsigned threads, const std::function<void()>& on_hup,
                      const std::function<void()>& started) {
    asio::signal_set signals(io, SIGTERM, SIGINT);
    if (on_hup) signals.add(SIGHUP);
    std::function<void()> wait_signal = [&] {
        signals.async_wait([&](boost::system::error_code ec, int sig) {
            if (ec) return;
            if (sig == SIGHUP) {
                on_hup();
                wait_signal();
                return;
            }
            log::info("event=stop signal=%d", sig);
            notify_stopping();
            io.stop();
        });
    };
    wait_signal();
    if (started) started();
    std::vector<std::thread> pool;
    for (unsigned i = 1; i < threads; ++i) pool.emplace_back([&io] { io.run(); });
    io.run();
    for (auto& t : pool) t.join();
    return 0;
}

}  // namespace xproxy::daemon
