// daemon_http_listener_test: the side-service HTTP server (xproxy/daemon/http_listener.hpp,
// http_listener_thread.hpp) over real sockets, driven with raw bytes: a request reaches
// the handler and keep-alive serves the next one on the same connection; an over-long
// header is answered 431, an over-long body 413, garbage 400, a throwing handler 500, and
// each of these is logged once and closes the connection; a half-sent request is closed
// at the header timeout; when full, the connection waiting longest is evicted for a
// newcomer (connections beyond max_connections are closed only when all are busy); a unix socket is served too; close() stops accepting.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <xproxy/daemon/http_listener.hpp>
#include <xproxy/daemon/http_listener_thread.hpp>
#include <xproxy/daemon/log.hpp>

namespace {

using namespace xproxy;
using namespace std::chrono_literals;

// A blocking client with a 5 s receive timeout (a broken server fails the test, never
// hangs it).
class Client {
public:
    explicit Client(std::uint16_t port) {
        fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(port);
        connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        set_timeout();
    }
    explicit Client(const std::string& path) {
        fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        path.copy(a.sun_path, sizeof a.sun_path - 1);
        connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        set_timeout();
    }
    ~Client() { close(fd_); }
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    bool connected() const { return connected_; }
    void send(const std::string& bytes) const {
        std::size_t off = 0;
        while (off < bytes.size()) {
            ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
            if (n <= 0) return;  // the server may close first; the answer tells
            off += static_cast<std::size_t>(n);
        }
    }
    // Reads one response (status line, headers, Content-Length body); "" when the
    // connection ended (or timed out) first.
    std::string response() {
        for (;;) {
            auto end = pending_.find("\r\n\r\n");
            if (end != std::string::npos) {
                std::size_t length = 0;
                auto cl = pending_.find("Content-Length: ");
                if (cl != std::string::npos && cl < end) length = std::strtoul(pending_.c_str() + cl + 16, nullptr, 10);
                if (pending_.size() >= end + 4 + length) {
                    std::string out = pending_.substr(0, end + 4 + length);
                    pending_.erase(0, end + 4 + length);
                    return out;
                }
            }
            if (!fill()) return "";
        }
    }
    // True when the server closed the connection (reads end-of-file within 5 s).
    bool closed_by_server() {
        while (fill()) {
        }
        return eof_;
    }

private:
    void set_timeout() const {
        timeval tv{5, 0};
        setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    bool fill() {
        char buf[4096];
        ssize_t n = recv(fd_, buf, sizeof buf, 0);
        if (n == 0) eof_ = true;
        if (n <= 0) return false;
        pending_.append(buf, static_cast<std::size_t>(n));
        return true;
    }
    int fd_ = -1;
    bool connected_ = false;
    bool eof_ = false;
    std::string pending_;
};

std::string status_line(const std::string& response) { return response.substr(0, response.find("\r\n")); }

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

// Answers "TARGET BODY" for every request; throws for /throw.
http::Response echo(const http::Request& req, std::string_view) {
    if (req.target() == "/throw") throw std::runtime_error("boom\n");
    return http::text_response(http::Status::ok, std::string(req.target()) + " " + req.body());
}

// A listener on 127.0.0.1 on a free port, passed as fd:N (the house syntax has no port 0).
std::unique_ptr<http::ListenerThread> start(http::Limits limits = {}) {
    log::init("xproxy-test", log::Sink::stderr_, log::Level::info);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(listen(fd, 16), 0);
    auto t = http::ListenerThread::open("fd:" + std::to_string(fd), limits, echo);
    EXPECT_TRUE(t) << t.error();
    return t ? std::move(*t) : nullptr;
}

}  // namespace

TEST(HttpListener, ServesRequestsWithKeepAlive) {
    auto server = start();
    ASSERT_TRUE(server);
    Client c(server->listener().port());
    ASSERT_TRUE(c.connected());
    c.send("POST /one HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    std::string r1 = c.response();
    EXPECT_EQ(status_line(r1), "HTTP/1.1 200 OK");
    EXPECT_NE(r1.find("Content-Type: text/plain; charset=utf-8\r\n"), std::string::npos) << r1;
    EXPECT_EQ(r1.substr(r1.find("\r\n\r\n") + 4), "/one hello");
    c.send("GET /two HTTP/1.1\r\nHost: x\r\n\r\n");  // the same connection
    std::string r2 = c.response();
    EXPECT_EQ(status_line(r2), "HTTP/1.1 200 OK");
    EXPECT_EQ(r2.substr(r2.find("\r\n\r\n") + 4), "/two ");
    c.send("GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(status_line(c.response()), "HTTP/1.1 200 OK");
    EXPECT_TRUE(c.closed_by_server());
}

TEST(HttpListener, OverLongHeaderIs431AndLoggedOnce) {
    http::Limits limits;
    limits.max_header_bytes = 512;
    auto server = start(limits);
    ASSERT_TRUE(server);
    testing::internal::CaptureStderr();
    Client c(server->listener().port());
    c.send("GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + std::string(1000, 'a') + "\r\n\r\n");
    EXPECT_EQ(status_line(c.response()), "HTTP/1.1 431 Request Header Fields Too Large");
    EXPECT_TRUE(c.closed_by_server());
    server.reset();
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(count(err, "event=http_error"), 1u) << err;
    EXPECT_NE(err.find("status=431 reason=\"request header too large\""), std::string::npos) << err;
    EXPECT_NE(err.find("peer=127.0.0.1:"), std::string::npos) << err;
}

TEST(HttpListener, OverLongBodyIs413) {
    http::Limits limits;
    limits.max_body_bytes = 100;
    auto server = start(limits);
    ASSERT_TRUE(server);
    Client announced(server->listener().port());
    announced.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n");  // refused before the body
    EXPECT_EQ(status_line(announced.response()), "HTTP/1.1 413 Payload Too Large");
    EXPECT_TRUE(announced.closed_by_server());
    Client chunked(server->listener().port());
    chunked.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n" + std::string(100, 'b') +
                 "\r\n1\r\nb\r\n0\r\n\r\n");
    EXPECT_EQ(status_line(chunked.response()), "HTTP/1.1 413 Payload Too Large");
    Client exact(server->listener().port());
    exact.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'c'));
    EXPECT_EQ(status_line(exact.response()), "HTTP/1.1 200 OK");
}

TEST(HttpListener, GarbageIs400AndItsBytesAreEscapedInTheLog) {
    auto server = start();
    ASSERT_TRUE(server);
    testing::internal::CaptureStderr();
    Client c(server->listener().port());
    c.send("GET / HTTP/9\x1b[31m\r\n\r\n");
    EXPECT_EQ(status_line(c.response()), "HTTP/1.1 400 Bad Request");
    EXPECT_TRUE(c.closed_by_server());
    server.reset();
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(count(err, "event=http_error"), 1u) << err;
    EXPECT_NE(err.find("status=400 reason=\"malformed request\""), std::string::npos) << err;
    EXPECT_EQ(err.find('\x1b'), std::string::npos) << err;
}

TEST(HttpListener, ThrowingHandlerIs500AndTheListenerServesOn) {
    auto server = start();
    ASSERT_TRUE(server);
    testing::internal::CaptureStderr();
    Client c(server->listener().port());
    c.send("GET /throw HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(status_line(c.response()), "HTTP/1.1 500 Internal Server Error");
    Client next(server->listener().port());
    next.send("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(status_line(next.response()), "HTTP/1.1 200 OK");
    server.reset();
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("status=500 reason=\"handler failed: boom\\x0a\""), std::string::npos) << err;
}

TEST(HttpListener, HalfSentRequestIsClosedAtTheHeaderTimeout) {
    http::Limits limits;
    limits.header_timeout = 200ms;  // a header block not complete in time
    auto server = start(limits);
    ASSERT_TRUE(server);
    testing::internal::CaptureStderr();
    Client c(server->listener().port());
    c.send("GET / HTTP/1.1\r\nHost:");
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(c.closed_by_server());
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);  // by the timeout, not the client's 5 s
    Client idle(server->listener().port());                // says nothing: closed quietly
    EXPECT_TRUE(idle.closed_by_server());
    server.reset();
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(count(err, "event=http_error"), 1u) << err;
    EXPECT_NE(err.find("reason=\"timeout before the request was complete\""), std::string::npos) << err;
}

TEST(HttpListener, SilentConnectionsCannotLockOutAValidClient) {
    http::Limits limits;
    limits.max_connections = 4;  // header_timeout stays 5 s: eviction, not the timeout, makes room
    auto server = start(limits);
    ASSERT_TRUE(server);
    const auto port = server->listener().port();
    testing::internal::CaptureStderr();
    std::vector<std::unique_ptr<Client>> silent;
    for (int i = 0; i < 4; ++i) silent.push_back(std::make_unique<Client>(port));
    for (int i = 0; i < 200 && server->listener().connections() < 4; ++i) std::this_thread::sleep_for(10ms);
    ASSERT_EQ(server->listener().connections(), 4u);
    const auto t0 = std::chrono::steady_clock::now();
    for (int round = 0; round < 3; ++round) {  // each newcomer is served at once
        Client c(port);
        c.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        EXPECT_EQ(status_line(c.response()), "HTTP/1.1 200 OK") << round;
    }
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
    EXPECT_TRUE(silent.front()->closed_by_server());  // the oldest silent one made room
    server.reset();
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(count(err, "event=http_evicted "), 1u) << err;  // once per burst
}

TEST(HttpListener, ASilentConnectionIsClosedAtTheHeaderTimeout) {
    http::Limits limits;
    limits.header_timeout = 300ms;  // the idle timeout stays 30 s
    auto server = start(limits);
    ASSERT_TRUE(server);
    Client silent(server->listener().port());
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(silent.closed_by_server());
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
    Client kept(server->listener().port());  // after a response, the same deadline again
    kept.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(status_line(kept.response()), "HTTP/1.1 200 OK");
    t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(kept.closed_by_server());
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
}

TEST(HttpListener, ConnectionsBeyondTheLimitWhenAllAreBusyAreClosed) {
    http::Limits limits;
    limits.max_connections = 2;
    auto server = start(limits);
    ASSERT_TRUE(server);
    const auto port = server->listener().port();
    testing::internal::CaptureStderr();
    // Two connections with a request in progress (header read, body pending): not evicted.
    Client a(port), b(port);
    for (auto* c : {&a, &b}) c->send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhe");
    std::this_thread::sleep_for(200ms);
    Client refused1(port), refused2(port);
    EXPECT_TRUE(refused1.closed_by_server());
    EXPECT_TRUE(refused2.closed_by_server());
    a.send("llo");
    EXPECT_EQ(status_line(a.response()), "HTTP/1.1 200 OK");
    server.reset();
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(count(err, "event=http_refused "), 1u) << err;
}

TEST(HttpListener, PeerOutsideTheAllowListIsClosedUnanswered) {
    http::Limits limits;
    limits.allow_peers = *CidrSet::parse("192.0.2.0/24");  // not 127.0.0.1
    auto server = start(limits);
    ASSERT_TRUE(server);
    testing::internal::CaptureStderr();
    for (int i = 0; i < 3; ++i) {
        Client c(server->listener().port());
        c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        EXPECT_EQ(c.response(), "");
        EXPECT_TRUE(c.closed_by_server());
    }
    server.reset();
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(count(err, "event=http_peer_refused "), 1u) << err;  // once per burst
    EXPECT_NE(err.find("peer=127.0.0.1:"), std::string::npos) << err;

    limits.allow_peers = *CidrSet::parse("127.0.0.0/8");
    auto allowed = start(limits);
    ASSERT_TRUE(allowed);
    Client c(allowed->listener().port());
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(status_line(c.response()), "HTTP/1.1 200 OK");
}

TEST(HttpListener, AHandlersRefusalClosesTheConnection) {
    log::init("xproxy-test", log::Sink::stderr_, log::Level::info);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(listen(fd, 16), 0);
    std::atomic<int> calls{0};
    auto t = http::ListenerThread::open("fd:" + std::to_string(fd), {}, [&](const http::Request&, std::string_view) {
        ++calls;
        return http::text_response(http::Status::unauthorized, "missing or wrong API key\n");
    });
    ASSERT_TRUE(t) << t.error();
    Client c((*t)->listener().port());
    std::string burst;
    for (int i = 0; i < 2000; ++i) burst += "POST /?command=allow HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    c.send(burst);
    const std::string r = c.response();
    EXPECT_EQ(status_line(r), "HTTP/1.1 401 Unauthorized");
    EXPECT_NE(r.find("Connection: close\r\n"), std::string::npos) << r;
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(c.response(), "");                           // nothing more was answered: the connection ended
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);  // by the server, not the client's 5 s
    t->reset();
    EXPECT_EQ(calls.load(), 1);
}

TEST(HttpListener, ServesAUnixSocketOnASharedIoContext) {
    log::init("xproxy-test", log::Sink::stderr_, log::Level::info);
    char dir[] = "/tmp/xproxy-http-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    const std::string path = std::string(dir) + "/http.sock";
    boost::asio::io_context io;
    std::string seen_peer;
    auto listener = http::Listener::open(
        io, "unix:" + path, {},
        [&](const http::Request&, std::string_view peer) {
            seen_peer = peer;
            return http::json_response(http::Status::ok, "{}");
        },
        0600);
    ASSERT_TRUE(listener) << listener.error();
    std::thread t1([&io] { io.run(); }), t2([&io] { io.run(); });
    {
        Client c(path);
        ASSERT_TRUE(c.connected());
        c.send("GET / HTTP/1.0\r\n\r\n");  // HTTP/1.0 without keep-alive: closed after the answer
        std::string r = c.response();
        EXPECT_EQ(status_line(r), "HTTP/1.0 200 OK");
        EXPECT_NE(r.find("Content-Type: application/json\r\n"), std::string::npos) << r;
        EXPECT_TRUE(c.closed_by_server());
    }
    EXPECT_EQ(seen_peer, "unix");
    (*listener)->close();
    for (int i = 0; i < 100; ++i) {  // the close runs on the listener's strand
        Client probe(path);
        if (!probe.connected()) break;
        std::this_thread::sleep_for(10ms);
    }
    Client after(path);
    EXPECT_FALSE(after.connected());
    io.stop();
    t1.join();
    t2.join();
    listener->reset();
    unlink(path.c_str());
    rmdir(dir);
}

TEST(HttpListener, RefusesSystemdAndReportsBadSpecs) {
    boost::asio::io_context io;
    auto sd = http::Listener::open(io, "systemd", {}, echo);
    ASSERT_FALSE(sd);
    EXPECT_NE(sd.error().find("an HTTP listener takes inet:, inet6:, unix: or fd:"), std::string::npos) << sd.error();
    EXPECT_FALSE(http::Listener::open(io, "tcp:1234", {}, echo));
}
