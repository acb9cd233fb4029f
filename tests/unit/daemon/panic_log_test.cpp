// daemon_panic_log_test: once the daemon log is configured, the panic line of a broken
// XPROXY_INVARIANT reaches it (xproxy/daemon/log.hpp) before abort(): as a log line of
// the program at level error, written directly even while the log is asynchronous (the
// queue would never be written after abort()). With the log off it stays on stderr.
#include <gtest/gtest.h>

#include <xproxy/base/invariant.hpp>
#include <xproxy/daemon/log.hpp>

namespace {

using namespace xproxy;

void broken(int open_sessions) { XPROXY_INVARIANT(open_sessions > 0); }

}  // namespace

TEST(PanicLogDeathTest, PanicLineGoesToTheConfiguredLog) {
    EXPECT_DEATH(
        {
            log::init("xproxy-paniclog", log::Sink::stderr_, log::Level::info);
            broken(0);
        },
        "xproxy-paniclog\\[[0-9]+\\]: error: panic: invariant failed: open_sessions > 0 in broken");
}

TEST(PanicLogDeathTest, PanicLineSkipsTheAsyncQueue) {
    EXPECT_DEATH(
        {
            log::init("xproxy-paniclog", log::Sink::stderr_, log::Level::info);
            log::start_async(16);
            broken(0);
        },
        "xproxy-paniclog\\[[0-9]+\\]: error: panic: invariant failed: open_sessions > 0");
}

TEST(PanicLogDeathTest, LogOffLeavesThePanicOnStderr) {
    EXPECT_DEATH(
        {
            log::init("xproxy-paniclog", log::Sink::off, log::Level::info);
            broken(0);
        },
        "^panic: invariant failed: open_sessions > 0");
}
