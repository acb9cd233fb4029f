// rate_limiter_test: N deposits per identity per minute, refilled over the minute,
// Retry-After, independent identities, 0 = off, and the bound on identities.
#include <gtest/gtest.h>

#include "rate_limiter.hpp"

using namespace xproxy::depositd;
using namespace std::chrono_literals;

namespace {

const auto t0 = RateLimiter::Clock::time_point{} + 1000h;

TEST(RateLimiter, BurstThenRefill) {
    RateLimiter r(6, 100);  // one every 10 s
    for (int i = 0; i < 6; ++i) EXPECT_EQ(r.take("alice", t0), 0u) << i;
    EXPECT_EQ(r.take("alice", t0), 10u);
    EXPECT_EQ(r.take("alice", t0 + 5s), 5u);
    EXPECT_EQ(r.take("alice", t0 + 10s), 0u);
    EXPECT_GT(r.take("alice", t0 + 10s), 0u);
    EXPECT_EQ(r.take("bob", t0), 0u) << "identities are counted apart";
}

TEST(RateLimiter, Off) {
    RateLimiter r(0, 1);
    for (int i = 0; i < 1000; ++i) EXPECT_EQ(r.take("alice", t0), 0u);
    EXPECT_EQ(r.size(), 0u);
}

TEST(RateLimiter, Bounded) {
    RateLimiter r(2, 2);
    EXPECT_EQ(r.take("a", t0), 0u);
    EXPECT_EQ(r.take("b", t0), 0u);
    EXPECT_GT(r.take("c", t0), 0u) << "a full table refuses a new identity";
    EXPECT_EQ(r.size(), 2u);
    // once a's bucket has refilled it is dropped to make room
    EXPECT_EQ(r.take("c", t0 + 60s), 0u);
    EXPECT_LE(r.size(), 2u);
}

}  // namespace
