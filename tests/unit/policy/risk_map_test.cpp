// risk_map_test: the risk file and the choice of a risk class for a client and sender.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include <xproxy/base/file_loader.hpp>
#include <xproxy/policy/risk_map.hpp>

#include "expected_value.hpp"

using namespace xproxy;

namespace {

const char* kRisk =
    "# classes, least risky first\n"
    "class good\n"
    "class bulk   transport=smtp-bulk:\n"
    "class high   transport=smtp-high:[relay.example.net]:25   # trailing comment\n"
    "network 192.0.2.0/24        class=good\n"
    "network 203.0.113.0/24      class=high\n"
    "network 203.0.113.128/25    class=bulk\n"
    "network 2001:db8:bad::/48   class=high\n"
    "sender-domain Newsletter.Example class=bulk\n"
    "sender-domain spam.example       class=high\r\n"
    "sender-domain partner.example    class=good\n";

RiskMap load() {
    std::string error;
    auto m = xproxy::test::value_or_error(RiskMap::parse(kRisk), error);
    EXPECT_TRUE(m) << error;
    return m ? std::move(*m) : RiskMap();
}

std::optional<IpAddress> ip(const char* s) {
    if (!*s) return std::nullopt;
    return IpAddress::parse(s);
}

}  // namespace

TEST(RiskMap, ParsesTheExample) {
    const RiskMap m = load();
    ASSERT_EQ(m.classes().size(), 3u);
    EXPECT_EQ(m.classes()[0].transport, "");
    EXPECT_EQ(m.classes()[2].transport, "smtp-high:[relay.example.net]:25");
    EXPECT_EQ(m.network_count(), 4u);
    EXPECT_EQ(m.domain_count(), 3u);
    EXPECT_FALSE(m.empty());
    EXPECT_TRUE(RiskMap().empty());
}

TEST(RiskMap, ClassifyTable) {
    const RiskMap m = load();
    struct Row {
        const char* client;
        const char* sender;
        const char* want_class;  // "" = no match
        RiskMatch::Source want_source;
        const char* want_matched;
    };
    using S = RiskMatch::Source;
    const Row rows[] = {
        {"203.0.113.7", "", "high", S::network, "203.0.113.0/24"},
        {"203.0.113.200", "", "bulk", S::network, "203.0.113.128/25"},  // longest prefix wins
        {"::ffff:203.0.113.7", "", "high", S::network, "203.0.113.0/24"},
        {"2001:db8:bad:1::5", "", "high", S::network, "2001:db8:bad::/48"},
        {"2001:db8:bae::5", "", "", S::network, ""},
        {"198.51.100.1", "", "", S::network, ""},
        {"", "a@newsletter.example", "bulk", S::sender_domain, "newsletter.example"},
        {"", "a@NEWSLETTER.EXAMPLE", "bulk", S::sender_domain, "newsletter.example"},
        {"", "a@eu.mail.newsletter.example", "bulk", S::sender_domain, "newsletter.example"},  // parent
        {"", "a@xnewsletter.example", "", S::network, ""},                                     // not a parent domain
        {"", "a@example", "", S::network, ""},
        {"", "newsletter.example", "", S::network, ""},  // no '@': not an address
        {"", "", "", S::network, ""},                    // null sender
        {"198.51.100.1", "x@spam.example", "high", S::sender_domain, "spam.example"},
        // Both match: the class declared later wins.
        {"203.0.113.200", "x@spam.example", "high", S::sender_domain, "spam.example"},
        {"203.0.113.7", "x@newsletter.example", "high", S::network, "203.0.113.0/24"},
        {"192.0.2.1", "x@newsletter.example", "bulk", S::sender_domain, "newsletter.example"},
        {"192.0.2.1", "x@partner.example", "good", S::network, "192.0.2.0/24"},  // same class: network
        {"192.0.2.1", "", "good", S::network, "192.0.2.0/24"},
    };
    for (const auto& r : rows) {
        const auto got = m.classify(ip(r.client), r.sender);
        const std::string label = std::string(r.client) + " " + r.sender;
        if (*r.want_class == 0) {
            EXPECT_FALSE(got) << label;
            continue;
        }
        ASSERT_TRUE(got) << label;
        EXPECT_EQ(got->risk_class->name, r.want_class) << label;
        EXPECT_EQ(got->source, r.want_source) << label;
        EXPECT_EQ(got->matched, r.want_matched) << label;
    }
}

TEST(RiskMap, ParseErrorTable) {
    struct Row {
        std::string text;
        const char* want_error;  // "" = parses
    };
    const std::string cls = "class high transport=smtp-high:\n";
    const Row rows[] = {
        {"", ""},
        {"# nothing\n\n", ""},
        {cls + "network 10.0.0.0/8 class=high\nnetwork ::1 class=high\n", ""},
        {"class\n", "line 1: class line without a value"},
        {"class high transport=smtp-high\n", "line 1: transport 'smtp-high' is not transport:destination"},
        {"class high transport=:x\n", "line 1: transport ':x' is not transport:destination"},
        {"class hi/gh\n", "line 1: class name 'hi/gh' is not"},
        {cls + "class high\n", "line 2: class high is already defined"},
        {"class high colour=red\n", "line 1: unknown attribute 'colour' for class (want transport)"},
        {"class high transport\n", "line 1: expected name=value, got 'transport'"},
        {"class high transport=a: transport=b:\n", "line 1: attribute transport given twice"},
        {"network 10.0.0.0/8 class=high\n", "line 1: class 'high' is not defined (a class line must come first)"},
        {cls + "network 10.0.0.0/8\n", "line 2: network '10.0.0.0/8' without class="},
        {cls + "network 10.1.0.0/8 class=high\n", "line 2: network '10.1.0.0/8' is not an address"},
        {cls + "network 10.0.0.0/8 class=high\nnetwork 10.0.0.0/8 class=high\n",
         "line 3: network 10.0.0.0/8 is already listed"},
        {cls + "network 10.0.0.0/8 transport=x:\n", "line 2: unknown attribute 'transport' for network (want class)"},
        {cls + "sender-domain bad..example class=high\n", "line 2: sender domain 'bad..example' is not a domain name"},
        {cls + "sender-domain a.example class=high\nsender-domain A.EXAMPLE class=high\n",
         "line 3: sender domain A.EXAMPLE is already listed"},
        {cls + "sender-domain a.example class=high class=high\n", "line 2: attribute class given twice"},
        {"risk high transport=x:\n", "line 1: unknown keyword 'risk' (want class, network or sender-domain)"},
        {"class high transport=x: " + std::string(kMaxRiskLine, ' ') + "\n", "line 1: line longer than 1024 bytes"},
    };
    for (const auto& r : rows) {
        std::string error;
        const auto m = xproxy::test::value_or_error(RiskMap::parse(r.text), error);
        if (*r.want_error == 0) {
            EXPECT_TRUE(m) << r.text << " -> " << error;
        } else {
            EXPECT_FALSE(m) << r.text;
            EXPECT_NE(error.find(r.want_error), std::string::npos) << "got: " << error << "\nwant: " << r.want_error;
        }
    }
}

TEST(RiskMap, LoadFileReportsPathAndLine) {
    char path[] = "/tmp/xproxy-risk-XXXXXX";
    const int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    {
        std::ofstream out(path);
        out << "class high transport=smtp-high:\nnetwork 10.0.0.0/8 class=low\n";
    }
    std::string error;
    EXPECT_FALSE(xproxy::test::value_or_error(load_and_parse(path, kConfigFileRules, RiskMap::parse), error));
    EXPECT_EQ(error, std::string(path) + ":2: class 'low' is not defined (a class line must come first)");
    {
        std::ofstream out(path);
        out << kRisk;
    }
    EXPECT_TRUE(xproxy::test::value_or_error(load_and_parse(path, kConfigFileRules, RiskMap::parse), error)) << error;
    std::remove(path);
    EXPECT_FALSE(xproxy::test::value_or_error(load_and_parse(path, kConfigFileRules, RiskMap::parse), error));
    EXPECT_NE(error.find(": cannot read: "), std::string::npos) << error;
}

TEST(RiskMap, ShippedExampleLoads) {
    const std::string path = std::string(XPROXY_SOURCE_DIR) + "/packaging/examples/risk.example";
    std::string error;
    const auto m = xproxy::test::value_or_error(load_and_parse(path, kConfigFileRules, RiskMap::parse), error);
    ASSERT_TRUE(m) << error;
    EXPECT_EQ(m->classes().size(), 3u);
    const auto r = m->classify(IpAddress::parse("203.0.113.5"), "x@newsletter.example.com");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->risk_class->transport, "smtp-high:");
}
