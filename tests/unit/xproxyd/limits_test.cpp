// xproxyd_limits_test: the resource limits that keep one peer from starving the others:
// sessions in all and per client (IPv6 clients counted per /64, places given back when a
// Slot ends), the spill quota shared by all body copies (a copy that would exceed it
// fails as over quota and gives its bytes back on clear()), and the downstream TLS
// options (closed default, identities, and values that are configuration errors).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "body_buffer.hpp"
#include "config.hpp"
#include "session_limits.hpp"

using namespace xproxy;
using namespace xproxy::xproxyd;

namespace {

IpAddress ip(const char* s) { return *IpAddress::parse(s); }

}  // namespace

TEST(SessionLimits, PerClientAndTotal) {
    SessionLimits lim(5, 2);
    std::vector<SessionLimits::Slot> held(5);
    EXPECT_EQ(lim.acquire(ip("192.0.2.1"), &held[0]), SessionLimits::Verdict::ok);
    EXPECT_EQ(lim.acquire(ip("192.0.2.1"), &held[1]), SessionLimits::Verdict::ok);
    SessionLimits::Slot extra;
    EXPECT_EQ(lim.acquire(ip("192.0.2.1"), &extra), SessionLimits::Verdict::per_client);
    EXPECT_FALSE(extra);
    EXPECT_EQ(lim.acquire(ip("192.0.2.2"), &held[2]), SessionLimits::Verdict::ok);
    EXPECT_EQ(lim.acquire(ip("192.0.2.3"), &held[3]), SessionLimits::Verdict::ok);
    EXPECT_EQ(lim.acquire(ip("192.0.2.3"), &held[4]), SessionLimits::Verdict::ok);
    EXPECT_EQ(lim.acquire(ip("192.0.2.4"), &extra), SessionLimits::Verdict::total);
    EXPECT_EQ(lim.active(), 5u);
    EXPECT_EQ(lim.active(ip("192.0.2.1")), 2u);
    held[0].reset();  // a session ends: its place is free for anyone
    EXPECT_EQ(lim.active(ip("192.0.2.1")), 1u);
    EXPECT_EQ(lim.acquire(ip("192.0.2.4"), &extra), SessionLimits::Verdict::ok);
    EXPECT_EQ(lim.active(), 5u);
}

TEST(SessionLimits, SlotsGiveTheirPlaceBackOnceWhenMovedOrDestroyed) {
    SessionLimits lim(10, 1);
    {
        SessionLimits::Slot a;
        ASSERT_EQ(lim.acquire(ip("192.0.2.1"), &a), SessionLimits::Verdict::ok);
        SessionLimits::Slot b(std::move(a));
        EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): the moved-from state is under test
        EXPECT_TRUE(b);
        SessionLimits::Slot c;
        c = std::move(b);
        EXPECT_EQ(lim.active(), 1u);
        SessionLimits::Slot d;
        EXPECT_EQ(lim.acquire(ip("192.0.2.1"), &d), SessionLimits::Verdict::per_client);
    }
    EXPECT_EQ(lim.active(), 0u);
    EXPECT_EQ(lim.active(ip("192.0.2.1")), 0u);
}

TEST(SessionLimits, Ipv6ClientsCountPerSlash64AndMappedV4AsV4) {
    SessionLimits lim(10, 2);
    SessionLimits::Slot a, b, c, d;
    EXPECT_EQ(lim.acquire(ip("2001:db8:1:2::1"), &a), SessionLimits::Verdict::ok);
    EXPECT_EQ(lim.acquire(ip("2001:db8:1:2:ffff::9"), &b), SessionLimits::Verdict::ok);
    EXPECT_EQ(lim.acquire(ip("2001:db8:1:2::77"), &c), SessionLimits::Verdict::per_client);  // same /64
    EXPECT_EQ(lim.acquire(ip("2001:db8:1:3::1"), &c), SessionLimits::Verdict::ok);           // next /64
    EXPECT_EQ(SessionLimits::client_key(ip("::ffff:192.0.2.1")), SessionLimits::client_key(ip("192.0.2.1")));
    EXPECT_NE(SessionLimits::client_key(ip("192.0.2.1")), SessionLimits::client_key(ip("192.0.2.2")));
    (void)d;
}

TEST(SpillQuota, SharedAcrossBuffersAndGivenBackOnClear) {
    char tmpl[] = "/tmp/xproxyd-quota-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    const std::string dir = tmpl;
    SpillQuota quota(3000);
    std::string err;
    BodyBuffer a(100, dir, &quota), b(100, dir, &quota);
    ASSERT_TRUE(a.append(std::string(2000, 'a'), &err)) << err;  // spilled: 2000 counted
    EXPECT_TRUE(a.spilled());
    EXPECT_EQ(quota.used(), 2000u);
    ASSERT_TRUE(b.append(std::string(50, 'b'), &err));  // in memory: not counted
    EXPECT_EQ(quota.used(), 2000u);
    ASSERT_TRUE(b.append(std::string(900, 'b'), &err));  // spills 950
    EXPECT_EQ(quota.used(), 2950u);
    EXPECT_FALSE(b.append(std::string(51, 'b'), &err));  // 3001 > 3000
    EXPECT_TRUE(b.over_quota());
    EXPECT_TRUE(b.failed());
    EXPECT_NE(err.find("quota"), std::string::npos) << err;
    EXPECT_FALSE(b.append("x", &err));  // stays failed until clear()
    EXPECT_EQ(quota.used(), 2950u);
    ASSERT_TRUE(a.append(std::string(50, 'a'), &err));  // exactly the limit
    EXPECT_EQ(quota.used(), 3000u);
    b.clear();
    EXPECT_FALSE(b.over_quota());
    EXPECT_EQ(quota.used(), 2050u);
    a.clear();
    EXPECT_EQ(quota.used(), 0u);
    {
        BodyBuffer c(10, dir, &quota);
        ASSERT_TRUE(c.append(std::string(3000, 'c'), &err));
        EXPECT_EQ(quota.used(), 3000u);
    }  // destroyed without clear(): still given back
    EXPECT_EQ(quota.used(), 0u);
    BodyBuffer big(10, dir, &quota);
    EXPECT_FALSE(big.append(std::string(3001, 'd'), &err));  // over the quota at the spill itself
    EXPECT_TRUE(big.over_quota());
    big.clear();
    EXPECT_EQ(quota.used(), 0u);
    rmdir(dir.c_str());
}

TEST(DownstreamTls, ClosedDefaultAndOptions) {
    struct Row {
        const char* spec;
        bool want_ok;
        TlsMode want_tls;
        const char* want_error;  // substring, when !want_ok
    };
    // encoding=xclient: a PROXY header's own rules are in xproxyd_source_test.
    const Row rows[] = {
        {"d encoding=xclient destinations=127.0.0.1:25", true, TlsMode::none, ""},  // loopback only: plain
        {"d encoding=xclient destinations=127.0.0.1:25,[::1]:25", true, TlsMode::none, ""},
        {"d encoding=xclient destinations=127.0.0.1:25,192.0.2.1:25", true, TlsMode::verify, ""},  // leaves the machine
        {"d encoding=xclient destinations=[2001:db8::1]:25", true, TlsMode::verify, ""},
        {"d encoding=xclient destinations=192.0.2.1:25 tls=none", true, TlsMode::none, ""},
        {"d encoding=xclient destinations=192.0.2.1:25 tls=off", true, TlsMode::none, ""},
        {"d encoding=xclient destinations=192.0.2.1:25 tls=may", true, TlsMode::may, ""},
        {"d encoding=xclient destinations=192.0.2.1:25 tls=encrypt tls-name=mx.example", true, TlsMode::encrypt, ""},
        {"d encoding=xclient destinations=192.0.2.1:25 tls=verify tls-name=mx.example tls-ca=/etc/ca.pem", true,
         TlsMode::verify, ""},
        {"d encoding=xclient destinations=192.0.2.1:25 tls-name=192.0.2.1", true, TlsMode::verify, ""},
        {"d encoding=xclient destinations=192.0.2.1:25 tls=required", false, TlsMode::none, "tls=required is gone"},
        {"d encoding=xclient destinations=192.0.2.1:25 tls=opportunistic", false, TlsMode::none,
         "tls=opportunistic is gone"},
        {"d encoding=xclient destinations=192.0.2.1:25 tls=maybe", false, TlsMode::none, "bad value"},
        {"d encoding=xclient destinations=192.0.2.1:25 tls=may tls-ca=/etc/ca.pem", false, TlsMode::none,
         "tls-ca= needs tls=verify"},
        {"d encoding=xclient destinations=127.0.0.1:25 tls-name=mx.example", false, TlsMode::none,
         "tls-name= needs TLS"},
        {"d encoding=xclient destinations=192.0.2.1:25 tls-name=*.example", false, TlsMode::none, "bad value"},
        {"d encoding=xclient destinations=192.0.2.1:25 tls-name=mx..example", false, TlsMode::none, "bad value"},
        {"d encoding=xclient destinations=192.0.2.1:25 tls-name=", false, TlsMode::none, "bad value"},
        {"d encoding=xclient destinations=192.0.2.1:25 tls-ca=", false, TlsMode::none, "bad value"},
    };
    for (const auto& r : rows) {
        std::string err;
        auto d = parse_downstream(r.spec, &err);
        EXPECT_EQ(d.has_value(), r.want_ok) << r.spec << ": " << err;
        if (d && r.want_ok) {
            EXPECT_EQ(d->tls, r.want_tls) << r.spec;
        }
        if (!r.want_ok) {
            EXPECT_NE(err.find(r.want_error), std::string::npos) << r.spec << ": " << err;
        }
    }
}
