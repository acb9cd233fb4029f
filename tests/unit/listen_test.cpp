// listen_test: listener specifications and the sockets they open.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xproxy/daemon/listen.hpp"

using xproxy::daemon::ListenSpec;
using xproxy::daemon::open_listeners;
using xproxy::daemon::parse_listen;

TEST(ListenSpec, ParseTable) {
    struct Row {
        const char* in;
        bool want_ok;
        ListenSpec::Kind want_kind;
        const char* want_host;
        unsigned want_port;
        const char* want_path;
    };
    using K = ListenSpec::Kind;
    const Row rows[] = {
        {"inet:127.0.0.1:10040", true, K::inet, "127.0.0.1", 10040, ""},
        {"inet:10040@127.0.0.1", true, K::inet, "127.0.0.1", 10040, ""},
        {"inet:localhost:25", true, K::inet, "127.0.0.1", 25, ""},
        {"inet6:[::1]:8891", true, K::inet, "::1", 8891, ""},
        {"inet6:8891@::1", true, K::inet, "::1", 8891, ""},
        {"inet::25", true, K::inet, "0.0.0.0", 25, ""},
        {"unix:/run/xproxy/policy.sock", true, K::unix_, "", 0, "/run/xproxy/policy.sock"},
        {"local:/tmp/x", true, K::unix_, "", 0, "/tmp/x"},
        {"fd:3", true, K::fd, "", 0, ""},
        {"systemd", true, K::systemd, "", 0, ""},
        {"inet:127.0.0.1:0", false, K::inet, "", 0, ""},
        {"inet:127.0.0.1:65536", false, K::inet, "", 0, ""},
        {"inet:mail.example.com:25", false, K::inet, "", 0, ""},
        {"inet:127.0.0.1", false, K::inet, "", 0, ""},
        {"tcp:127.0.0.1:25", false, K::inet, "", 0, ""},
        {"unix:", false, K::inet, "", 0, ""},
        {"fd:-1", false, K::inet, "", 0, ""},
        {"127.0.0.1:25", false, K::inet, "", 0, ""},
    };
    for (const auto& r : rows) {
        std::string err;
        auto s = parse_listen(r.in, &err);
        ASSERT_EQ(s.has_value(), r.want_ok) << r.in << " " << err;
        if (!s) {
            EXPECT_NE(err.find(r.in), std::string::npos) << "error names the spec: " << err;
            continue;
        }
        EXPECT_EQ(s->kind, r.want_kind) << r.in;
        EXPECT_EQ(s->host, r.want_host) << r.in;
        EXPECT_EQ(s->port, r.want_port) << r.in;
        EXPECT_EQ(s->path, r.want_path) << r.in;
    }
}

TEST(ListenSpec, OpensUnixSocketWithMode) {
    char dir[] = "/tmp/xproxy-listen-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    std::string path = std::string(dir) + "/s.sock";
    auto spec = parse_listen("unix:" + path, nullptr);
    ASSERT_TRUE(spec);
    std::string err;
    auto fds = open_listeners(*spec, &err, 0660);
    ASSERT_EQ(fds.size(), 1u) << err;
    struct stat st {};
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0660u);
    close(fds[0]);
    // A stale socket file is replaced.
    fds = open_listeners(*spec, &err, 0600);
    ASSERT_EQ(fds.size(), 1u) << err;
    close(fds[0]);
    unlink(path.c_str());
    rmdir(dir);
}

TEST(ListenSpec, InetBindErrorIsClear) {
    // Take a free port, then ask for the same one again.
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(probe, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t al = sizeof a;
    getsockname(probe, reinterpret_cast<sockaddr*>(&a), &al);
    close(probe);
    std::string text = "inet:127.0.0.1:" + std::to_string(ntohs(a.sin_port));
    auto any = parse_listen(text, nullptr);
    ASSERT_TRUE(any);
    std::string err;
    auto first = open_listeners(*any, &err);
    ASSERT_EQ(first.size(), 1u) << err;
    auto second = open_listeners(*any, &err);
    EXPECT_TRUE(second.empty());
    EXPECT_NE(err.find(text), std::string::npos) << err;
    EXPECT_NE(err.find("in use"), std::string::npos) << err;
    close(first[0]);
}

TEST(ListenSpec, FdMustBeStreamSocket) {
    auto spec = parse_listen("fd:0", nullptr);
    ASSERT_TRUE(spec);
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    ListenSpec s = *spec;
    s.fd = fds[0];
    std::string err;
    EXPECT_TRUE(open_listeners(s, &err).empty());
    EXPECT_NE(err.find("not an open stream socket"), std::string::npos);
    close(fds[0]);
    close(fds[1]);
}
