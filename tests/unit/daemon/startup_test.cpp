// daemon_startup_test: the shared start-up checks (xproxy/daemon/startup.hpp): what
// --check-config refuses in --listen and its access options, each with the message the
// daemons print, and the listeners opened and checked after it.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include <xproxy/daemon/startup.hpp>

namespace {

using xproxy::daemon::AccessOptions;
using xproxy::daemon::plan_listeners;

}  // namespace

TEST(Startup, PlanListenersTable) {
    struct Row {
        std::vector<std::string> listen;
        AccessOptions access;
        const char* want_error;  // nullptr: accepted
    };
    const Row rows[] = {
        {{"unix:/run/xproxy/p.sock"}, {"0660", "root", "", ""}, nullptr},
        {{"inet:127.0.0.1:10040"}, {"0660", "root", "127.0.0.1/32", ""}, nullptr},
        {{"unix:/run/a.sock", "inet:127.0.0.1:1"}, {"0600", "", "192.0.2.0/24", ""}, nullptr},
        {{"tcp:1"}, {"0660", "root", "", ""}, "invalid listener 'tcp:1': unknown scheme"},
        {{"unix:/run/p.sock"}, {"0660", "no-such-group-xproxy", "", ""}, "group 'no-such-group-xproxy' of the socket"},
        {{"unix:/run/p.sock"}, {"0669", "root", "", ""}, "--socket-mode must be octal, e.g. 0660"},
        {{"unix:/run/p.sock"}, {"0666", "root", "", ""}, "--socket-mode 0666 gives other users access"},
        {{"unix:/run/p.sock"}, {"0660", "root", "300.0.0.0/8", ""}, "--allow-peers: "},
        {{"inet:127.0.0.1:10040"},
         {"0660", "root", "", ""},
         "TCP listener inet:127.0.0.1:10040 would serve nobody: add --allow-peers CIDR"},
        // The first check that fails speaks: the group before the mode.
        {{"unix:/run/p.sock"}, {"0666", "no-such-group-xproxy", "", ""}, "group 'no-such-group-xproxy'"},
    };
    for (const auto& r : rows) {
        auto plan = plan_listeners(r.listen, r.access);
        if (!r.want_error) {
            ASSERT_TRUE(plan) << plan.error();
            EXPECT_EQ(plan->specs.size(), r.listen.size());
            EXPECT_EQ(plan->socket_group, r.access.socket_group);
            continue;
        }
        ASSERT_FALSE(plan) << r.listen[0];
        EXPECT_EQ(plan.error().rfind(r.want_error, 0), 0u) << plan.error();
    }
}

TEST(Startup, OpensPlannedUnixListenerWithItsMode) {
    char dir[] = "/tmp/xproxy-startup-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    ASSERT_EQ(chmod(dir, 0750), 0);
    const std::string path = std::string(dir) + "/s.sock";
    auto plan = plan_listeners({"unix:" + path}, {"0640", "", "", ""});
    ASSERT_TRUE(plan) << plan.error();
    {
        auto fds = xproxy::daemon::open_planned(*plan);
        ASSERT_TRUE(fds) << fds.error();
        ASSERT_EQ(fds->size(), 1u);
        struct stat st {};
        ASSERT_EQ(lstat(path.c_str(), &st), 0);
        EXPECT_TRUE(S_ISSOCK(st.st_mode));
        EXPECT_EQ(st.st_mode & 07777, 0640u);
    }
    // A directory every local user may write is refused before anything is opened.
    unlink(path.c_str());
    ASSERT_EQ(chmod(dir, 0777), 0);
    auto refused = xproxy::daemon::open_planned(*plan);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().find("every local user"), std::string::npos) << refused.error();
    struct stat st {};
    EXPECT_NE(lstat(path.c_str(), &st), 0);
    rmdir(dir);
}

TEST(Startup, FailNamesTheProgram) {
    xproxy::daemon::Startup start("xproxy-test");
    testing::internal::CaptureStderr();
    EXPECT_EQ(start.fail("--keyring is required"), 1);
    EXPECT_EQ(testing::internal::GetCapturedStderr(), "xproxy-test: --keyring is required\n");
}

TEST(Startup, PlanListenersNamesTheConfigFileLine) {
    // Options the config file set: the failure starts with its "FILE:LINE: "; the same
    // failure of a command-line value does not.
    xproxy::daemon::OptionOrigins origins;
    origins.add("listen", "tcp:1", "/etc/xproxy/policyd.conf:3");
    origins.add("socket-mode", "0666", "/etc/xproxy/policyd.conf:4");
    origins.add("allow-peers", "300.0.0.0/8", "/etc/xproxy/policyd.conf:5");
    struct Row {
        std::vector<std::string> listen;
        AccessOptions access;
        const char* want_error;
    };
    const Row rows[] = {
        {{"unix:/run/p.sock", "tcp:1"},
         {"0660", "root", "", ""},
         "/etc/xproxy/policyd.conf:3: invalid listener 'tcp:1': unknown scheme"},
        {{"tcp:2"}, {"0660", "root", "", ""}, "invalid listener 'tcp:2': unknown scheme"},
        {{"unix:/run/p.sock"}, {"0666", "root", "", ""}, "/etc/xproxy/policyd.conf:4: --socket-mode 0666 gives"},
        {{"unix:/run/p.sock"}, {"0660", "root", "300.0.0.0/8", ""}, "/etc/xproxy/policyd.conf:5: --allow-peers: "},
    };
    for (const auto& r : rows) {
        auto plan = plan_listeners(r.listen, r.access, origins);
        ASSERT_FALSE(plan) << r.want_error;
        EXPECT_EQ(plan.error().rfind(r.want_error, 0), 0u) << plan.error();
    }
}
