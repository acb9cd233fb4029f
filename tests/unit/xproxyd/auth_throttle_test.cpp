// auth_throttle_test.cpp: failed logins slow down and lock out per address and per user,
// in bounded tables. Time is passed in, so nothing here sleeps.
#include "auth_throttle.hpp"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

using namespace xproxy;
using namespace xproxy::xproxyd;
using namespace std::chrono_literals;
using Clock = AuthThrottle::Clock;

namespace {

IpAddress ip(const char* text) {
    auto a = IpAddress::parse(text);
    EXPECT_TRUE(a) << text;
    return a.value_or(IpAddress{});
}

const Clock::time_point t0 = Clock::time_point{} + 100h;

ThrottleLimits address_only(unsigned failures) {
    ThrottleLimits l;
    l.address_failures = failures;
    l.user_failures = 0;
    return l;
}

}  // namespace

TEST(AuthThrottle, FailuresFromOneAddressWaitLongerThenLockIt) {
    AuthThrottle t{ThrottleLimits{}};
    const auto a = ip("192.0.2.7");
    // The first failure is free, then delay * (n - 1); the fifth locks the address.
    const std::chrono::milliseconds want_delay[] = {0ms, 1000ms, 2000ms, 3000ms, 4000ms};
    for (int i = 0; i < 5; ++i) {
        ThrottleCheck c = t.check(a, "user" + std::to_string(i), t0);
        EXPECT_FALSE(c.locked) << i;
        EXPECT_EQ(c.delay, 0ms) << i;
        EXPECT_EQ(t.failed(a, "user" + std::to_string(i), t0 + std::chrono::seconds(i)), want_delay[i]) << i;
    }
    ThrottleCheck c = t.check(a, "somebody-else", t0 + 10s);
    EXPECT_TRUE(c.locked);
    EXPECT_STREQ(c.why, "address");
    EXPECT_EQ(c.delay, 5000ms);  // delay * 5, capped at max_delay
    // Another address is not concerned.
    EXPECT_FALSE(t.check(ip("192.0.2.8"), "somebody-else", t0 + 10s).locked);
}

TEST(AuthThrottle, DelayIsCappedAtMaxDelay) {
    ThrottleLimits l;
    l.address_failures = 100;
    l.user_failures = 100;
    AuthThrottle t{l};
    std::chrono::milliseconds last{};
    for (int i = 0; i < 20; ++i) last = t.failed(ip("192.0.2.1"), "u", t0);
    EXPECT_EQ(last, 5000ms);
}

TEST(AuthThrottle, AnEntryKeepsAtMostThresholdFailures) {
    // Failures past the threshold (callers that passed check() before the lock) replace
    // the oldest: the count, and so the delay, stops at the threshold.
    ThrottleLimits l = address_only(3);
    l.max_delay = 100s;
    AuthThrottle t{l};
    const std::chrono::milliseconds want_delay[] = {0ms, 1000ms, 2000ms, 2000ms, 2000ms, 2000ms};
    for (int i = 0; i < 6; ++i) EXPECT_EQ(t.failed(ip("192.0.2.9"), "u", t0), want_delay[i]) << i;
    EXPECT_EQ(t.check(ip("192.0.2.9"), "u", t0).delay, 3000ms);
}

TEST(AuthThrottle, LockoutEndsAfterItsTimeAndKnockingDoesNotExtendIt) {
    AuthThrottle t{address_only(3)};
    const auto a = ip("198.51.100.1");
    for (int i = 0; i < 3; ++i) t.failed(a, "u", t0);
    for (auto dt : {1s, 300s, 899s}) EXPECT_TRUE(t.check(a, "u", t0 + dt).locked) << dt.count();
    EXPECT_FALSE(t.check(a, "u", t0 + 900s).locked);
    // Its failures are forgotten with the window (900 s): one more failure does not relock.
    EXPECT_EQ(t.failed(a, "u", t0 + 901s), 0ms);
    EXPECT_FALSE(t.check(a, "u", t0 + 901s).locked);
}

TEST(AuthThrottle, WindowSlides) {
    ThrottleLimits l = address_only(3);
    l.window = 100s;
    l.lockout = 50s;
    AuthThrottle t{l};
    const auto a = ip("198.51.100.2");
    t.failed(a, "u", t0);
    t.failed(a, "u", t0 + 60s);
    // The first failure is forgotten at t0 + 100 s: two within the window, no lock.
    EXPECT_EQ(t.failed(a, "u", t0 + 120s), 1000ms);
    EXPECT_FALSE(t.check(a, "u", t0 + 120s).locked);
    // Three within 100 s (60, 120, 150) lock.
    t.failed(a, "u", t0 + 150s);
    EXPECT_TRUE(t.check(a, "u", t0 + 150s).locked);
    EXPECT_FALSE(t.check(a, "u", t0 + 200s).locked);
}

TEST(AuthThrottle, ChecksAreNotFailures) {
    AuthThrottle t{ThrottleLimits{}};
    const auto a = ip("203.0.113.9");
    for (int i = 0; i < 100; ++i) EXPECT_FALSE(t.check(a, "alice", t0).locked);
    EXPECT_EQ(t.address_entries(), 0u);
    EXPECT_EQ(t.user_entries(), 0u);
    EXPECT_EQ(t.failed(a, "alice", t0), 0ms);  // still the first failure
}

TEST(AuthThrottle, OneUserFromManyAddressesIsLocked) {
    AuthThrottle t{ThrottleLimits{}};
    // Ten addresses, one failure each: no address is locked, the user is.
    for (int i = 0; i < 10; ++i) {
        auto a = IpAddress::v4(0xc0000200u + static_cast<std::uint32_t>(i));
        EXPECT_FALSE(t.check(a, "alice@example.com", t0).locked) << i;
        t.failed(a, "alice@example.com", t0);
    }
    ThrottleCheck c = t.check(ip("192.0.2.200"), "alice@example.com", t0 + 1s);
    EXPECT_TRUE(c.locked);
    EXPECT_STREQ(c.why, "user");
    EXPECT_EQ(c.delay, 5000ms);
    // User names compare ASCII case-insensitively.
    EXPECT_TRUE(t.check(ip("192.0.2.201"), "ALICE@Example.COM", t0 + 1s).locked);
    EXPECT_FALSE(t.check(ip("192.0.2.201"), "bob@example.com", t0 + 1s).locked);
}

TEST(AuthThrottle, FailedReturnsTheLargerDelayOfTheTwoTables) {
    AuthThrottle t{ThrottleLimits{}};
    for (int i = 0; i < 3; ++i) t.failed(IpAddress::v4(0x0a000001u + static_cast<std::uint32_t>(i)), "carol", t0);
    // A fresh address (first failure) but carol's fourth: delay * 3.
    EXPECT_EQ(t.failed(ip("10.9.9.9"), "carol", t0), 3000ms);
}

TEST(AuthThrottle, AddressesAreKeyedByIpv4AndIpv6Slash64) {
    struct Row {
        const char* a;
        const char* b;
        bool want_same;
    } rows[] = {
        {"192.0.2.1", "192.0.2.1", true},
        {"192.0.2.1", "192.0.2.2", false},
        {"::ffff:192.0.2.1", "192.0.2.1", true},
        {"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", true},
        {"2001:db8:1:2::1", "2001:db8:1:3::1", false},
        {"::c000:201", "192.0.2.1", false},  // an IPv6 /64 never equals an IPv4 address
    };
    for (const Row& r : rows) {
        EXPECT_EQ(AuthThrottle::address_key(ip(r.a)) == AuthThrottle::address_key(ip(r.b)), r.want_same)
            << r.a << " " << r.b;
        // And the table behaves so: a's failures lock b or not.
        AuthThrottle t{address_only(2)};
        t.failed(ip(r.a), "u", t0);
        t.failed(ip(r.a), "u", t0);
        EXPECT_EQ(t.check(ip(r.b), "u", t0).locked, r.want_same) << r.a << " " << r.b;
    }
}

TEST(AuthThrottle, UserKeysAreLowerCaseAndAtMost255Bytes) {
    EXPECT_EQ(AuthThrottle::user_key("Alice@EXAMPLE.com"), "alice@example.com");
    EXPECT_EQ(AuthThrottle::user_key("\xc3\x89LISE"), "\xc3\x89lise");  // bytes >= 0x80 unchanged
    std::string long_a(300, 'a');
    std::string long_b = std::string(255, 'a') + "bbbbb";
    EXPECT_EQ(AuthThrottle::user_key(long_a).size(), 255u);
    EXPECT_EQ(AuthThrottle::user_key(long_a), AuthThrottle::user_key(long_b));
    EXPECT_NE(AuthThrottle::user_key(std::string(254, 'a')), AuthThrottle::user_key(std::string(255, 'a')));

    ThrottleLimits l;
    l.address_failures = 0;
    l.user_failures = 2;
    AuthThrottle t{l};
    t.failed(ip("192.0.2.1"), long_a, t0);
    t.failed(ip("192.0.2.2"), long_b, t0);
    EXPECT_TRUE(t.check(ip("192.0.2.3"), std::string(255, 'A'), t0).locked);
    EXPECT_EQ(t.user_entries(), 1u);
}

TEST(AuthThrottle, TheLeastRecentlyFailedEntryMakesRoom) {
    ThrottleLimits l = address_only(2);
    l.max_entries = 2;
    AuthThrottle t{l};
    const auto a = ip("192.0.2.1"), b = ip("192.0.2.2"), c = ip("192.0.2.3");
    t.failed(a, "u", t0);
    t.failed(b, "u", t0 + 1s);
    t.failed(a, "u", t0 + 2s);  // a locked, and more recent than b
    t.failed(c, "u", t0 + 3s);  // b goes
    EXPECT_EQ(t.address_entries(), 2u);
    EXPECT_TRUE(t.check(a, "u", t0 + 4s).locked);
    EXPECT_EQ(t.failed(b, "u", t0 + 5s), 0ms);  // b starts again from nothing (and a goes)
    EXPECT_FALSE(t.check(b, "u", t0 + 5s).locked);
    EXPECT_FALSE(t.check(a, "u", t0 + 5s).locked);
}

TEST(AuthThrottle, ForgottenEntriesAreRemoved) {
    AuthThrottle t{ThrottleLimits{}};
    for (std::uint32_t i = 0; i < 100; ++i) t.failed(IpAddress::v4(0xc6336400u + i), "u" + std::to_string(i), t0);
    EXPECT_EQ(t.address_entries(), 100u);
    EXPECT_EQ(t.user_entries(), 100u);
    // After window and lockout, the next failure clears the forgotten ones out.
    t.failed(ip("203.0.113.1"), "new", t0 + 900s);
    EXPECT_EQ(t.address_entries(), 1u);
    EXPECT_EQ(t.user_entries(), 1u);
    // A check of a forgotten entry removes it too.
    EXPECT_FALSE(t.check(ip("203.0.113.1"), "new", t0 + 1800s).locked);
    EXPECT_EQ(t.address_entries(), 0u);
    EXPECT_EQ(t.user_entries(), 0u);
}

TEST(AuthThrottle, ZeroTurnsATableOff) {
    ThrottleLimits l;
    l.address_failures = 0;
    AuthThrottle t{l};
    for (int i = 0; i < 50; ++i) t.failed(ip("192.0.2.1"), "u" + std::to_string(i), t0);
    EXPECT_EQ(t.address_entries(), 0u);
    EXPECT_FALSE(t.check(ip("192.0.2.1"), "v", t0).locked);

    ThrottleLimits none;
    none.max_entries = 0;
    AuthThrottle off{none};
    for (int i = 0; i < 50; ++i) EXPECT_EQ(off.failed(ip("192.0.2.1"), "u", t0), 0ms);
    EXPECT_FALSE(off.check(ip("192.0.2.1"), "u", t0).locked);
    EXPECT_EQ(off.address_entries() + off.user_entries(), 0u);
}

TEST(AuthThrottle, MemoryIsBoundedWhateverTheInput) {
    AuthThrottle t{ThrottleLimits{}};
    std::string user(400, 'x');  // longer than a key: truncated, then made distinct
    for (std::uint32_t i = 0; i < 1'000'000; ++i) {
        user.replace(0, 8, std::to_string(10'000'000 + i));
        t.failed(IpAddress::v4(0x0a000000u + i), user, t0 + std::chrono::milliseconds(i));
    }
    EXPECT_EQ(t.address_entries(), 65536u);
    EXPECT_EQ(t.user_entries(), 65536u);
    // The most recent ones are kept.
    EXPECT_EQ(t.failed(IpAddress::v4(0x0a000000u + 999'999u), "y", t0 + 1000s), 1000ms);
}

TEST(AuthThrottle, ConcurrentCallersAreCountedOnce) {
    ThrottleLimits l;
    l.address_failures = 1000;
    l.user_failures = 1000;
    AuthThrottle t{l};
    std::vector<std::thread> threads;
    for (std::uint32_t k = 0; k < 4; ++k)
        threads.emplace_back([&t, k] {
            for (std::uint32_t i = 0; i < 500; ++i) {
                t.failed(IpAddress::v4(0xc0000201u), "shared", t0);
                t.failed(IpAddress::v4(0x0a000000u + k * 1000 + i), "u" + std::to_string(k * 1000 + i), t0);
                t.check(IpAddress::v4(0xc0000201u), "shared", t0);
            }
        });
    for (auto& th : threads) th.join();
    EXPECT_EQ(t.address_entries(), 2001u);
    EXPECT_EQ(t.user_entries(), 2001u);
    // 2000 failures for the shared address and user: locked (1000 kept at most).
    EXPECT_TRUE(t.check(IpAddress::v4(0xc0000201u), "shared", t0).locked);
}

// Credentials that could not be read name no user: only the address pays, and no entry for
// an empty user name can lock anyone else.
TEST(AuthThrottle, AFailureWithoutAUserNameCountsForTheAddressOnly) {
    ThrottleLimits l;
    l.address_failures = 100;
    l.user_failures = 2;
    AuthThrottle t(l);
    for (int i = 0; i < 5; ++i) t.failed(ip("192.0.2.50"), "", t0);
    EXPECT_EQ(t.user_entries(), 0u);
    EXPECT_EQ(t.address_entries(), 1u);
    EXPECT_FALSE(t.check(ip("192.0.2.51"), "", t0).locked);
    EXPECT_FALSE(t.check(ip("192.0.2.51"), "alice", t0).locked);
}

// Attempts sent in parallel count while Dovecot checks them: with a threshold of 3, a
// fourth attempt while three are in flight must wait (busy), and once three failed the
// address is locked. A released attempt (a success) gives its place back.
TEST(AuthThrottle, AttemptsInFlightCountTowardsTheThreshold) {
    ThrottleLimits l;
    l.address_failures = 3;
    l.user_failures = 100;
    AuthThrottle t(l);
    const IpAddress a = ip("192.0.2.60");
    std::vector<ThrottleCheck> inflight;
    for (int i = 0; i < 3; ++i) {
        inflight.push_back(t.check(a, "u" + std::to_string(i), t0));
        EXPECT_FALSE(inflight.back().locked) << i;
    }
    ThrottleCheck fourth = t.check(a, "u9", t0);
    EXPECT_TRUE(fourth.busy);
    EXPECT_FALSE(fourth.locked);
    EXPECT_STREQ(fourth.why, "address");
    ThrottleCheck other = t.check(ip("192.0.2.61"), "u9", t0);
    EXPECT_FALSE(other.busy || other.locked) << "another address is not concerned";
    other.attempt.release();
    inflight[0].attempt.release();  // a success
    ThrottleCheck again = t.check(a, "u9", t0);
    EXPECT_FALSE(again.busy || again.locked);
    again.attempt.release();
    for (int i = 1; i < 3; ++i) {
        t.failed(a, "u" + std::to_string(i), t0);
        inflight[static_cast<std::size_t>(i)].attempt.release();
    }
    ThrottleCheck one_left = t.check(a, "u9", t0);  // two failures: one more attempt fits
    EXPECT_FALSE(one_left.busy || one_left.locked);
    EXPECT_TRUE(t.check(a, "u8", t0).busy) << "two failures and one attempt in flight fill the three places";
    t.failed(a, "u9", t0);
    one_left.attempt.release();
    EXPECT_TRUE(t.check(a, "u7", t0 + std::chrono::seconds(1)).locked);
}

// The same for one user from many addresses.
TEST(AuthThrottle, AttemptsInFlightForOneUserCountToo) {
    ThrottleLimits l;
    l.address_failures = 100;
    l.user_failures = 2;
    AuthThrottle t(l);
    ThrottleCheck a = t.check(ip("192.0.2.70"), "Alice", t0);
    ThrottleCheck b = t.check(ip("192.0.2.71"), "alice", t0);
    EXPECT_FALSE(a.locked);
    EXPECT_FALSE(b.locked);
    ThrottleCheck c = t.check(ip("192.0.2.72"), "ALICE", t0);
    EXPECT_TRUE(c.busy);
    EXPECT_STREQ(c.why, "user");
    ThrottleCheck d = t.check(ip("192.0.2.72"), "bob", t0);
    EXPECT_FALSE(d.busy || d.locked);
}
