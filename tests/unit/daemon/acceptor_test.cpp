// daemon_acceptor_test: the shared accept loop, event loop and idle watchdog
// (xproxy/daemon/acceptor.hpp, watchdog.hpp): a TCP peer outside the allow-list is closed
// and logged before the handler sees it, an admitted one reaches the handler with
// TCP_NODELAY; SIGHUP reaches on_hup and SIGTERM stops the loop with event=stop; an idle
// connection's pending read is cancelled.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <future>
#include <string>
#include <thread>

#include <xproxy/daemon/acceptor.hpp>
#include <xproxy/daemon/log.hpp>
#include <xproxy/daemon/watchdog.hpp>

namespace {

namespace asio = boost::asio;
using namespace xproxy;

// A listening socket on 127.0.0.1 (ephemeral port); *port receives the port.
int listen_loopback(std::uint16_t* port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 8) != 0) return -1;
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    *port = ntohs(a.sin_port);
    return fd;
}

// Connects from source to 127.0.0.1:port and waits until the server closes or the
// handler answers one byte: 'x' when it did, 0 when the connection was closed.
char connect_and_wait(const char* source, std::uint16_t port) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in src{};
    src.sin_family = AF_INET;
    inet_pton(AF_INET, source, &src.sin_addr);
    EXPECT_EQ(bind(c, reinterpret_cast<sockaddr*>(&src), sizeof src), 0);
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    dst.sin_port = htons(port);
    EXPECT_EQ(connect(c, reinterpret_cast<sockaddr*>(&dst), sizeof dst), 0);
    char b = 0;
    if (read(c, &b, 1) != 1) b = 0;
    close(c);
    return b;
}

}  // namespace

TEST(Acceptor, PeerOutsideAllowListNeverReachesTheHandler) {
    log::init("xproxy-test", log::Sink::stderr_, log::Level::info);
    std::uint16_t port = 0;
    int fd = listen_loopback(&port);
    ASSERT_GE(fd, 0);
    const auto allow = *CidrSet::parse("127.0.0.2/32");
    asio::io_context io;
    std::atomic<int> served{0};
    std::atomic<bool> no_delay{false};
    daemon::ConnectionHandlers handlers;
    handlers.tcp = [&](daemon::TcpSocket sock) {
        ++served;
        asio::ip::tcp::no_delay opt;
        sock.get_option(opt);
        no_delay = opt.value();
        boost::system::error_code ignored;
        asio::write(sock, asio::buffer("x", 1), ignored);
    };
    daemon::serve_listener(io, fd, {&allow, true}, handlers);
    std::thread loop([&io] { io.run(); });
    testing::internal::CaptureStderr();
    EXPECT_EQ(connect_and_wait("127.0.0.1", port), 0);
    EXPECT_EQ(served.load(), 0);
    EXPECT_EQ(connect_and_wait("127.0.0.2", port), 'x');
    io.stop();
    loop.join();
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(served.load(), 1);
    EXPECT_TRUE(no_delay.load());
    EXPECT_NE(err.find("event=peer_refused peer=127.0.0.1:"), std::string::npos) << err;
    EXPECT_NE(err.find("reason=\"not in --allow-peers\""), std::string::npos) << err;
}

TEST(Acceptor, SignalsReachHupAndStop) {
    log::init("xproxy-test", log::Sink::stderr_, log::Level::info);
    asio::io_context io;
    int hups = 0;
    testing::internal::CaptureStderr();
    // Asio catches both signals from the moment `started` runs.
    int rc = daemon::run_until_stopped(
        io, 2,
        [&] {
            ++hups;
            std::raise(SIGTERM);
        },
        [] { std::raise(SIGHUP); });
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(hups, 1);
    EXPECT_NE(err.find("event=stop signal=" + std::to_string(SIGTERM)), std::string::npos) << err;
}

TEST(Watchdog, IdleConnectionsReadIsCancelled) {
    asio::io_context io;
    asio::local::stream_protocol::socket a(io), b(io);
    asio::local::connect_pair(a, b);
    auto c = std::make_shared<daemon::WatchedSocket<asio::local::stream_protocol::socket>>(
        std::move(a), std::chrono::milliseconds(20));
    boost::system::error_code result;
    bool finished = false;
    daemon::start_watchdog(c);
    char buf[1];
    c->sock.async_read_some(asio::buffer(buf), [&](boost::system::error_code ec, std::size_t) {
        result = ec;
        finished = true;
        c->stop();
    });
    io.run();  // ends once the read was cancelled and the timer stopped
    EXPECT_TRUE(finished);
    EXPECT_EQ(result, asio::error::operation_aborted);
}
