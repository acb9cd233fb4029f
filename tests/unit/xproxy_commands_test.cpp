// xproxy_commands_test: seed 000's XPROXYFROM, XPROXY, XPROXYTO and DESTINATIONLEFT.
#include <gtest/gtest.h>

#include "xproxy/xproxy_commands.hpp"

using namespace xproxy;
using namespace xproxy::smtp;

TEST(XproxyCommands, SeedExamplesParse) {
    // The seed's examples, with the spaces the OCR lost put back.
    std::string err;
    auto f = parse_xproxyfrom("XPROXYFROM SID=08CE780858C360B8 IP=10.121.202.151 PORT=25481", &err);
    ASSERT_TRUE(f) << err;
    EXPECT_EQ(f->sid, "08CE780858C360B8");
    EXPECT_EQ(f->source.to_string(), "10.121.202.151:25481");
    auto x = parse_xproxy("XPROXY SID=08CE780858C360B8 IP=10.121.202.151 PORT=25481 DOMAIN=URBSOFT.COM", &err);
    ASSERT_TRUE(x) << err;
    EXPECT_EQ(x->domain, "URBSOFT.COM");
    XproxyToAccumulator acc;
    ASSERT_EQ(acc.add("XPROXYTO DESTINATIONS=[10.128.10.246],[10.10.10.1],[10.10.10.2] FORCEHELO=False "
                      "SHOULDSKIPTLS=False PORT=99 REQUIRETLS=True REQUIREOORG=False "
                      "TLSAUTHLEVEL=DomainValidation RISK=Normal SESSIONID=08CE6D0EBCDE4827 LAST=True"),
              XproxyToAccumulator::State::complete)
        << acc.error();
    const XproxyTo& t = acc.result();
    ASSERT_EQ(t.destinations.size(), 3u);
    EXPECT_EQ(t.destinations[2].to_string(), "10.10.10.2");
    EXPECT_EQ(t.port, 99);
    EXPECT_TRUE(t.require_tls);
    EXPECT_FALSE(t.force_helo);
    EXPECT_EQ(t.tls_auth_level, "DomainValidation");
    EXPECT_EQ(t.risk, "Normal");
    EXPECT_EQ(t.session_id, "08CE6D0EBCDE4827");
    auto left = parse_destination_left("250 - DESTINATIONLEFT=[10.10.10.2]\r\n250 - Target Option1\r\n250 Target Option2\r\n", &err);
    ASSERT_TRUE(left) << err;
    ASSERT_EQ(left->left.size(), 1u);
    EXPECT_EQ(left->left[0].to_string(), "10.10.10.2");
    EXPECT_EQ(left->options.size(), 2u);
}

TEST(XproxyCommands, FromAndXproxyRoundTrip) {
    XproxyFrom f{"S1", Endpoint{*IpAddress::parse("2001:db8::66"), 4066}, "helo with space", "alice", "ESMTPSA"};
    std::string line = encode(f);
    EXPECT_EQ(line, "XPROXYFROM SID=S1 IP=IPv6:2001:db8::66 PORT=4066 HELO=helo+20with+20space LOGIN=alice "
                    "PROTO=ESMTPSA\r\n");
    std::string err;
    EXPECT_EQ(parse_xproxyfrom(line, &err), f) << err;
    Xproxy x{"S2", Endpoint{*IpAddress::parse("192.0.2.1"), 587}, "mua.example", "bob"};
    EXPECT_EQ(parse_xproxy(encode(x), &err), x) << err;
    SourceInfo si = to_source_info(f);
    EXPECT_EQ(xproxyfrom_from(si), f);
}

TEST(XproxyCommands, ParseErrors) {
    struct Row {
        const char* line;
        const char* want_error;
    };
    const Row rows[] = {
        {"XPROXYFROM SID=1 PORT=25", "missing IP"},
        {"XPROXYFROM SID=1 IP=300.1.1.1 PORT=25", "bad IP or PORT"},
        {"XPROXYFROM SID=1 IP=1.1.1.1 PORT=70000", "bad IP or PORT"},
        {"XPROXYFROM SID=1 IP=1.1.1.1 PORT=1 EVIL=1", "unknown attribute 'EVIL'"},
        {"XPROXY SID=1 IP=1.1.1.1 PORT=1", "not an XPROXYFROM command"},
    };
    for (const auto& r : rows) {
        std::string err;
        EXPECT_FALSE(parse_xproxyfrom(r.line, &err)) << r.line;
        EXPECT_EQ(err, r.want_error) << r.line;
    }
    std::string err;
    EXPECT_FALSE(parse_xproxy("XPROXY SID=1 IP=1.1.1.1 PORT=1", &err));
    EXPECT_EQ(err, "missing DOMAIN");
}

TEST(XproxyCommands, XproxyToSplitsAndMerges) {
    XproxyTo t;
    for (int i = 0; i < 60; ++i) t.destinations.push_back(*IpAddress::parse("10.0." + std::to_string(i) + ".1"));
    t.destinations.push_back(*IpAddress::parse("2001:db8::1"));
    t.port = 2525;
    t.require_tls = true;
    t.tls_auth_level = "DomainValidation";
    t.risk = "High";
    t.session_id = "ABC";
    auto lines = encode(t);
    ASSERT_GE(lines.size(), 2u);
    XproxyToAccumulator acc;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        EXPECT_LE(lines[i].size(), 512u);
        bool last = i + 1 == lines.size();
        EXPECT_NE(lines[i].find(last ? "LAST=True" : "LAST=False"), std::string::npos) << lines[i];
        auto st = acc.add(lines[i]);
        EXPECT_EQ(st, last ? XproxyToAccumulator::State::complete : XproxyToAccumulator::State::need_more)
            << acc.error();
    }
    EXPECT_EQ(acc.result(), t);
    XproxyTo one;
    one.destinations = {*IpAddress::parse("192.0.2.1")};
    ASSERT_EQ(encode(one).size(), 1u);
}

TEST(XproxyCommands, AccumulatorBounds) {
    XproxyToAccumulator acc;
    for (std::size_t i = 0; i < XproxyToAccumulator::kMaxCommands; ++i)
        ASSERT_EQ(acc.add("XPROXYTO DESTINATIONS=[10.0.0.1] LAST=False"), XproxyToAccumulator::State::need_more);
    EXPECT_EQ(acc.add("XPROXYTO DESTINATIONS=[10.0.0.1] LAST=False"), XproxyToAccumulator::State::failed);
    EXPECT_EQ(acc.error(), "more than 16 XPROXYTO commands");
    EXPECT_EQ(acc.add("XPROXYTO DESTINATIONS=[10.0.0.1] LAST=True"), XproxyToAccumulator::State::failed);
    struct Row {
        const char* line;
        const char* want_error;
    };
    const Row rows[] = {
        {"XPROXYTO DESTINATIONS=[10.0.0.1]", "missing LAST"},
        {"XPROXYTO DESTINATIONS=10.0.0.1 LAST=True", "DESTINATIONS must be [ip],[ip],..."},
        {"XPROXYTO DESTINATIONS=[10.0.0.1], LAST=True", "DESTINATIONS must be [ip],[ip],..."},
        {"XPROXYTO DESTINATIONS=[host.example] LAST=True", "DESTINATIONS must be [ip],[ip],..."},
        {"XPROXYTO DESTINATIONS= LAST=True", "no DESTINATIONS"},
        {"XPROXYTO DESTINATIONS=[10.0.0.1] LAST=maybe", "LAST must be True or False"},
        {"XPROXYTO DESTINATIONS=[10.0.0.1] PORT=x LAST=True", "bad value for PORT"},
        {"XPROXYTO DESTINATIONS=[10.0.0.1] RISK=[UNAVAILABLE] LAST=True", "attribute RISK must have a value"},
    };
    for (const auto& r : rows) {
        XproxyToAccumulator a;
        EXPECT_EQ(a.add(r.line), XproxyToAccumulator::State::failed) << r.line;
        EXPECT_EQ(a.error(), r.want_error) << r.line;
    }
    XproxyToAccumulator a;
    ASSERT_EQ(a.add("XPROXYTO DESTINATIONS=[10.0.0.1] RISK=High LAST=False"), XproxyToAccumulator::State::need_more);
    EXPECT_EQ(a.add("XPROXYTO DESTINATIONS=[10.0.0.2] RISK=Low LAST=True"), XproxyToAccumulator::State::failed);
    EXPECT_EQ(a.error(), "attribute RISK repeated");
}

TEST(XproxyCommands, DestinationLeftRoundTrip) {
    std::vector<IpAddress> left = {*IpAddress::parse("10.10.10.2"), *IpAddress::parse("2001:db8::2")};
    std::vector<std::string> opts = {"PIPELINING", "SIZE 10240000", "STARTTLS"};
    std::string reply = encode_destination_left(left, opts);
    EXPECT_EQ(reply,
              "250-DESTINATIONLEFT=[10.10.10.2],[IPv6:2001:db8::2]\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 STARTTLS\r\n");
    std::string err;
    auto d = parse_destination_left(reply, &err);
    ASSERT_TRUE(d) << err;
    EXPECT_EQ(d->left, left);
    EXPECT_EQ(d->options, opts);
    EXPECT_EQ(encode_destination_left({}, {}), "250 DESTINATIONLEFT=\r\n");
    for (const char* bad : {"", "250-DESTINATIONLEFT=[1.2.3.4]\r\n", "550 no\r\n", "250 OTHER=1\r\n",
                            "250 DESTINATIONLEFT=[1.2.3.4]\r\n250 extra\r\n"})
        EXPECT_FALSE(parse_destination_left(bad, &err)) << bad;
}
