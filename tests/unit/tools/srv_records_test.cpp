// tools_srv_records_test: the pure parts of the deposit client's discovery
// (tools/deposit/srv_records.hpp): SRV rdata decoding byte by byte, every strict prefix
// refused, bad names refused; RFC 2782 order (priority, weight-0 first, weighted choice
// driven by a fixed random sequence); the "." record; the in-domain rule; the query
// string of a deposit (percent-encoding).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "deposit_client.hpp"
#include "srv_records.hpp"

namespace {

using namespace xproxy::deposit;
using namespace std::string_literals;

// priority 10, weight 5, port 8443, mx.example.test.
const std::string kRdata =
    "\x00\x0a"s  // priority 10
    "\x00\x05"s  // weight 5
    "\x20\xfb"s  // port 8443
    "\x02mx"s    // label "mx"
    "\x07"
    "example"s
    "\x04tEsT"s  // upper case is lowered
    "\x00"s;     // root

SrvRandom fixed(const std::vector<std::uint32_t>& values) {
    auto i = std::make_shared<std::size_t>(0);
    return [values, i](std::uint32_t bound) {
        std::uint32_t v = values[(*i)++ % values.size()];
        return v < bound ? v : bound - 1;
    };
}

std::vector<std::string> targets(const std::vector<SrvRecord>& v) {
    std::vector<std::string> out;
    out.reserve(v.size());
    for (const auto& r : v) out.push_back(r.target);
    return out;
}

}  // namespace

TEST(SrvRdata, Decodes) {
    auto r = decode_srv_rdata(kRdata);
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->priority, 10);
    EXPECT_EQ(r->weight, 5);
    EXPECT_EQ(r->port, 8443);
    EXPECT_EQ(r->target, "mx.example.test");
    auto root = decode_srv_rdata("\x00\x00\x00\x00\x00\x00\x00"s);
    ASSERT_TRUE(root);
    EXPECT_EQ(root->target, "");
    EXPECT_TRUE(service_not_offered({*root}));
    EXPECT_FALSE(service_not_offered({*r}));
    EXPECT_FALSE(service_not_offered({*root, *r}));
}

TEST(SrvRdata, RefusesEveryStrictPrefixAndBadNames) {
    for (std::size_t n = 0; n < kRdata.size(); ++n) EXPECT_FALSE(decode_srv_rdata(kRdata.substr(0, n))) << n;
    EXPECT_FALSE(decode_srv_rdata(kRdata + "x"));                             // bytes after the name
    EXPECT_FALSE(decode_srv_rdata("\x00\x01\x00\x01\x00\x19\xc0\x0c"s));      // compression pointer
    EXPECT_FALSE(decode_srv_rdata("\x00\x01\x00\x01\x00\x19\x03m x\x00"s));   // space in a label
    EXPECT_FALSE(decode_srv_rdata("\x00\x01\x00\x01\x00\x19\x03mx\n\x00"s));  // control byte
    EXPECT_FALSE(decode_srv_rdata("\x00\x01\x00\x01\x00\x19\x03-mx\x00"s));   // leading '-'
    auto bad = decode_srv_rdata("\x00\x01\x00\x01\x00\x19\x03m\xffx\x00"s);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error(), "SRV target with a byte not allowed in a host name: m\\xffx");
}

TEST(SrvOrder, PriorityThenWeight) {
    std::vector<SrvRecord> in = {
        {20, 0, 1, "c.test"}, {10, 60, 1, "a.test"}, {10, 0, 1, "zero.test"}, {10, 40, 1, "b.test"}, {0, 0, 0, ""}};
    // Priority 10 list after sorting: zero(0), a(60), b(40); sums 0, 60, 100.
    // pick 70 -> b; then zero(0), a(60): sums 0, 60; pick 0 -> zero; then a.
    auto out = order_srv_records(in, fixed({70, 0, 0, 0}));
    EXPECT_EQ(targets(out), (std::vector<std::string>{"b.test", "zero.test", "a.test", "c.test"}));
    // pick 1 -> a (running 60 >= 1); then zero(0), b(40): pick 40 -> b; then zero.
    out = order_srv_records(in, fixed({1, 40, 0, 0}));
    EXPECT_EQ(targets(out), (std::vector<std::string>{"a.test", "b.test", "zero.test", "c.test"}));
    // An out-of-range random source cannot break the order.
    out = order_srv_records(in, [](std::uint32_t) { return 1000000u; });
    EXPECT_EQ(out.size(), 4u);
    EXPECT_EQ(out.back().target, "c.test");
}

TEST(SrvOrder, WeightsSpreadTheLoad) {
    std::vector<SrvRecord> in = {{0, 90, 1, "heavy.test"}, {0, 10, 1, "light.test"}};
    auto random = default_srv_random();
    int heavy = 0;
    for (int i = 0; i < 1000; ++i)
        if (order_srv_records(in, random).front().target == "heavy.test") ++heavy;
    EXPECT_GT(heavy, 800);
    EXPECT_LT(heavy, 980);
}

TEST(SrvDomain, TargetInDomain) {
    EXPECT_TRUE(in_domain("example.test", "example.test"));
    EXPECT_TRUE(in_domain("mx.Example.TEST", "example.test"));
    EXPECT_TRUE(in_domain("a.b.example.test", "example.test"));
    EXPECT_FALSE(in_domain("badexample.test", "example.test"));
    EXPECT_FALSE(in_domain("example.test.evil", "example.test"));
    EXPECT_FALSE(in_domain("test", "example.test"));
    EXPECT_FALSE(in_domain("mx.example.test", ""));
    EXPECT_TRUE(check_domain_name("hosted.example.test"));
    EXPECT_FALSE(check_domain_name("a..b"));
    EXPECT_FALSE(check_domain_name("a.b."));
    EXPECT_FALSE(check_domain_name("a b"));
    EXPECT_FALSE(check_domain_name(std::string(64, 'a') + ".test"));
}

TEST(DepositQuery, PercentEncodes) {
    EXPECT_EQ(deposit_query({}, ""), "");
    EXPECT_EQ(deposit_query({"bob@example.test", "a+b&c=d@x.test"}, "me@x.test"),
              "?rcpt=bob%40example.test&rcpt=a%2Bb%26c%3Dd%40x.test&from=me%40x.test");
    EXPECT_EQ(deposit_query({}, "\xc3\xa9@x.test"), "?from=%C3%A9%40x.test");
}
