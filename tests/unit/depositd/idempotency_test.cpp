// idempotency_test: Idempotency-Key states (doc/deposit.md, "Idempotency"): fresh, in
// progress, replay of the same message, reuse with another, abandon after a failure,
// expiry and the bound on entries.
#include <gtest/gtest.h>

#include "idempotency.hpp"

using namespace xproxy::depositd;
using V = IdempotencyCache::Verdict;
using namespace std::chrono_literals;

namespace {

const auto t0 = IdempotencyCache::Clock::time_point{} + 1000h;

TEST(Idempotency, States) {
    IdempotencyCache c(10, 60s);
    EXPECT_EQ(c.begin("alice", "k1", "H1", t0).verdict, V::fresh);
    EXPECT_EQ(c.begin("alice", "k1", "H1", t0).verdict, V::in_progress);
    EXPECT_EQ(c.begin("alice", "k1", "H2", t0).verdict, V::in_progress);
    EXPECT_EQ(c.begin("bob", "k1", "H1", t0).verdict, V::fresh) << "keys are per identity";
    c.complete("alice", "k1", "R1", "QR1", t0);
    auto replay = c.begin("alice", "k1", "H1", t0 + 10s);
    EXPECT_EQ(replay.verdict, V::replay);
    EXPECT_EQ(replay.receipt_id, "R1");
    EXPECT_EQ(replay.queue_id, "QR1");
    EXPECT_EQ(c.begin("alice", "k1", "H2", t0 + 10s).verdict, V::reused);
    // after the TTL the key is new again
    EXPECT_EQ(c.begin("alice", "k1", "H2", t0 + 61s).verdict, V::fresh);
}

TEST(Idempotency, FailedDepositLeavesNoEntry) {
    IdempotencyCache c(10, 60s);
    EXPECT_EQ(c.begin("alice", "k", "H", t0).verdict, V::fresh);
    c.abandon("alice", "k");
    EXPECT_EQ(c.size(), 0u);
    EXPECT_EQ(c.begin("alice", "k", "H", t0).verdict, V::fresh);
}

TEST(Idempotency, IdentityAndKeyDoNotRunTogether) {
    IdempotencyCache c(10, 60s);
    EXPECT_EQ(c.begin("ab", "c", "H", t0).verdict, V::fresh);
    EXPECT_EQ(c.begin("a", "bc", "H", t0).verdict, V::fresh);
}

TEST(Idempotency, Bounded) {
    IdempotencyCache c(3, 60s);
    for (int i = 0; i < 3; ++i) {
        const std::string k = "k" + std::to_string(i);
        ASSERT_EQ(c.begin("alice", k, "H", t0).verdict, V::fresh);
    }
    // all three in progress: no room
    EXPECT_EQ(c.begin("alice", "k3", "H", t0).verdict, V::full);
    c.complete("alice", "k0", "R0", "QR0", t0);
    c.complete("alice", "k1", "R1", "QR1", t0 + 1s);
    // the oldest completed entry makes room
    EXPECT_EQ(c.begin("alice", "k3", "H", t0 + 2s).verdict, V::fresh);
    EXPECT_EQ(c.size(), 3u);
    EXPECT_EQ(c.begin("alice", "k1", "H", t0 + 2s).verdict, V::replay);
    // k0 was evicted: new again, and k1 makes room for it; then only deposits under way are left
    EXPECT_EQ(c.begin("alice", "k0", "H", t0 + 2s).verdict, V::fresh);
    EXPECT_EQ(c.begin("alice", "k4", "H", t0 + 2s).verdict, V::full);
}

TEST(Idempotency, ValidKey) {
    EXPECT_TRUE(IdempotencyCache::valid_key("a"));
    EXPECT_TRUE(IdempotencyCache::valid_key(std::string(255, 'x')));
    EXPECT_FALSE(IdempotencyCache::valid_key(""));
    EXPECT_FALSE(IdempotencyCache::valid_key(std::string(256, 'x')));
    EXPECT_FALSE(IdempotencyCache::valid_key("a b"));
    EXPECT_FALSE(IdempotencyCache::valid_key("a\x7f"));
    EXPECT_FALSE(IdempotencyCache::valid_key("\xc3\xa9"));
}

}  // namespace
