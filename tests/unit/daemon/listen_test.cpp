// listen_test: listener specifications and the sockets they open; who may reach them
// (socket modes, the TCP peer allow-list, the start-up check of TCP listeners, the socket's
// directory, inherited unix sockets).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "loopback_pair.hpp"
#include <xproxy/daemon/access.hpp>
#include <xproxy/daemon/listen.hpp>

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
        auto s = parse_listen(r.in);
        ASSERT_EQ(s.has_value(), r.want_ok) << r.in << " " << s.error();
        if (!s) {
            EXPECT_NE(s.error().find(r.in), std::string::npos) << "error names the spec: " << s.error();
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
    auto spec = parse_listen("unix:" + path);
    ASSERT_TRUE(spec);
    auto fds = open_listeners(*spec, 0660);
    ASSERT_TRUE(fds) << fds.error();
    ASSERT_EQ(fds->size(), 1u);
    struct stat st {};
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0660u);
    fds->clear();
    // A stale socket file is replaced.
    auto again = open_listeners(*spec, 0600);
    ASSERT_TRUE(again) << again.error();
    ASSERT_EQ(again->size(), 1u);
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
    auto any = parse_listen(text);
    ASSERT_TRUE(any);
    auto first = open_listeners(*any);
    ASSERT_TRUE(first) << first.error();
    ASSERT_EQ(first->size(), 1u);
    auto second = open_listeners(*any);
    ASSERT_FALSE(second);
    EXPECT_NE(second.error().find(text), std::string::npos) << second.error();
    EXPECT_NE(second.error().find("in use"), std::string::npos) << second.error();
}

TEST(ListenSpec, FdMustBeStreamSocket) {
    auto spec = parse_listen("fd:0");
    ASSERT_TRUE(spec);
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    ListenSpec s = *spec;
    s.fd = fds[0];
    auto opened = open_listeners(s);
    ASSERT_FALSE(opened);
    EXPECT_NE(opened.error().find("not an open stream socket"), std::string::npos);
    // Refused, so not taken: the descriptor is still open.
    EXPECT_EQ(fcntl(fds[0], F_GETFD), 0);
    close(fds[0]);
    close(fds[1]);
}

// --- access.hpp: who may reach a listener ---------------------------------------------

namespace {

using xproxy::test::connect_from;
using TcpPair = xproxy::test::LoopbackPair;

}  // namespace

TEST(Access, SocketModeTable) {
    struct Row {
        const char* in;
        bool want_ok;
        unsigned want_mode;
    };
    const Row rows[] = {
        {"0660", true, 0660}, {"660", true, 0660}, {"0600", true, 0600}, {"0777", true, 0777},
        {"0", true, 0},       {"", false, 0},      {"0668", false, 0},   {"01777", false, 0},
        {"-660", false, 0},   {"0x1b6", false, 0}, {"66O", false, 0},
    };
    for (const auto& r : rows) {
        unsigned mode = 12345;
        EXPECT_EQ(xproxy::daemon::parse_socket_mode(r.in, mode), r.want_ok) << r.in;
        if (r.want_ok) {
            EXPECT_EQ(mode, r.want_mode) << r.in;
        }
    }
}

TEST(Access, TcpPeerOutsideAllowListIsRefused) {
    auto allow = *xproxy::CidrSet::parse("127.0.0.2/32");
    struct Row {
        const char* source;
        bool want_allowed;
    };
    for (const Row& r : {Row{"127.0.0.2", true}, Row{"127.0.0.1", false}, Row{"127.0.0.3", false}}) {
        TcpPair p;
        connect_from(p, r.source);
        std::string peer;
        EXPECT_EQ(xproxy::daemon::peer_allowed(p.accepted, allow, &peer), r.want_allowed) << r.source;
        EXPECT_EQ(peer.rfind(std::string(r.source) + ":", 0), 0u) << peer;
    }
    // An empty list admits nobody.
    TcpPair p;
    connect_from(p, "127.0.0.2");
    EXPECT_FALSE(xproxy::daemon::peer_allowed(p.accepted, xproxy::CidrSet{}));
}

TEST(Access, UnixPeerIsLeftToTheFileSystem) {
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    std::string peer;
    EXPECT_TRUE(xproxy::daemon::peer_allowed(sv[0], xproxy::CidrSet{}, &peer));
    EXPECT_EQ(peer, "unix");
    close(sv[0]);
    close(sv[1]);
}

TEST(Access, TcpListenerWithoutAllowListIsAStartUpError) {
    TcpPair p;
    connect_from(p, "127.0.0.1");
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    EXPECT_TRUE(xproxy::daemon::check_inet_allowed({sv[0]}, xproxy::CidrSet{}, "--allow-peers"));
    auto r = xproxy::daemon::check_inet_allowed({sv[0], p.listener}, xproxy::CidrSet{}, "--allow-peers");
    EXPECT_FALSE(r);
    EXPECT_NE(r.error().find("127.0.0.1:"), std::string::npos) << r.error();
    EXPECT_NE(r.error().find("add --allow-peers"), std::string::npos) << r.error();
    EXPECT_TRUE(
        xproxy::daemon::check_inet_allowed({p.listener}, *xproxy::CidrSet::parse("192.0.2.1/32"), "--allow-peers"));
    close(sv[0]);
    close(sv[1]);
}

TEST(Access, UnknownSocketGroupNamesTheOption) {
    auto r = xproxy::daemon::check_socket_group("no-such-group-xproxy", "/run/x.sock");
    EXPECT_FALSE(r);
    EXPECT_NE(r.error().find("--socket-group"), std::string::npos) << r.error();
    EXPECT_TRUE(xproxy::daemon::check_socket_group("root", "/run/x.sock"));
    EXPECT_TRUE(xproxy::daemon::check_socket_group("", "/run/x.sock"));
}

// --- unix sockets: their directory, their mode, inherited ones --------------------------

namespace {

// A fresh directory under /tmp (sticky, so it may sit above a socket directory), removed
// with everything in it at the end.
struct TempDir {
    std::string path;
    TempDir() {
        char d[] = "/tmp/xproxy-access-XXXXXX";
        if (mkdtemp(d)) path = d;
    }
    ~TempDir() {
        if (!path.empty()) std::system(("rm -rf '" + path + "'").c_str());
    }
};

int listen_unix(const std::string& path, mode_t mode) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::memcpy(sun.sun_path, path.data(), path.size());
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
    if (path[0] != '\0') ++len;
    if (bind(fd, reinterpret_cast<sockaddr*>(&sun), len) != 0 || listen(fd, 4) != 0) {
        close(fd);
        return -1;
    }
    if (path[0] != '\0') chmod(path.c_str(), mode);
    return fd;
}

}  // namespace

TEST(Access, SocketModeForOtherUsersIsRefused) {
    for (unsigned m : {0660u, 0600u, 0640u, 0770u}) EXPECT_TRUE(xproxy::daemon::check_socket_mode(m)) << m;
    for (unsigned m : {0666u, 0662u, 0664u, 0661u, 0777u}) {
        auto r = xproxy::daemon::check_socket_mode(m);
        EXPECT_FALSE(r) << m;
        EXPECT_NE(r.error().find("every local user"), std::string::npos) << r.error();
    }
}

TEST(Access, SocketDirectoryOthersMayWriteIsRefused) {
    // Whoever may rename entries in the socket's directory could swap the socket for a
    // symlink between bind() and the moment root gives it away.
    TempDir t;
    ASSERT_FALSE(t.path.empty());
    std::string dir = t.path + "/run";
    ASSERT_EQ(mkdir(dir.c_str(), 0750), 0);
    ASSERT_EQ(chmod(dir.c_str(), 0750), 0);
    std::string sock = dir + "/p.sock";
    std::string err;
    auto check = [&err](const std::string& path) {
        auto r = xproxy::daemon::check_socket_directory(path);
        err = r.error();
        return r.has_value();
    };
    EXPECT_TRUE(check(sock)) << err;
    struct Row {
        mode_t mode;
        const char* who;
    };
    for (const Row& r : {Row{0770u, "its group"}, Row{0757u, "every local user"}, Row{01777u, "every local user"},
                         Row{03775u, "its group"}}) {
        ASSERT_EQ(chmod(dir.c_str(), r.mode), 0);
        EXPECT_FALSE(check(sock)) << std::oct << r.mode;
        EXPECT_NE(err.find(r.who), std::string::npos) << err;
        EXPECT_NE(err.find("install -d -o root -g postfix -m 0750 " + dir), std::string::npos) << err;
    }
    // A directory above it: writable by others is refused too, unless sticky (as /tmp).
    ASSERT_EQ(chmod(dir.c_str(), 0750), 0);
    ASSERT_EQ(chmod(t.path.c_str(), 0777), 0);
    EXPECT_FALSE(check(sock));
    EXPECT_NE(err.find("directory " + t.path + " above the socket"), std::string::npos) << err;
    ASSERT_EQ(chmod(t.path.c_str(), 01777), 0);
    EXPECT_TRUE(check(sock)) << err;
    // Reached through a symlink: the directory it leads to is what counts.
    std::string link = t.path + "/link";
    ASSERT_EQ(symlink(dir.c_str(), link.c_str()), 0);
    ASSERT_EQ(chmod(dir.c_str(), 0777), 0);
    EXPECT_FALSE(check(link + "/p.sock"));
    // A missing directory is named.
    EXPECT_FALSE(check(t.path + "/none/p.sock"));
    EXPECT_NE(err.find(t.path + "/none"), std::string::npos) << err;
}

TEST(Access, SocketSwappedForASymlinkIsNeverFollowed) {
    // The socket is replaced by a symlink to another file before it is given away: the
    // file keeps its mode, and the daemon refuses to start.
    TempDir t;
    ASSERT_FALSE(t.path.empty());
    std::string sock = t.path + "/s.sock", target = t.path + "/secret";
    int fd = listen_unix(sock, 0660);
    ASSERT_GE(fd, 0);
    std::string err;
    auto give = [&err](const std::string& path) {
        auto r = xproxy::daemon::set_socket_access(path, "", "", 0660);
        err = r.error();
        return r.has_value();
    };
    EXPECT_TRUE(give(sock)) << err;
    FILE* f = std::fopen(target.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fclose(f);
    ASSERT_EQ(chmod(target.c_str(), 0600), 0);
    ASSERT_EQ(unlink(sock.c_str()), 0);
    ASSERT_EQ(symlink(target.c_str(), sock.c_str()), 0);
    EXPECT_FALSE(give(sock));
    EXPECT_NE(err.find("refusing to start"), std::string::npos) << err;
    struct stat st {};
    ASSERT_EQ(stat(target.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    close(fd);
}

TEST(ListenSpec, UnixModeIsSetAtBind) {
    // open_listeners() does not chmod by path afterwards (a symlink there would be
    // followed): the umask at bind() gives the mode.
    TempDir t;
    ASSERT_FALSE(t.path.empty());
    std::string path = t.path + "/m.sock";
    auto spec = parse_listen("unix:" + path);
    ASSERT_TRUE(spec);
    for (unsigned m : {0660u, 0640u, 0600u}) {
        auto fds = open_listeners(*spec, m);
        ASSERT_TRUE(fds) << fds.error();
        ASSERT_EQ(fds->size(), 1u);
        struct stat st {};
        ASSERT_EQ(lstat(path.c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 07777, m);
    }
}

TEST(Access, InheritedUnixSocketOpenToEveryoneIsRefused) {
    TempDir t;
    ASSERT_FALSE(t.path.empty());
    std::string err;
    auto check = [&err](int fd) {
        auto r = xproxy::daemon::check_unix_listeners({fd});
        err = r.error();
        return r.has_value();
    };
    // An abstract socket has no permissions at all.
    std::string abstract = std::string(1, '\0') + "xproxy-access-test-" + std::to_string(getpid());
    int a = listen_unix(abstract, 0);
    ASSERT_GE(a, 0);
    EXPECT_FALSE(check(a));
    EXPECT_NE(err.find("@xproxy-access-test-"), std::string::npos) << err;
    EXPECT_NE(err.find("abstract"), std::string::npos) << err;
    close(a);
    // A path that grants "other" anything (systemd's default SocketMode= is 0666).
    std::string path = t.path + "/i.sock";
    int p = listen_unix(path, 0666);
    ASSERT_GE(p, 0);
    for (mode_t m : {0666u, 0606u, 0604u, 0601u}) {
        ASSERT_EQ(chmod(path.c_str(), m), 0);
        EXPECT_FALSE(check(p)) << std::oct << m;
        EXPECT_NE(err.find(path), std::string::npos) << err;
        EXPECT_NE(err.find("every local user"), std::string::npos) << err;
    }
    ASSERT_EQ(chmod(path.c_str(), 0660), 0);
    EXPECT_TRUE(check(p)) << err;
    // Its file gone: cannot be checked, refused.
    ASSERT_EQ(unlink(path.c_str()), 0);
    EXPECT_FALSE(check(p));
    close(p);
    // TCP listeners are check_inet_allowed()'s business.
    TcpPair tcp;
    connect_from(tcp, "127.0.0.1");
    EXPECT_TRUE(check(tcp.listener)) << err;
}
