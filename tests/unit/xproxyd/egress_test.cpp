// egress_test.cpp: egress and pool specifications, and the weighted choice of an egress.
#include "egress.hpp"

#include <gtest/gtest.h>

#include <map>

using namespace xproxy;
using namespace xproxy::xproxyd;

namespace {

std::vector<Egress> three() {
    std::vector<Egress> v;
    for (const char* t : {"a address=192.0.2.1 helo=a.example", "b address=192.0.2.2 helo=b.example",
                          "c address=2001:db8::3 helo=c.example"}) {
        auto e = parse_egress(t);
        EXPECT_TRUE(e) << t;
        v.push_back(*e);
    }
    return v;
}

}  // namespace

TEST(Egress, ParsesNameAddressAndHelo) {
    auto e = parse_egress("out1 address=192.0.2.10 helo=out1.example.com");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->name, "out1");
    EXPECT_EQ(e->address.to_string(), "192.0.2.10");
    EXPECT_EQ(e->helo, "out1.example.com");
    auto v6 = parse_egress("v6 helo=[IPv6:2001:db8::1] address=2001:db8::1");
    ASSERT_TRUE(v6);
    EXPECT_FALSE(v6->address.is_v4());
}

TEST(Egress, RefusesIncompleteOrBadSpecifications) {
    for (const char* bad : {"", "address=192.0.2.1 helo=x", "e address=192.0.2.1", "e helo=x.example",
                            "e address=nope helo=x.example", "e address=192.0.2.1 helo=bad_name!",
                            "e address=192.0.2.1 helo=x.example port=25", "e address=192.0.2.1 helo=-x"})
        EXPECT_FALSE(parse_egress(bad)) << bad;
    EXPECT_EQ(parse_egress("e helo=x.example").error(), "egress e: no address=");
}

TEST(EgressPool, ParsesMembersAndWeights) {
    auto eg = three();
    auto p = parse_pool("bulk a:3,b,c:0", eg);
    ASSERT_TRUE(p) << p.error();
    EXPECT_EQ(p->risk, "bulk");
    ASSERT_EQ(p->members.size(), 3u);
    EXPECT_EQ(p->members[0].weight, 3u);
    EXPECT_EQ(p->members[1].weight, 1u);
    EXPECT_EQ(p->members[2].weight, 0u);
    EXPECT_EQ(p->total_weight, 4u);
}

TEST(EgressPool, RefusesUnknownDuplicateOrAllZero) {
    auto eg = three();
    EXPECT_EQ(parse_pool("bulk a,zz", eg).error(), "pool bulk: no egress named 'zz'");
    EXPECT_EQ(parse_pool("bulk a,a:2", eg).error(), "pool bulk: egress a listed twice");
    EXPECT_EQ(parse_pool("bulk a:0,b:0", eg).error(), "pool bulk: every egress has weight 0");
    EXPECT_FALSE(parse_pool("bulk a:x", eg));
    EXPECT_FALSE(parse_pool("bulk a:1000001", eg));
    EXPECT_FALSE(parse_pool("bulk", eg));
    EXPECT_FALSE(parse_pool("bulk a b", eg));
}

TEST(EgressPool, ChoiceFollowsTheWeightsAndNeverPicksWeightZero) {
    auto eg = three();
    auto p = parse_pool("bulk a:3,c:0,b:1", eg);
    ASSERT_TRUE(p);
    std::map<std::size_t, unsigned> seen;
    for (std::uint64_t draw = 0; draw < 400; ++draw) ++seen[choose_egress(*p, draw)];
    EXPECT_EQ(seen[0], 300u);  // a
    EXPECT_EQ(seen[1], 100u);  // b
    EXPECT_EQ(seen.count(2), 0u);
    EXPECT_EQ(choose_egress(*p, ~std::uint64_t{0}), 1u);  // any draw maps into the range: 2^64-1 % 4 = 3, b
}
