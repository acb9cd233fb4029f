// base_invariant_test: a broken invariant logs what failed and where, through the sink a
// daemon installs, and aborts; a holding one costs nothing and says nothing.
#include <gtest/gtest.h>

#include <xproxy/base/invariant.hpp>
#include <xproxy/base/result.hpp>

namespace {

int checked_decrement(int& n) {
    XPROXY_INVARIANT(n > 0);
    return --n;
}

void to_stderr_marked(const char* line) { fprintf(stderr, "SINK[%s]\n", line); }

}  // namespace

TEST(InvariantDeathTest, HoldingInvariantPasses) {
    int n = 1;
    EXPECT_EQ(checked_decrement(n), 0);
}

TEST(InvariantDeathTest, BrokenInvariantLogsAndAborts) {
    int n = 0;
    EXPECT_DEATH(checked_decrement(n),
                 "panic: invariant failed: n > 0 in checked_decrement \\(.*invariant_test.cpp:[0-9]+\\)");
}

TEST(InvariantDeathTest, InstalledSinkGetsThePanicLine) {
    EXPECT_DEATH(
        {
            xproxy::set_panic_sink(to_stderr_marked);
            XPROXY_UNREACHABLE();
        },
        "SINK\\[panic: invariant failed: unreachable");
}

TEST(Expected, CarriesValueOrMessage) {
    xproxy::Expected<int> ok = 7;
    ASSERT_TRUE(ok);
    EXPECT_EQ(*ok, 7);
    xproxy::Expected<int> bad = xproxy::Failure{"no such group: mail"};
    EXPECT_FALSE(bad);
    EXPECT_EQ(bad.error(), "no such group: mail");
    xproxy::Expected<void> check;
    EXPECT_TRUE(check);
    xproxy::Expected<void> failed = xproxy::Failure{"mode 0666 is open to every user"};
    EXPECT_FALSE(failed.has_value());
    EXPECT_EQ(failed.error(), "mode 0666 is open to every user");
}
