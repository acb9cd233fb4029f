// preload_test: libxproxy-preload.so injected into a real (small) server process, driven
// over loopback. Covers trust, spoofing, require mode, split headers, TLVs, TCP6, v4 on a
// v6 listener, blocking/threaded/epoll servers, slow peers, dup, fclose-then-reuse, fds
// above 1024 and descriptor/memory growth over many connections; the caller's addrlen and
// accept flags, AF_UNIX, EINTR, close loops and close_range, threads inside libc's
// accept4, and forked workers sharing a listener (wake-ups and hand-offs); forged wake-ups
// from another user or from a process without the listener, and floods of them; stale
// mappings on clientless connections; trickled headers (linear peeking); descriptors the
// application takes over; close/dup in signal handlers; the HMAC key's wiping.
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cstddef>
#include <cstring>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "config.hpp"
#include "handoff_wire.hpp"
#include "log.hpp"
#include <xproxy/wire/proxy_protocol.hpp>

using namespace std::chrono_literals;
using xproxy::Endpoint;
using xproxy::IpAddress;
using xproxy::SourceInfo;

namespace {

struct Server {
    pid_t pid = -1;
    int out = -1;  // its stdout
    unsigned port = 0;
    std::string unix_path;  // "unix" mode: the listener's path (port is then 1)
    std::string extra;      // stdout lines after port=

    Server(const std::string& mode, const std::map<std::string, std::string>& env, bool v6 = false,
           std::vector<std::string> wrapper = {}) {
        int p[2];
        if (pipe(p) != 0) abort();
        pid = fork();
        if (pid == 0) {
            dup2(p[1], 1);
            close(p[0]);
            close(p[1]);
            setenv("LD_PRELOAD", XPROXY_PRELOAD_SO, 1);
            setenv("XPROXY_LOG", "stderr", 1);
            // Sanitizer builds: the shim is preloaded ahead of the server's own ASan runtime.
            // Without quarantine, freed memory is reused and RSS measurements mean something.
            std::string asan = "verify_asan_link_order=0:quarantine_size_mb=0:thread_local_quarantine_size_kb=0";
            if (const char* old = getenv("ASAN_OPTIONS")) asan = std::string(old) + ":" + asan;
            setenv("ASAN_OPTIONS", asan.c_str(), 1);
            for (auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
            std::vector<std::string> args = std::move(wrapper);
            args.push_back(XPROXY_TEST_SERVER);
            auto colon = mode.find(':');  // "MODE:v6only" passes a second argument
            args.push_back(mode.substr(0, colon));
            if (colon != std::string::npos) args.push_back(mode.substr(colon + 1));
            if (v6) args.push_back("v6");
            std::vector<char*> argv;
            argv.reserve(args.size() + 1);
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            execvp(argv[0], argv.data());
            _exit(127);
        }
        close(p[1]);
        out = p[0];
        std::string line = read_line(20s);
        if (line.rfind("port=", 0) == 0) port = static_cast<unsigned>(std::stoul(line.substr(5)));
        if (line.rfind("unix=", 0) == 0) {
            unix_path = line.substr(5);
            port = 1;
        }
        if (port == 0) ADD_FAILURE() << "test server did not start: '" << line << "'";
    }
    ~Server() {
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, nullptr, 0);
        }
        if (out >= 0) close(out);
    }
    std::string read_line(std::chrono::milliseconds timeout) {
        std::string line;
        auto deadline = std::chrono::steady_clock::now() + timeout;
        char c;
        while (std::chrono::steady_clock::now() < deadline) {
            pollfd pfd{out, POLLIN, 0};
            if (poll(&pfd, 1, 100) <= 0) continue;
            if (read(out, &c, 1) != 1) break;
            if (c == '\n') return line;
            line += c;
        }
        return line;
    }
};

std::map<std::string, std::string> trusted(std::map<std::string, std::string> extra = {}) {
    extra.emplace("XPROXY_TRUSTED", "127.0.0.1/32");
    extra.emplace("XPROXY_TIMEOUT_MS", "1000");
    return extra;
}

int connect_from(const char* src, unsigned port, bool v6 = false) {
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    if (v6) {
        sockaddr_in6 to{};
        to.sin6_family = AF_INET6;
        to.sin6_port = htons(static_cast<uint16_t>(port));
        inet_pton(AF_INET6, "::1", &to.sin6_addr);
        if (connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) return -1;
        return fd;
    }
    sockaddr_in from{};
    from.sin_family = AF_INET;
    inet_pton(AF_INET, src, &from.sin_addr);
    // The port is chosen at connect() time, where loopback TIME_WAIT pairs can be reused:
    // thousands of connections per test must not exhaust the ephemeral ports.
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0) return -1;
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<uint16_t>(port));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) return -1;
    return fd;
}

void send_all(int fd, const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
        ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
        if (n <= 0) return;
        off += static_cast<size_t>(n);
    }
}

std::string read_all(int fd, std::chrono::milliseconds timeout = 5000ms) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd pfd{fd, POLLIN, 0};
        if (poll(&pfd, 1, 50) <= 0) continue;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

// One exchange: connect from src, send bytes (all at once, or split into pieces with a
// pause between them), half-close, return the server's full answer.
std::string talk(unsigned port, const std::string& bytes, const char* src = "127.0.0.1", size_t piece = 0) {
    int fd = connect_from(src, port);
    if (fd < 0) return "connect failed";
    if (piece == 0) {
        send_all(fd, bytes);
    } else {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof one);
        for (size_t i = 0; i < bytes.size(); i += piece) {
            send_all(fd, bytes.substr(i, piece));
            std::this_thread::sleep_for(2ms);
        }
    }
    shutdown(fd, SHUT_WR);
    std::string r = read_all(fd);
    linger lg{1, 0};  // the exchange is over: no TIME_WAIT left behind
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    return r;
}

std::string v2(const char* client, unsigned port, const char* dst = "127.0.0.1", unsigned dport = 25,
               const xproxy::pp::EncodeOptions& opt = {}) {
    SourceInfo si;
    si.client = Endpoint{*IpAddress::parse(client), static_cast<uint16_t>(port)};
    si.server = Endpoint{*IpAddress::parse(dst), static_cast<uint16_t>(dport)};
    return xproxy::pp::encode_v2(si, opt);
}

std::string v1(const char* client, unsigned port, const char* dst = "127.0.0.1", unsigned dport = 25) {
    return xproxy::pp::encode_v1(Endpoint{*IpAddress::parse(client), static_cast<uint16_t>(port)},
                                 Endpoint{*IpAddress::parse(dst), static_cast<uint16_t>(dport)});
}

std::string field(const std::string& text, const std::string& key) {
    auto p = text.find(key + "=");
    if (p == std::string::npos) return "";
    p += key.size() + 1;
    auto e = text.find_first_of(" \n", p);
    return text.substr(p, e == std::string::npos ? std::string::npos : e - p);
}

}  // namespace

TEST(Preload, TrustedV2HeaderGivesOriginalClient) {
    Server s("blocking", trusted());
    ASSERT_NE(s.port, 0u);
    std::string r = talk(s.port, v2("192.0.2.66", 40066) + "HELLO");
    EXPECT_EQ(field(r, "accept"), "192.0.2.66:40066") << r;
    EXPECT_EQ(field(r, "peer"), "192.0.2.66:40066") << r;
    EXPECT_EQ(field(r, "sock"), "127.0.0.1:" + std::to_string(s.port)) << "getsockname is real by default: " << r;
    EXPECT_EQ(field(r, "data"), "HELLO") << "the application never sees header bytes: " << r;
}

TEST(Preload, TrustedV1HeaderAndGetsocknameDestination) {
    Server s("blocking", trusted({{"XPROXY_GETSOCKNAME", "1"}}));
    std::string r = talk(s.port, v1("198.51.100.7", 1234, "203.0.113.9", 2525) + "DATA");
    EXPECT_EQ(field(r, "peer"), "198.51.100.7:1234") << r;
    EXPECT_EQ(field(r, "sock"), "203.0.113.9:2525") << r;
    EXPECT_EQ(field(r, "data"), "DATA") << r;
}

TEST(Preload, UntrustedPeerIsSeenAsItselfAndHeaderIsData) {
    Server s("blocking", trusted());
    std::string hdr = v2("127.0.0.99", 999);
    std::string r = talk(s.port, hdr + "X", "127.0.0.50");
    EXPECT_EQ(field(r, "peer").substr(0, 11), "127.0.0.50:") << r;
    EXPECT_NE(r.find("data=" + hdr + "X"), std::string::npos) << "untrusted bytes reach the application untouched";
    std::string r1 = talk(s.port, v1("127.0.0.99", 999) + "Y", "127.0.0.50");
    EXPECT_NE(r1.find("data=PROXY TCP4 127.0.0.99"), std::string::npos) << r1;
}

TEST(Preload, InertWithoutTrustedList) {
    Server s("blocking", {});
    std::string r = talk(s.port, v2("192.0.2.1", 1) + "Z");
    EXPECT_EQ(field(r, "peer").substr(0, 10), "127.0.0.1:") << r;
}

TEST(Preload, RequireModeDropsGarbageTruncatedAndSilent) {
    Server s("blocking", trusted({{"XPROXY_TIMEOUT_MS", "300"}}));
    // garbage
    EXPECT_EQ(talk(s.port, "GET / HTTP/1.0\r\n\r\n"), "") << "garbage from a trusted peer is dropped";
    // truncated header then EOF
    std::string h = v2("192.0.2.5", 5);
    EXPECT_EQ(talk(s.port, h.substr(0, 20)), "");
    // nothing at all: closed at the timeout
    int fd = connect_from("127.0.0.1", s.port);
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(read_all(fd, 3000ms), "");
    auto waited = std::chrono::steady_clock::now() - t0;
    EXPECT_GE(waited, 250ms);
    EXPECT_LT(waited, 2500ms) << "closed at the header timeout";
    close(fd);
    // and the server still works
    EXPECT_EQ(field(talk(s.port, v2("192.0.2.6", 6) + "ok"), "peer"), "192.0.2.6:6");
}

TEST(Preload, NonRequireModePassesTrustedPeerWithoutHeader) {
    Server s("blocking", trusted({{"XPROXY_REQUIRE", "0"}}));
    std::string r = talk(s.port, "EHLO x\r\n");
    EXPECT_EQ(field(r, "peer").substr(0, 10), "127.0.0.1:") << r;
    EXPECT_NE(r.find("data=EHLO x"), std::string::npos) << r;
}

TEST(Preload, HeadersSplitByteByByte) {
    Server s("blocking", trusted());
    std::string r = talk(s.port, v2("192.0.2.10", 10) + "A", "127.0.0.1", 1);
    EXPECT_EQ(field(r, "peer"), "192.0.2.10:10") << r;
    EXPECT_EQ(field(r, "data"), "A") << r;
    r = talk(s.port, v1("192.0.2.11", 11) + "B", "127.0.0.1", 1);
    EXPECT_EQ(field(r, "peer"), "192.0.2.11:11") << r;
    EXPECT_EQ(field(r, "data"), "B") << r;
}

TEST(Preload, V2WithLargeTlvs) {
    Server s("epoll", trusted());
    xproxy::pp::EncodeOptions opt;
    opt.authority = std::string(300, 'a');  // a 300-byte TLV
    opt.pad_to = 2000;
    opt.crc32c = true;
    std::string r = talk(s.port, v2("192.0.2.12", 12, "127.0.0.1", 25, opt) + "C");
    EXPECT_EQ(field(r, "peer"), "192.0.2.12:12") << r;
    EXPECT_EQ(field(r, "data"), "C") << r;
}

TEST(Preload, Tcp6V1Header) {
    Server s("blocking", trusted());
    std::string hdr = "PROXY TCP6 2001:db8::66 2001:db8::1 4066 25\r\n";
    std::string r = talk(s.port, hdr + "D");
    EXPECT_EQ(field(r, "peer"), "[2001:db8::66]:4066") << r;
    EXPECT_EQ(field(r, "data"), "D") << r;
}

TEST(Preload, V4HeaderOnV6ListenerIsV4Mapped) {
    Server s("blocking", trusted({{"XPROXY_TRUSTED", "127.0.0.1/32, ::1"}}), true);
    std::string r = talk(s.port, v2("192.0.2.13", 13) + "E");
    EXPECT_EQ(field(r, "accept"), "[::ffff:192.0.2.13]:13") << r;
    EXPECT_EQ(field(r, "peer"), "[::ffff:192.0.2.13]:13") << r;
    EXPECT_EQ(field(r, "data"), "E") << r;
}

TEST(Preload, LocalAndUnknownKeepRealEndpoints) {
    Server s("blocking", trusted());
    xproxy::pp::EncodeOptions opt;
    opt.local = true;
    std::string r = talk(s.port, v2("192.0.2.14", 14, "127.0.0.1", 25, opt) + "F");
    EXPECT_EQ(field(r, "peer").substr(0, 10), "127.0.0.1:") << r;
    EXPECT_EQ(field(r, "data"), "F") << r;
    r = talk(s.port, std::string("PROXY UNKNOWN\r\n") + "G");
    EXPECT_EQ(field(r, "peer").substr(0, 10), "127.0.0.1:") << r;
    EXPECT_EQ(field(r, "data"), "G") << r;
}

// A slow trusted peer must not delay others: blocking, threaded and epoll servers.
class Slowloris : public ::testing::TestWithParam<std::string> {};

TEST_P(Slowloris, OthersAcceptedWithin50ms) {
    Server s(GetParam(), trusted({{"XPROXY_TIMEOUT_MS", "800"}}));
    int slow = connect_from("127.0.0.1", s.port);
    send_all(slow, v2("192.0.2.20", 20).substr(0, 5));
    std::this_thread::sleep_for(50ms);  // the shim has seen the slow one
    for (int i = 0; i < 5; ++i) {
        int fd = connect_from("127.0.0.1", s.port);
        auto t0 = std::chrono::steady_clock::now();
        send_all(fd, v2("192.0.2.21", static_cast<unsigned>(21 + i)));
        // The server writes its accept line as soon as accept() returned.
        char c;
        pollfd pfd{fd, POLLIN, 0};
        ASSERT_EQ(poll(&pfd, 1, 2000), 1);
        auto waited = std::chrono::steady_clock::now() - t0;
        ASSERT_EQ(recv(fd, &c, 1, MSG_PEEK), 1);
        EXPECT_LT(waited, 50ms) << "connection " << i << " waited "
                                << std::chrono::duration_cast<std::chrono::milliseconds>(waited).count() << " ms";
        shutdown(fd, SHUT_WR);
        std::string r = read_all(fd);
        EXPECT_EQ(field(r, "peer"), "192.0.2.21:" + std::to_string(21 + i)) << r;
        close(fd);
    }
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(read_all(slow, 3000ms), "") << "the stalled connection is closed";
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2000ms);
    close(slow);
}

// The answers to a header that stalls after 7 bytes while a whole one (other_client)
// goes through, and to the late connection once its header and "late" arrive.
struct LateExchange {
    std::string other, late;
};
LateExchange late_header_exchange(unsigned port, const char* late_client, unsigned late_port, const char* other_client,
                                  unsigned other_port) {
    std::string h = v2(late_client, late_port);
    int slow = connect_from("127.0.0.1", port);
    send_all(slow, h.substr(0, 7));
    LateExchange e;
    e.other = talk(port, v2(other_client, other_port) + "x");
    send_all(slow, h.substr(7) + "late");
    shutdown(slow, SHUT_WR);
    e.late = read_all(slow);
    close(slow);
    return e;
}

TEST_P(Slowloris, LateHeaderCompletesWhileOthersFlow) {
    Server s(GetParam(), trusted({{"XPROXY_TIMEOUT_MS", "3000"}}));
    LateExchange e = late_header_exchange(s.port, "192.0.2.30", 30, "192.0.2.31", 31);
    EXPECT_EQ(field(e.other, "peer"), "192.0.2.31:31") << e.other;
    EXPECT_EQ(field(e.late, "peer"), "192.0.2.30:30") << e.late;
    EXPECT_EQ(field(e.late, "data"), "late") << e.late;
}

INSTANTIATE_TEST_SUITE_P(Servers, Slowloris, ::testing::Values("blocking", "threads", "epoll"),
                         [](const auto& p) { return p.param; });

TEST(Preload, DupCarriesMapping) {
    Server s("dup", trusted());
    std::string r = talk(s.port, v2("192.0.2.40", 40) + "H");
    EXPECT_EQ(field(r, "fd"), "300") << r;
    EXPECT_EQ(field(r, "peer"), "192.0.2.40:40") << "dup/F_DUPFD/dup2 keep the source: " << r;
}

class CloseBehindOurBack : public ::testing::TestWithParam<std::string> {};

// fclose() (not hooked: checked against the kernel's peer) and close_range() (hooked).
TEST_P(CloseBehindOurBack, ReusedDescriptorGetsNoStaleSource) {
    Server s(GetParam(), trusted());
    // A plain listener the server will connect out to on the reused descriptor.
    int l = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    listen(l, 4);
    socklen_t al = sizeof a;
    getsockname(l, reinterpret_cast<sockaddr*>(&a), &al);
    std::string r = talk(s.port, v2("192.0.2.50", 50) + "C" + std::to_string(ntohs(a.sin_port)));
    EXPECT_EQ(field(r, "peer"), "192.0.2.50:50") << r;
    pollfd pfd{l, POLLIN, 0};
    ASSERT_EQ(poll(&pfd, 1, 5000), 1) << "the server connected out on the reused descriptor";
    int c = accept(l, nullptr, nullptr);
    ASSERT_GE(c, 0);
    std::string reused = read_all(c);
    EXPECT_EQ(field(reused, "fd"), field(r, "fd")) << "same descriptor number reused: " << reused;
    EXPECT_EQ(field(reused, "peer"), "127.0.0.1:" + std::to_string(ntohs(a.sin_port)))
        << "the reused fd reports its real peer, not the old client: " << reused;
    close(c);
    close(l);
}

INSTANTIATE_TEST_SUITE_P(Preload, CloseBehindOurBack, ::testing::Values("fclose", "closerange"),
                         [](const auto& p) { return p.param; });

TEST(Preload, DescriptorsAbove1024) {
    Server s("highfd", trusted());
    std::string r = talk(s.port, v2("192.0.2.60", 60) + "I");
    EXPECT_GT(std::stoi(field(r, "fd")), 1024) << r;
    EXPECT_EQ(field(r, "peer"), "192.0.2.60:60") << r;
}

TEST(Preload, TenThousandConnectionsNoGrowth) {
    Server s("epoll", trusted());
    auto stats = [&] {
        int fd = connect_from("127.0.0.1", s.port);
        send_all(fd, v2("192.0.2.70", 70) + "STATS\n");
        std::string r = read_all(fd);
        close(fd);
        return r;
    };
    for (int i = 0; i < 1000; ++i) talk(s.port, v2("192.0.2.71", static_cast<unsigned>(1000 + i)) + "x");
    {
        // One late header first: the completer, the waker and the hand-off socket are made
        // on first use, which a loaded machine may reach during the loop below. They are
        // the shim's fixed cost, not growth.
        LateExchange e = late_header_exchange(s.port, "192.0.2.73", 73, "192.0.2.74", 74);
        ASSERT_EQ(field(e.other, "peer"), "192.0.2.74:74") << e.other;
        ASSERT_EQ(field(e.late, "peer"), "192.0.2.73:73") << e.late;
    }
    std::string before = stats();
    for (int i = 0; i < 10000; ++i) {
        std::string r = talk(s.port, v2("192.0.2.72", static_cast<unsigned>(1000 + i % 60000)) + "x");
        if (i % 2500 == 0) {
            ASSERT_EQ(field(r, "data"), "x") << r;
        }
    }
    std::string after = stats();
    std::printf("10000 connections: before %s          after  %s", before.c_str(), after.c_str());
    EXPECT_EQ(field(after, "fds"), field(before, "fds")) << before << after;
    long rss_before = std::stol(field(before, "rss")), rss_after = std::stol(field(after, "rss"));
#if defined(__SANITIZE_ADDRESS__)
    // ASan keeps a context per thread ever created (the server starts one per connection),
    // so RSS says nothing here; the normal build of this test checks it.
    (void)rss_before;
    (void)rss_after;
#else
    EXPECT_LT(rss_after - rss_before, 1024) << "RSS grew by more than 1 MiB: " << before << after;
#endif
}

TEST(Preload, HmacRequiredWhenConfigured) {
    char path[] = "/tmp/xproxy-hmac-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    const std::string key = "0123456789abcdef0123456789abcdef";
    ASSERT_EQ(write(fd, key.data(), key.size()), static_cast<ssize_t>(key.size()));
    close(fd);
    chmod(path, 0600);
    {
        Server s("blocking", trusted({{"XPROXY_HMAC_KEY_FILE", path}}));
        xproxy::pp::EncodeOptions opt;
        opt.hmac_key = key;
        opt.hmac_key_id = 1;
        opt.hmac_time = std::time(nullptr);
        EXPECT_EQ(field(talk(s.port, v2("192.0.2.80", 80, "127.0.0.1", 25, opt) + "J"), "peer"), "192.0.2.80:80");
        EXPECT_EQ(talk(s.port, v2("192.0.2.81", 81) + "K"), "") << "a header without HMAC is dropped";
        opt.hmac_key = "another key, another signature!!";
        EXPECT_EQ(talk(s.port, v2("192.0.2.82", 82, "127.0.0.1", 25, opt) + "L"), "") << "wrong key: dropped";
    }
    chmod(path, 0644);
    {
        // A key file others can read is refused: the shim stays inert rather than trust it.
        Server s("blocking", trusted({{"XPROXY_HMAC_KEY_FILE", path}}));
        std::string r = talk(s.port, v2("192.0.2.83", 83) + "M");
        EXPECT_EQ(field(r, "peer").substr(0, 10), "127.0.0.1:") << r;
    }
    unlink(path);
}

// Normal builds run the server under valgrind; sanitizer builds (where valgrind cannot
// run) under LeakSanitizer, which reports leaks at exit with a non-zero status.
TEST(Preload, HundredThousandEagainUnderValgrind) {
#if defined(__SANITIZE_ADDRESS__)
    std::vector<std::string> checker;
    auto env = trusted({{"XPROXY_TIMEOUT_MS", "300"}});
#else
    if (access("/usr/bin/valgrind", X_OK) != 0) GTEST_FAIL() << "valgrind is not installed (scripts/bootstrap)";
    std::vector<std::string> checker = {"/usr/bin/valgrind",  "--quiet",
                                        "--leak-check=full",  "--errors-for-leak-kinds=definite",
                                        "--error-exitcode=9", "--log-file=/tmp/xproxy-valgrind.%p.log"};
    auto env = trusted({{"XPROXY_TIMEOUT_MS", "300"}});
#endif
    Server s("eagain", env, false, checker);
    ASSERT_NE(s.port, 0u);
    EXPECT_EQ(s.read_line(120s), "eagain=100000");
    // Three connections: one complete at once, one whose header arrives late, one that
    // never sends a header (dropped at the timeout); then the server exits.
    EXPECT_EQ(field(talk(s.port, v2("192.0.2.90", 90) + "a"), "peer"), "192.0.2.90:90");
    EXPECT_EQ(field(talk(s.port, v2("192.0.2.91", 91) + "b", "127.0.0.1", 3), "peer"), "192.0.2.91:91");
    int silent = connect_from("127.0.0.1", s.port);
    EXPECT_EQ(read_all(silent, 5000ms), "");
    close(silent);
    EXPECT_EQ(field(talk(s.port, v2("192.0.2.92", 92) + "c"), "peer"), "192.0.2.92:92");
    int status = 0;
    auto deadline = std::chrono::steady_clock::now() + 60s;
    pid_t done = 0;
    while (std::chrono::steady_clock::now() < deadline && (done = waitpid(s.pid, &status, WNOHANG)) == 0)
        std::this_thread::sleep_for(50ms);
    ASSERT_EQ(done, s.pid) << "server did not exit";
    s.pid = -1;
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "the leak checker found leaks or errors (valgrind: exit 9, see "
                                         "/tmp/xproxy-valgrind.*.log; LeakSanitizer: 23)";
}

TEST(Preload, ConfigFileAndEnvironmentOverride) {
    char path[] = "/tmp/xproxy-conf-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    const std::string conf = "# shim settings\nXPROXY_TRUSTED = 127.0.0.1\nXPROXY_GETSOCKNAME=1\n";
    ASSERT_EQ(write(fd, conf.data(), conf.size()), static_cast<ssize_t>(conf.size()));
    close(fd);
    {
        Server s("blocking", {{"XPROXY_CONFIG", path}});
        std::string r = talk(s.port, v2("192.0.2.95", 95, "203.0.113.5", 2525) + "N");
        EXPECT_EQ(field(r, "peer"), "192.0.2.95:95") << r;
        EXPECT_EQ(field(r, "sock"), "203.0.113.5:2525") << r;
    }
    {
        Server s("blocking", {{"XPROXY_CONFIG", path}, {"XPROXY_GETSOCKNAME", "0"}});
        std::string r = talk(s.port, v2("192.0.2.96", 96, "203.0.113.5", 2525) + "O");
        EXPECT_EQ(field(r, "sock"), "127.0.0.1:" + std::to_string(s.port)) << "the environment wins: " << r;
    }
    {
        // An unknown setting in the file (a typo) makes the shim inert instead of half-configured.
        std::ofstream(path, std::ios::app) << "XPROXY_REQIURE=0\n";
        Server s("blocking", {{"XPROXY_CONFIG", path}});
        std::string r = talk(s.port, v2("192.0.2.97", 97) + "P");
        EXPECT_EQ(field(r, "peer").substr(0, 10), "127.0.0.1:") << r;
    }
    unlink(path);
}

TEST(Preload, CallersAddressLengthIsHonoured) {
    Server s("addrlen", trusted());
    std::string r = talk(s.port, v2("192.0.2.100", 100) + "Q");
    // An 8-byte buffer gets the first 8 bytes of the sockaddr_in (family 2, port 100,
    // 192.0.2.100), the 2 bytes after it stay untouched, and the true length is reported.
    EXPECT_EQ(field(r, "acclen"), "16") << r;
    EXPECT_EQ(field(r, "accbytes"), "02000064c0000264eeee") << r;
    EXPECT_EQ(field(r, "peerlen"), "16") << r;
    EXPECT_EQ(field(r, "peerbytes"), "02000064c0000264eeee") << r;
}

TEST(Preload, UnixListenerIsUntouched) {
    Server s("unix", trusted({{"XPROXY_TRUSTED", "0.0.0.0/0, ::/0"}}));
    ASSERT_FALSE(s.unix_path.empty());
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", s.unix_path.c_str());
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    std::string hdr = v2("192.0.2.101", 101);
    send_all(fd, hdr + "U");
    std::string r = read_all(fd, 2000ms);
    close(fd);
    unlink(s.unix_path.c_str());
    EXPECT_EQ(field(r, "family"), "1") << r;
    EXPECT_EQ(field(r, "peerrc"), "0") << r;
    EXPECT_EQ(field(r, "peerfamily"), "1") << r;
    EXPECT_NE(r.find("data=" + hdr + "U"), std::string::npos) << "the header is the application's data";
}

TEST(Preload, AcceptFlagsAreTheCallers) {
    {
        Server s("blocking", trusted());
        EXPECT_EQ(field(talk(s.port, v2("192.0.2.102", 102)), "fl"), "-") << "accept(): blocking, no close-on-exec";
        EXPECT_EQ(field(talk(s.port, v2("192.0.2.102", 103), "127.0.0.1", 4), "fl"), "-")
            << "the same after a late header";
        EXPECT_EQ(field(talk(s.port, "x", "127.0.0.50"), "fl"), "-") << "untrusted peers too";
    }
    {
        Server s("epoll", trusted());
        EXPECT_EQ(field(talk(s.port, v2("192.0.2.104", 104)), "fl"), "nb") << "accept4(SOCK_NONBLOCK)";
        EXPECT_EQ(field(talk(s.port, v2("192.0.2.104", 105), "127.0.0.1", 4), "fl"), "nb");
    }
}

TEST(Preload, RequireOffPassesSilentTrustedPeerAfterTimeout) {
    Server s("blocking", trusted({{"XPROXY_REQUIRE", "0"}, {"XPROXY_TIMEOUT_MS", "300"}}));
    int fd = connect_from("127.0.0.1", s.port);
    auto t0 = std::chrono::steady_clock::now();
    pollfd pfd{fd, POLLIN, 0};
    ASSERT_EQ(poll(&pfd, 1, 3000), 1) << "a server that speaks first still gets the connection";
    auto waited = std::chrono::steady_clock::now() - t0;
    EXPECT_GE(waited, 250ms);
    shutdown(fd, SHUT_WR);
    std::string r = read_all(fd);
    close(fd);
    EXPECT_EQ(field(r, "peer").substr(0, 10), "127.0.0.1:") << r;
}

TEST(Preload, InterruptedBlockingAcceptFailsWithEintr) {
    Server s("eintr", trusted());
    std::this_thread::sleep_for(100ms);  // the server is inside accept()
    kill(s.pid, SIGUSR1);
    EXPECT_EQ(s.read_line(3000ms), "eintr") << "as libc's accept() does for a handler without SA_RESTART";
    EXPECT_EQ(field(talk(s.port, v2("192.0.2.106", 106)), "peer"), "192.0.2.106:106");
}

TEST(Preload, InterruptedBlockingAcceptRestartsWithSaRestart) {
    Server s("restart", trusted());
    std::this_thread::sleep_for(100ms);
    kill(s.pid, SIGUSR1);
    EXPECT_EQ(s.read_line(500ms), "") << "an SA_RESTART handler restarts accept(), as in libc";
    EXPECT_EQ(field(talk(s.port, v2("192.0.2.108", 108)), "peer"), "192.0.2.108:108");
}

class CloseEverything : public ::testing::TestWithParam<std::string> {};

TEST_P(CloseEverything, LogDescriptorSurvives) {
    char path[] = "/tmp/xproxy-log-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    {
        Server s(GetParam(), trusted({{"XPROXY_LOG", std::string("file:") + path}, {"XPROXY_LOG_LEVEL", "debug"}}));
        EXPECT_EQ(field(talk(s.port, v2("192.0.2.107", 107)), "peer"), "192.0.2.107:107");
    }
    std::ifstream in(path);
    std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    unlink(path);
    EXPECT_NE(log.find("event=proxied"), std::string::npos) << log;
}

std::string log_of(const char* path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Level info (the default) writes no line per connection, only the summary of the counts
// (at most every XPROXY_LOG_SUMMARY seconds, written by the connection that finds it due).
TEST(Preload, DefaultLevelLogsSummaryNotEachConnection) {
    char path[] = "/tmp/xproxy-log-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    // The counts over every summary line so far (a slow machine may write one early).
    auto counts = [&path] {
        std::map<std::string, unsigned long> sum;
        std::istringstream in(log_of(path));
        for (std::string line; std::getline(in, line);)
            if (line.find("event=summary ") != std::string::npos)
                for (const char* k : {"proxied", "local", "untrusted", "passed", "dropped"})
                    sum[k] += std::stoul(field(line, k));
        return sum;
    };
    std::map<std::string, unsigned long> want = {
        {"proxied", 2}, {"local", 1}, {"untrusted", 1}, {"passed", 0}, {"dropped", 1}};
    std::map<std::string, unsigned long> got;
    {
        Server s("blocking", trusted({{"XPROXY_LOG", std::string("file:") + path}, {"XPROXY_LOG_SUMMARY", "1"}}));
        EXPECT_EQ(field(talk(s.port, v2("192.0.2.111", 111)), "peer"), "192.0.2.111:111");
        EXPECT_EQ(field(talk(s.port, "PROXY UNKNOWN\r\nL"), "data"), "L");  // local
        EXPECT_EQ(field(talk(s.port, "U", "127.0.0.2"), "data"), "U");      // untrusted
        EXPECT_EQ(talk(s.port, "GET / HTTP/1.0\r\n\r\n"), "") << "dropped";
        std::this_thread::sleep_for(2100ms);  // the next connection finds the summary due
        EXPECT_EQ(field(talk(s.port, v2("192.0.2.113", 113)), "peer"), "192.0.2.113:113");
        auto deadline = std::chrono::steady_clock::now() + 5s;
        while ((got = counts()) != want && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(20ms);
    }
    std::string log = log_of(path);
    unlink(path);
    EXPECT_EQ(got, want) << log;
    EXPECT_NE(log.find("event=dropped"), std::string::npos) << "drops stay logged one by one: " << log;
    EXPECT_EQ(log.find("event=proxied"), std::string::npos) << "no line per connection at info: " << log;
}

// Drops stay logged one by one, but at most kWarningsPerSecond (50) lines a second: a
// flood of bad headers is counted in the summary instead.
TEST(Preload, WarningFloodIsCountedNotWritten) {
    char path[] = "/tmp/xproxy-log-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    constexpr unsigned long kBad = 150;
    std::string log;
    unsigned long lines = 0, dropped = 0, suppressed = 0;
    long seconds = 0;  // the flood's duration, rounded up: at most 50 lines in each
    {
        Server s("blocking", trusted({{"XPROXY_LOG", std::string("file:") + path}, {"XPROXY_LOG_SUMMARY", "1"}}));
        auto t0 = std::chrono::steady_clock::now();
        for (unsigned long i = 0; i < kBad; ++i) talk(s.port, "GET / HTTP/1.0\r\n\r\n");
        seconds = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - t0).count() + 1;
        std::this_thread::sleep_for(1100ms);
        EXPECT_EQ(field(talk(s.port, v2("192.0.2.116", 116)), "peer"), "192.0.2.116:116");  // writes the summary
        auto deadline = std::chrono::steady_clock::now() + 5s;
        while ((log = log_of(path)).find("event=summary") == std::string::npos &&
               std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(20ms);
    }
    unlink(path);
    std::istringstream in(log);
    for (std::string line; std::getline(in, line);) {
        if (line.find("event=dropped ") != std::string::npos) ++lines;
        if (line.find("event=summary ") != std::string::npos) {
            dropped += std::stoul(field(line, "dropped"));
            suppressed += std::stoul(field(line, "warnings_suppressed"));
        }
    }
    EXPECT_LE(lines, static_cast<unsigned long>(xproxy::preload::kWarningsPerSecond * (seconds + 1))) << log;
    EXPECT_EQ(dropped, kBad) << log;
    EXPECT_EQ(lines + suppressed, kBad) << log;
}

// At level warning there is no summary: a flood that was cut is said in a warning line of
// its own as soon as the budget allows one again, so no drop goes unreported.
TEST(Preload, WarningFloodIsSaidAtLevelWarning) {
    char path[] = "/tmp/xproxy-log-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    constexpr unsigned long kBad = 150;
    std::string log;
    {
        Server s("blocking", trusted({{"XPROXY_LOG", std::string("file:") + path}, {"XPROXY_LOG_LEVEL", "warning"}}));
        for (unsigned long i = 0; i < kBad; ++i) talk(s.port, "GET / HTTP/1.0\r\n\r\n");
        std::this_thread::sleep_for(1100ms);
        EXPECT_EQ(talk(s.port, "GET / HTTP/1.0\r\n\r\n"), "");  // a new second: its drop is written
        auto deadline = std::chrono::steady_clock::now() + 5s;
        auto drops = [](const std::string& l) {
            unsigned long n = 0;
            for (std::size_t p = l.find("event=dropped "); p != std::string::npos; p = l.find("event=dropped ", p + 1))
                ++n;
            return n;
        };
        while (drops(log = log_of(path)) == 0 && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(20ms);
        while (std::chrono::steady_clock::now() < deadline) {  // until the last drop is there
            log = log_of(path);
            unsigned long said = drops(log);
            std::istringstream in(log);
            for (std::string line; std::getline(in, line);)
                if (line.find("event=warnings_suppressed ") != std::string::npos)
                    said += std::stoul(field(line, "count"));
            if (said >= kBad + 1) break;
            std::this_thread::sleep_for(20ms);
        }
    }
    unlink(path);
    unsigned long lines = 0, counted = 0;
    std::istringstream in(log);
    for (std::string line; std::getline(in, line);) {
        if (line.find("event=dropped ") != std::string::npos) ++lines;
        if (line.find("event=warnings_suppressed ") != std::string::npos) counted += std::stoul(field(line, "count"));
    }
    EXPECT_EQ(log.find("event=summary"), std::string::npos) << "no summary at level warning: " << log;
    EXPECT_EQ(lines + counted, kBad + 1) << "every drop written or counted in a warning line: " << log;
}

// Level debug adds one line per connection.
TEST(Preload, DebugLevelLogsEachConnection) {
    char path[] = "/tmp/xproxy-log-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    std::string log;
    {
        Server s("blocking", trusted({{"XPROXY_LOG", std::string("file:") + path}, {"XPROXY_LOG_LEVEL", "debug"}}));
        EXPECT_EQ(field(talk(s.port, v2("192.0.2.114", 114)), "peer"), "192.0.2.114:114");
        EXPECT_EQ(field(talk(s.port, v2("192.0.2.115", 115)), "peer"), "192.0.2.115:115");
        auto deadline = std::chrono::steady_clock::now() + 5s;
        while ((log = log_of(path)).find("client=192.0.2.115:115") == std::string::npos &&
               std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(20ms);
    }
    unlink(path);
    EXPECT_NE(log.find("event=proxied fd="), std::string::npos) << log;
    EXPECT_NE(log.find("client=192.0.2.114:114"), std::string::npos) << log;
    EXPECT_NE(log.find("client=192.0.2.115:115"), std::string::npos) << log;
}

INSTANTIATE_TEST_SUITE_P(Preload, CloseEverything, ::testing::Values("closeloop", "closefrom"),
                         [](const auto& p) { return p.param; });

// Forked workers share one listener (nginx, pre-forking servers): a late header in one
// worker must not delay the others, and its wake-up connection, whichever worker takes
// it, must never reach the application. The upstream is 127.0.0.1 (trusted: siblings
// recognise wake-ups by their bytes) or 127.0.0.2 (then the wake-ups, from 127.0.0.1, are
// untrusted connections, recognised as loopback ones carrying the magic).
class ForkedWorkers : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

// A connection that was not woken waits for XPROXY_TIMEOUT_MS (3000 ms here); one that was
// is answered at once. The bound between the two leaves room for a loaded machine (these
// tests run beside compilers and other tests): it tells "woken" from "waited for the
// timeout", and says nothing about speed.
constexpr auto kWoken = 1000ms;

TEST_P(ForkedWorkers, LateHeadersWakeTheRightWorker) {
    auto [mode, upstream] = GetParam();
    Server s(mode, trusted({{"XPROXY_TRUSTED", std::string(upstream) + "/32"}, {"XPROXY_TIMEOUT_MS", "3000"}}));
    ASSERT_NE(s.port, 0u);
    for (int round = 0; round < 6; ++round) {
        std::string h = v2("192.0.2.110", static_cast<unsigned>(110 + round));
        int slow = connect_from(upstream.c_str(), s.port);
        ASSERT_GE(slow, 0);
        send_all(slow, h.substr(0, 7));
        std::this_thread::sleep_for(30ms);
        // Others flow meanwhile (and leave workers in poll() or inside libc's accept()).
        for (int i = 0; i < 3; ++i) {
            int fd = connect_from(upstream.c_str(), s.port);
            auto t0 = std::chrono::steady_clock::now();
            send_all(fd, v2("192.0.2.111", static_cast<unsigned>(1000 + round * 10 + i)));
            pollfd pfd{fd, POLLIN, 0};
            ASSERT_EQ(poll(&pfd, 1, 2000), 1);
            EXPECT_LT(std::chrono::steady_clock::now() - t0, kWoken) << "round " << round << " connection " << i;
            shutdown(fd, SHUT_WR);
            EXPECT_EQ(field(read_all(fd), "peer"), "192.0.2.111:" + std::to_string(1000 + round * 10 + i));
            close(fd);
        }
        std::this_thread::sleep_for(20ms);
        auto t0 = std::chrono::steady_clock::now();
        send_all(slow, h.substr(7));
        pollfd pfd{slow, POLLIN, 0};
        ASSERT_EQ(poll(&pfd, 1, 3000), 1) << "round " << round << ": the late connection was never accepted";
        EXPECT_LT(std::chrono::steady_clock::now() - t0, kWoken) << "round " << round << ": accepted late";
        shutdown(slow, SHUT_WR);
        EXPECT_EQ(field(read_all(slow), "peer"), "192.0.2.110:" + std::to_string(110 + round));
        close(slow);
    }
    // Every connection the workers' application saw came from a client, none from a wake-up.
    std::string lines;
    for (std::string l; !(l = s.read_line(200ms)).empty();) lines += l + "\n";
    EXPECT_EQ(lines.find("accept=127.0.0."), std::string::npos) << lines;
}

INSTANTIATE_TEST_SUITE_P(Workers, ForkedWorkers,
                         ::testing::Combine(::testing::Values("prefork", "preforkb"),
                                            ::testing::Values("127.0.0.1", "127.0.0.2")),
                         [](const auto& p) {
                             std::string up = std::get<1>(p.param) == "127.0.0.1" ? "trusted_wakeups"
                                                                                  : "untrusted_wakeups";
                             return std::get<0>(p.param) + "_" + up;
                         });

// Threads of one process in a blocking accept(): after a burst, some of them sit inside
// libc's accept4() and none polls; a header completing then must still be returned.
TEST(Preload, ThreadsInsideLibcAcceptAreWoken) {
    Server s("threads", trusted({{"XPROXY_TIMEOUT_MS", "3000"}}));
    for (int round = 0; round < 5; ++round) {
        std::string h = v2("192.0.2.120", static_cast<unsigned>(120 + round));
        int slow = connect_from("127.0.0.1", s.port);
        send_all(slow, h.substr(0, 7));
        std::this_thread::sleep_for(30ms);
        std::vector<std::thread> burst;
        burst.reserve(8);
        for (int i = 0; i < 8; ++i)
            burst.emplace_back([&s, i] { talk(s.port, v2("192.0.2.121", static_cast<unsigned>(1200 + i)) + "b"); });
        for (auto& t : burst) t.join();
        std::this_thread::sleep_for(30ms);
        auto t0 = std::chrono::steady_clock::now();
        send_all(slow, h.substr(7));
        pollfd pfd{slow, POLLIN, 0};
        ASSERT_EQ(poll(&pfd, 1, 3000), 1) << "round " << round;
        EXPECT_LT(std::chrono::steady_clock::now() - t0, kWoken) << "round " << round;
        shutdown(slow, SHUT_WR);
        EXPECT_EQ(field(read_all(slow), "peer"), "192.0.2.120:" + std::to_string(120 + round));
        close(slow);
    }
}

// Forked workers on an IPv6-only listener: wake-ups come from ::1 and are recognised by
// their bytes instead of their source address.
TEST(Preload, ForkedWorkersOnIpv6OnlyListener) {
    Server s("prefork:v6only", trusted({{"XPROXY_TRUSTED", "::1"}, {"XPROXY_TIMEOUT_MS", "3000"}}));
    ASSERT_NE(s.port, 0u);
    for (int round = 0; round < 4; ++round) {
        std::string h = v2("2001:db8::7", static_cast<unsigned>(700 + round));
        int slow = connect_from("::1", s.port, true);
        ASSERT_GE(slow, 0);
        send_all(slow, h.substr(0, 9));
        std::this_thread::sleep_for(30ms);
        int quick = connect_from("::1", s.port, true);
        send_all(quick, v2("2001:db8::8", 800));
        shutdown(quick, SHUT_WR);
        EXPECT_EQ(field(read_all(quick), "peer"), "[2001:db8::8]:800");
        close(quick);
        send_all(slow, h.substr(9));
        pollfd pfd{slow, POLLIN, 0};
        auto t0 = std::chrono::steady_clock::now();
        ASSERT_EQ(poll(&pfd, 1, 3000), 1) << "round " << round;
        EXPECT_LT(std::chrono::steady_clock::now() - t0, kWoken) << "round " << round;
        shutdown(slow, SHUT_WR);
        EXPECT_EQ(field(read_all(slow), "peer"), "[2001:db8::7]:" + std::to_string(700 + round));
        close(slow);
    }
    std::string lines;
    for (std::string l; !(l = s.read_line(200ms)).empty();) lines += l + "\n";
    EXPECT_EQ(lines.find("accept=[::1]"), std::string::npos) << lines;
}

// ---------------------------------------------------------------------------------------
// Forged wake-ups. Anyone on the host can connect from the wake-up address 127.88.80.87
// and name a hand-off socket of its own. A forger that gets a sibling's accept() to take
// a connection from it chooses what accept() and getpeername() say: with a Postfix that
// trusts an internal network, an open relay.

namespace {

namespace wire = xproxy::preload;

// A connection the forger offers as "the client's": the test holds the far end (far),
// the forger passes near; its upstream (near's peer) is a listener of the test's.
struct Bait {
    int listener = -1, near_end = -1, far_end = -1;
    Bait() {
        listener = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t al = sizeof a;
        if (bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(listener, 4) != 0 ||
            getsockname(listener, reinterpret_cast<sockaddr*>(&a), &al) != 0)
            abort();
        near_end = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(near_end, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) abort();
        far_end = accept(listener, nullptr, nullptr);
    }
    ~Bait() {
        for (int fd : {listener, near_end, far_end})
            if (fd >= 0) close(fd);
    }
    // What the server wrote into the bait connection, if it ever got it (non-blocking).
    std::string seen() {
        std::string out;
        char buf[512];
        ssize_t n;
        while ((n = recv(far_end, buf, sizeof buf, MSG_DONTWAIT)) > 0) out.append(buf, static_cast<size_t>(n));
        return out;
    }
};

struct ForgeCounts {
    int requests = 0;      // hand-off requests the server sent to the forger
    int listener_fds = 0;  // descriptors the server passed to the forger
};

wire::WireEndpoint wire_of(const Endpoint& e) {
    wire::WireEndpoint w;
    w.present = 1;
    w.len = e.to_sockaddr(w.addr);
    return w;
}

// The forger, in a child process: as user nobody (other_user) or as the test's user.
// Sends `full` wake-ups carrying the whole message and `split` ones whose message comes
// in two parts, all naming its own abstract socket. answer: plays the sibling (offering
// its own listening socket as proof, then the bait with a forged client); otherwise
// accepts requests and never answers (a flood that holds whoever waits for it). Stops on
// a byte from `stop`, then reports its counts on `report`.
[[noreturn]] void forger(unsigned port, bool other_user, int full, int split, bool answer, int bait, int proof,
                         int stop, int report) {
    if (other_user && (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0)) _exit(3);
    std::string name = "xproxy-forger." + std::to_string(getpid());
    int u = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    sockaddr_un ua{};
    ua.sun_family = AF_UNIX;
    std::memcpy(ua.sun_path + 1, name.data(), name.size());
    socklen_t ulen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    if (bind(u, reinterpret_cast<sockaddr*>(&ua), ulen) != 0 || listen(u, 256) != 0) _exit(4);
    std::string msg(wire::kWakeMagic, wire::kWakeMagicLength);
    std::string padded = name;
    padded.resize(wire::kHandoffNameLength, '\0');
    msg += padded;
    std::vector<int> wakes;
    for (int i = 0; i < full + split; ++i) {
        int w = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in from{}, to{};
        from.sin_family = to.sin_family = AF_INET;
        from.sin_addr.s_addr = htonl(0x7f585057);  // 127.88.80.87
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        to.sin_port = htons(static_cast<uint16_t>(port));
        if (bind(w, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0 ||
            connect(w, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0)
            _exit(5);
        if (i < full) {
            send(w, msg.data(), msg.size(), MSG_NOSIGNAL);
        } else {  // the rest follows while a taker that waits would still be waiting
            send(w, msg.data(), 5, MSG_NOSIGNAL);
            usleep(2000);
            send(w, msg.data() + 5, msg.size() - 5, MSG_NOSIGNAL);
        }
        wakes.push_back(w);
    }
    if (write(report, "S", 1) != 1) _exit(6);
    ForgeCounts counts;
    std::map<int, int> steps;  // hand-off connection -> requests answered
    bool stopping = false;
    for (;;) {
        std::vector<pollfd> p = {{u, POLLIN, 0}, {stop, POLLIN, 0}};
        for (auto& [c, n] : steps) p.push_back({c, POLLIN, 0});
        int n = poll(p.data(), p.size(), stopping ? 0 : 10000);
        if (n <= 0) break;  // stopping and nothing left to read (or the test is gone)
        if (p[1].revents) {
            char x;
            if (read(stop, &x, 1) <= 0) {
            }
            stopping = true;
        }
        if (p[0].revents) {
            int c = accept(u, nullptr, nullptr);
            if (c >= 0) steps[c] = 0;
        }
        for (size_t i = 2; i < p.size(); ++i) {
            if (!p[i].revents) continue;
            int c = p[i].fd;
            wire::HandoffRequest req;
            iovec iov{&req, sizeof req};
            msghdr m{};
            m.msg_iov = &iov;
            m.msg_iovlen = 1;
            alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)] = {};
            m.msg_control = control;
            m.msg_controllen = sizeof control;
            ssize_t got = recvmsg(c, &m, MSG_DONTWAIT);
            if (got <= 0) {
                close(c);
                steps.erase(c);
                continue;
            }
            ++counts.requests;
            for (cmsghdr* cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm))
                if (cm->cmsg_type == SCM_RIGHTS)
                    counts.listener_fds += static_cast<int>((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            if (!answer) continue;
            // Version 1 siblings sent the connection at once; version 2 first shows a
            // listener (ours: the forger cannot have the application's), then sends it.
            wire::HandoffReply rep;
            rep.found = 1;
            int fd = proof;
            if (wire::kHandoffVersion < 2 || steps[c] == 1) {
                sockaddr_storage up{};
                socklen_t upl = sizeof up;
                getpeername(bait, reinterpret_cast<sockaddr*>(&up), &upl);
                rep.upstream = wire_of(*Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&up), upl));
                rep.client = wire_of(Endpoint{*IpAddress::parse("203.0.113.66"), 6666});
                fd = bait;
            }
            ++steps[c];
            iovec riov{&rep, sizeof rep};
            msghdr r{};
            r.msg_iov = &riov;
            r.msg_iovlen = 1;
            alignas(cmsghdr) char rc[CMSG_SPACE(sizeof(int))] = {};
            r.msg_control = rc;
            r.msg_controllen = sizeof rc;
            cmsghdr* cm = CMSG_FIRSTHDR(&r);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int));
            std::memcpy(CMSG_DATA(cm), &fd, sizeof fd);
            sendmsg(c, &r, MSG_NOSIGNAL);
        }
    }
    if (write(report, &counts, sizeof counts) != sizeof counts) _exit(7);
    _exit(0);
}

struct ForgeRun {
    ForgeCounts counts;
    std::string legit;  // the server's answer to a real client that came after the forger
    std::string bait;   // what the server wrote into the forger's connection
};

// Runs a forger against the server, then one genuine connection through the trusted
// upstream. The server (blocking, one thread) accepts in arrival order, so once the
// genuine one is answered every forged wake-up has been dealt with.
ForgeRun forge(const Server& s, bool other_user, int full, int split, bool answer) {
    Bait bait;
    int stop[2], report[2];
    if (pipe(stop) != 0 || pipe(report) != 0) abort();
    pid_t pid = fork();
    if (pid == 0) {
        close(stop[1]);
        close(report[0]);
        forger(s.port, other_user, full, split, answer, bait.near_end, bait.listener, stop[0], report[1]);
    }
    close(stop[0]);
    close(report[1]);
    close(bait.near_end);  // the forger's copy is the only one now
    bait.near_end = -1;
    ForgeRun run;
    char sent = 0;
    pollfd p{report[0], POLLIN, 0};
    if (poll(&p, 1, 20000) == 1 && read(report[0], &sent, 1) == 1 && sent == 'S') {
        shutdown(bait.far_end, SHUT_WR);  // a server that got the bait reads its end at once
        run.legit = talk(s.port, v2("192.0.2.130", 130) + "genuine");
    }
    if (write(stop[1], "x", 1) != 1) ADD_FAILURE() << "forger gone";
    char counts[sizeof(ForgeCounts)];
    if (poll(&p, 1, 20000) == 1 && read(report[0], counts, sizeof counts) == static_cast<ssize_t>(sizeof counts))
        std::memcpy(&run.counts, counts, sizeof counts);
    else ADD_FAILURE() << "the forger did not report";
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "forger status " << status;
    close(stop[1]);
    close(report[0]);
    run.bait = bait.seen();
    return run;
}

}  // namespace

// Another user fakes a wake-up and offers a connection with a chosen client: refused
// before anything is sent to it.
TEST(PreloadForgery, AnotherUsersHandoffIsRefused) {
    ASSERT_EQ(geteuid(), 0u) << "the test switches its forger to user nobody";
    Server s("blocking", trusted());
    ASSERT_NE(s.port, 0u);
    ForgeRun run = forge(s, true, 3, 0, true);
    EXPECT_EQ(field(run.legit, "peer"), "192.0.2.130:130") << run.legit;
    EXPECT_EQ(run.bait.find("accept="), std::string::npos) << "accept() returned the forged connection: " << run.bait;
    EXPECT_EQ(run.bait.find("203.0.113.66"), std::string::npos) << run.bait;
    EXPECT_EQ(run.counts.requests, 0) << "the shim talked to another user's socket";
    EXPECT_EQ(run.counts.listener_fds, 0) << "the shim gave its listener away";
}

// The same user, but not one of the application's processes (it does not hold the
// listener): it never gets the listener, and its connection is refused.
TEST(PreloadForgery, HandoffFromAProcessWithoutTheListenerIsRefused) {
    Server s("blocking", trusted());
    ASSERT_NE(s.port, 0u);
    ForgeRun run = forge(s, false, 3, 0, true);
    EXPECT_EQ(field(run.legit, "peer"), "192.0.2.130:130") << run.legit;
    EXPECT_EQ(run.bait.find("accept="), std::string::npos) << "accept() returned the forged connection: " << run.bait;
    EXPECT_EQ(run.counts.listener_fds, 0) << "the shim showed its listener before the peer proved it holds it";
}

// A flood of wake-ups that name a socket which never answers, or whose message is late:
// the shim refuses each one without waiting for the forger (it never even asks it), so
// the flood cannot hold accept(); the genuine client behind it is served.
TEST(PreloadForgery, FloodOfFakeWakeupsIsNeverWaitedFor) {
    ASSERT_EQ(geteuid(), 0u) << "the test switches its forger to user nobody";
    Server s("blocking", trusted());
    ASSERT_NE(s.port, 0u);
    ForgeRun run = forge(s, true, 40, 20, false);
    EXPECT_EQ(field(run.legit, "peer"), "192.0.2.130:130") << run.legit;
    EXPECT_EQ(field(run.legit, "data"), "genuine") << run.legit;
    EXPECT_EQ(run.counts.requests, 0) << "the shim sent requests to the forger and waited for its answers";
}

// Another user's wake-up whose message is already complete when accept() takes it (the
// server was busy with a slow connection): it names a socket of the application's own
// user, so the name's credentials alone would pass. The shim must not act on it at all:
// nothing connects to that socket, so the flood cannot make the application wait on it.
TEST(PreloadForgery, CompleteWakeupFromAnotherUserIsNeverActedOn) {
    ASSERT_EQ(geteuid(), 0u) << "the test switches its forger to user nobody";
    Server s("blocking", trusted());
    ASSERT_NE(s.port, 0u);
    // A hand-off-like socket of the application's user (root here).
    std::string name = "xproxy-test-own." + std::to_string(getpid());
    int own = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_un ua{};
    ua.sun_family = AF_UNIX;
    std::memcpy(ua.sun_path + 1, name.data(), name.size());
    socklen_t ulen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    ASSERT_EQ(bind(own, reinterpret_cast<sockaddr*>(&ua), ulen), 0);
    ASSERT_EQ(listen(own, 16), 0);
    int done[2], stop[2];
    ASSERT_EQ(pipe(done), 0);
    ASSERT_EQ(pipe(stop), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(done[0]);
        close(stop[1]);
        if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
        auto connect_from = [&](std::uint32_t source) {
            int w = socket(AF_INET, SOCK_STREAM, 0);
            sockaddr_in from{}, to{};
            from.sin_family = to.sin_family = AF_INET;
            from.sin_addr.s_addr = htonl(source);
            to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            to.sin_port = htons(static_cast<uint16_t>(s.port));
            if (bind(w, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0 ||
                connect(w, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0)
                _exit(5);
            return w;
        };
        // The blocking server reads this untrusted connection until it ends: meanwhile the
        // wake-up's whole message arrives and waits in the queue.
        int busy = connect_from(0x7f000002);  // 127.0.0.2, not trusted
        int wake = connect_from(0x7f585057);  // 127.88.80.87
        std::string msg(wire::kWakeMagic, wire::kWakeMagicLength);
        std::string padded = name;
        padded.resize(wire::kHandoffNameLength, '\0');
        msg += padded;
        if (send(wake, msg.data(), msg.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(msg.size())) _exit(6);
        usleep(100000);  // the message is queued at the server well before the busy one ends
        shutdown(busy, SHUT_WR);
        if (write(done[1], "S", 1) != 1) _exit(7);
        char x;
        if (read(stop[0], &x, 1) < 0) _exit(8);  // keep the wake-up open until the test is done
        _exit(0);
    }
    close(done[1]);
    close(stop[0]);
    char sent = 0;
    pollfd p{done[0], POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 20000), 1);
    ASSERT_EQ(read(done[0], &sent, 1), 1);
    // The server takes connections in order: once this genuine one is answered, the
    // forged wake-up before it has been dealt with.
    std::string legit = talk(s.port, v2("192.0.2.131", 131) + "genuine");
    EXPECT_EQ(field(legit, "peer"), "192.0.2.131:131") << legit;
    int c = accept4(own, nullptr, nullptr, SOCK_NONBLOCK);
    EXPECT_LT(c, 0) << "the shim connected to the socket another user's wake-up named";
    if (c >= 0) close(c);
    if (write(stop[1], "x", 1) != 1) ADD_FAILURE() << "forger gone";
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "forger status " << status;
    close(done[0]);
    close(stop[1]);
    close(own);
}

// A connection without a client (LOCAL, UNKNOWN, no header) on a descriptor number whose
// previous connection, from the same upstream address and port, was closed with fclose()
// (not hooked): getpeername() reports the upstream, never the previous client.
namespace {
int connect_port(unsigned port, unsigned& sport) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(sport));
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
    socklen_t al = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &al);
    sport = ntohs(a.sin_port);
    a.sin_port = htons(static_cast<uint16_t>(port));
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
    return fd;
}

std::string talk_on(int fd, const std::string& bytes) {
    if (fd < 0) return "connect failed";
    send_all(fd, bytes);
    shutdown(fd, SHUT_WR);
    std::string r = read_all(fd);
    linger lg{1, 0};  // no TIME_WAIT: the same source port is used again at once
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    return r;
}
}  // namespace

TEST(Preload, ConnectionWithoutClientGetsNoStaleMapping) {
    for (bool require : {true, false}) {
        Server s("fclose", trusted({{"XPROXY_REQUIRE", require ? "1" : "0"}}));
        ASSERT_NE(s.port, 0u);
        xproxy::pp::EncodeOptions local;
        local.local = true;
        std::vector<std::string> clientless = {v2("192.0.2.1", 1, "127.0.0.1", 25, local), "PROXY UNKNOWN\r\n"};
        if (!require) clientless.push_back("");  // no header at all
        for (const auto& h : clientless) {
            unsigned sport = 0;
            std::string first = talk_on(connect_port(s.port, sport), v2("192.0.2.140", 140) + "a");
            ASSERT_EQ(field(first, "peer"), "192.0.2.140:140") << first;
            std::string second = talk_on(connect_port(s.port, sport), h + "EHLO b\r\n");
            ASSERT_EQ(field(second, "fd"), field(first, "fd")) << "the descriptor number is reused: " << second;
            EXPECT_EQ(field(second, "peer"), "127.0.0.1:" + std::to_string(sport))
                << "require=" << require << " header '" << h.substr(0, 14) << "': " << second;
            EXPECT_EQ(field(second, "accept"), "127.0.0.1:" + std::to_string(sport)) << second;
        }
    }
}

// A 2000-byte v2 header trickled one byte at a time: completed correctly, and the bytes
// the shim peeks stay proportional to the header (the log counts each peek at debug
// level), not to its square.
TEST(Preload, TrickledHeaderIsPeekedInLinearWork) {
    char path[] = "/tmp/xproxy-peek-XXXXXX";
    int lf = mkstemp(path);
    ASSERT_GE(lf, 0);
    close(lf);
    xproxy::pp::EncodeOptions opt;
    opt.pad_to = 2000;
    std::string h = v2("192.0.2.150", 150, "127.0.0.1", 25, opt);
    ASSERT_EQ(h.size(), 2000u);
    std::string r;
    {
        Server s("blocking", trusted({{"XPROXY_LOG", std::string("file:") + path},
                                      {"XPROXY_LOG_LEVEL", "debug"},
                                      {"XPROXY_TIMEOUT_MS", "20000"}}));
        ASSERT_NE(s.port, 0u);
        int fd = connect_from("127.0.0.1", s.port);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof one);
        for (char c : h) {
            send_all(fd, std::string(1, c));
            std::this_thread::sleep_for(100us);  // one segment, one wake-up of the shim, per byte
        }
        send_all(fd, "T");
        shutdown(fd, SHUT_WR);
        r = read_all(fd);
        close(fd);
    }
    EXPECT_EQ(field(r, "peer"), "192.0.2.150:150") << r;
    EXPECT_EQ(field(r, "data"), "T") << r;
    std::ifstream in(path);
    unsigned long peeked = 0, peeks = 0;
    for (std::string line; std::getline(in, line);) {
        if (line.find("event=peek ") == std::string::npos) continue;
        ++peeks;
        peeked += std::stoul(field(line, "bytes"));
    }
    unlink(path);
    EXPECT_GT(peeks, 0u) << "the debug log counts peeks";
    EXPECT_LE(peeked, 4 * h.size()) << peeks << " peeks of " << peeked << " bytes in all for a " << h.size()
                                    << "-byte header";
}

// The HMAC key's one copy: moving it leaves nothing in the source, and wiping zeroes the
// whole buffer before it is freed.
TEST(Preload, HmacKeyIsWipedWhenMovedOrDropped) {
    const std::string key = "0123456789abcdef0123456789abcdef";
    xproxy::preload::SecretKey a;
    a.assign(key.data(), key.size());
    xproxy::preload::SecretKey b(std::move(a));
    EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): the moved-from state is under test
    EXPECT_EQ(std::string_view(b), key);
    std::string_view held = b;
    b.wipe();  // the buffer stays allocated: its bytes can still be looked at
    EXPECT_TRUE(b.empty());
    EXPECT_EQ(std::string(held.data(), held.size()), std::string(key.size(), '\0'));
}

// The application dup2()s a socket of its own over the shim's notification descriptors
// (as a daemon reusing "free" numbers might): the shim must never write into it, and
// late headers must still complete.
TEST(Preload, DescriptorTakenOverByTheApplicationIsNeverWrittenTo) {
    Server s("clobber", trusted({{"XPROXY_TIMEOUT_MS", "3000"}}));
    ASSERT_NE(s.port, 0u);
    // A late header while another connection flows: the shim makes its notification
    // descriptors (the completer's, and the one a blocking accept() polls).
    LateExchange e = late_header_exchange(s.port, "192.0.2.160", 160, "192.0.2.161", 161);
    ASSERT_EQ(field(e.late, "peer"), "192.0.2.160:160") << e.late;
    std::string c = talk(s.port, v2("192.0.2.162", 162) + "CLOBBER");
    ASSERT_GT(std::stoi(field(c, "clobbered")), 0) << c;
    // The same again: completing a header used to notify through the taken-over numbers.
    e = late_header_exchange(s.port, "192.0.2.163", 163, "192.0.2.164", 164);
    EXPECT_EQ(field(e.other, "peer"), "192.0.2.164:164") << e.other;
    EXPECT_EQ(field(e.late, "peer"), "192.0.2.163:163") << e.late;
    EXPECT_EQ(field(e.late, "data"), "late") << e.late;
    std::string r = talk(s.port, v2("192.0.2.165", 165) + "CHECK");
    EXPECT_EQ(field(r, "leaked"), "0") << "the shim wrote into the application's socket: " << r;
}

// close() and dup() are async-signal-safe: a signal handler calling them while the
// interrupted thread is inside the shim (accepting, reading a header) must not deadlock.
TEST(Preload, CloseAndDupInASignalHandlerNeverDeadlock) {
    Server s("sigclose", trusted());
    ASSERT_NE(s.port, 0u);
    for (int i = 0; i < 1500; ++i) {
        std::string r = talk(s.port, v2("192.0.2.170", static_cast<unsigned>(1000 + i)) + "s");
        ASSERT_EQ(field(r, "peer"), "192.0.2.170:" + std::to_string(1000 + i)) << "connection " << i << ": " << r;
    }
}
