// daemon_notify_test: the service manager's messages (xproxy/daemon/notify.hpp). A
// SOCK_DGRAM unix socket in a private directory stands in for systemd's notify socket
// (NOTIFY_SOCKET names it); each call must arrive there as exactly one datagram with the
// text sd_notify(3) expects, nothing may arrive without NOTIFY_SOCKET, and a socket that
// is missing is logged once and otherwise ignored. listening_status() names listeners as
// a --listen spec writes them.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include <xproxy/base/unique_fd.hpp>
#include <xproxy/daemon/log.hpp>
#include <xproxy/daemon/notify.hpp>

namespace {

using namespace xproxy;

// The notify socket of a service manager: a datagram socket in a directory of its own.
class Collector {
public:
    Collector() {
        char dir[] = "/tmp/xproxy-notify-XXXXXX";
        EXPECT_NE(mkdtemp(dir), nullptr);
        dir_ = dir;
        path_ = dir_ + "/notify.sock";
        fd_ = UniqueFd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        sockaddr_un sun{};
        sun.sun_family = AF_UNIX;
        path_.copy(sun.sun_path, sizeof sun.sun_path - 1);
        EXPECT_EQ(bind(fd_.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun), 0);
        setenv("NOTIFY_SOCKET", path_.c_str(), 1);
    }
    ~Collector() {
        unsetenv("NOTIFY_SOCKET");
        unlink(path_.c_str());
        rmdir(dir_.c_str());
    }
    Collector(const Collector&) = delete;
    Collector& operator=(const Collector&) = delete;

    // The next datagram, or "(none)" when nothing is waiting.
    std::string next() {
        char buf[4096];
        const auto n = recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0) return errno == EAGAIN ? "(none)" : "(error)";
        return std::string(buf, static_cast<std::size_t>(n));
    }
    const std::string& path() const { return path_; }

private:
    std::string dir_, path_;
    UniqueFd fd_;
};

TEST(Notify, ReadyCarriesTheStatusOnOneLine) {
    Collector c;
    EXPECT_TRUE(daemon::notify_ready("listening on inet:127.0.0.1:10040\nand more"));
    EXPECT_EQ(c.next(), "READY=1\nSTATUS=listening on inet:127.0.0.1:10040 and more");
    EXPECT_EQ(c.next(), "(none)");
}

TEST(Notify, StoppingStatusAndReloading) {
    Collector c;
    EXPECT_TRUE(daemon::notify_stopping());
    EXPECT_EQ(c.next(), "STOPPING=1\nSTATUS=stopping");
    EXPECT_TRUE(daemon::notify_status("draining"));
    EXPECT_EQ(c.next(), "STATUS=draining");
    EXPECT_TRUE(daemon::notify_reloading("reloading (SIGHUP)"));
    const auto reloading = c.next();
    // RELOADING=1, MONOTONIC_USEC=<digits>, STATUS=
    const std::string head = "RELOADING=1\nMONOTONIC_USEC=", tail = "\nSTATUS=reloading (SIGHUP)";
    ASSERT_GT(reloading.size(), head.size() + tail.size()) << reloading;
    EXPECT_EQ(reloading.substr(0, head.size()), head);
    EXPECT_EQ(reloading.substr(reloading.size() - tail.size()), tail);
    const auto usec = reloading.substr(head.size(), reloading.size() - head.size() - tail.size());
    EXPECT_EQ(usec.find_first_not_of("0123456789"), std::string::npos) << usec;
    EXPECT_EQ(c.next(), "(none)");
}

TEST(Notify, NothingWithoutNotifySocket) {
    Collector c;
    unsetenv("NOTIFY_SOCKET");
    EXPECT_FALSE(daemon::notify_ready("listening on nothing"));
    EXPECT_FALSE(daemon::notify_stopping());
    EXPECT_EQ(c.next(), "(none)");
}

TEST(Notify, MissingSocketIsLoggedOnceAndIgnored) {
    log::init("daemon_notify_test", log::Sink::stderr_, log::Level::info);
    setenv("NOTIFY_SOCKET", "/nonexistent-xproxy-dir/notify.sock", 1);
    testing::internal::CaptureStderr();
    EXPECT_FALSE(daemon::notify_ready("listening on x"));
    EXPECT_FALSE(daemon::notify_stopping());
    const auto err = testing::internal::GetCapturedStderr();
    unsetenv("NOTIFY_SOCKET");
    EXPECT_NE(err.find("event=notify_failed socket=\"/nonexistent-xproxy-dir/notify.sock\""), std::string::npos) << err;
    EXPECT_EQ(err.find("event=notify_failed"), err.rfind("event=notify_failed")) << err;  // once
}

TEST(Notify, ListeningStatusNamesEachListener) {
    UniqueFd tcp(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(tcp.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
    socklen_t len = sizeof sin;
    ASSERT_EQ(getsockname(tcp.get(), reinterpret_cast<sockaddr*>(&sin), &len), 0);
    const auto port = std::to_string(ntohs(sin.sin_port));

    UniqueFd tcp6(socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_addr = in6addr_loopback;
    const bool have_v6 = bind(tcp6.get(), reinterpret_cast<sockaddr*>(&sin6), sizeof sin6) == 0;
    len = sizeof sin6;
    if (have_v6) {
        ASSERT_EQ(getsockname(tcp6.get(), reinterpret_cast<sockaddr*>(&sin6), &len), 0);
    }

    Collector c;  // a unix socket with a path
    UniqueFd unix_(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const std::string path = c.path() + ".stream";
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    path.copy(sun.sun_path, sizeof sun.sun_path - 1);
    ASSERT_EQ(bind(unix_.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun), 0);

    UniqueFd abstract(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const std::string name = "xproxy-notify-test-" + std::to_string(getpid());
    sockaddr_un abs{};
    abs.sun_family = AF_UNIX;
    name.copy(abs.sun_path + 1, sizeof abs.sun_path - 2);
    ASSERT_EQ(bind(abstract.get(), reinterpret_cast<sockaddr*>(&abs),
                   static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size())),
              0);

    EXPECT_EQ(daemon::listening_status({tcp.get(), unix_.get(), abstract.get(), 9999}),
              "listening on inet:127.0.0.1:" + port + ", unix:" + path + ", unix:@" + name + ", fd:9999");
    if (have_v6) {
        EXPECT_EQ(daemon::listening_status({tcp6.get()}),
                  "listening on inet6:[::1]:" + std::to_string(ntohs(sin6.sin6_port)));
    }
    unlink(path.c_str());
}

}  // namespace
