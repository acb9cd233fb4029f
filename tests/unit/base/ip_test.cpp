// ip_test: address, endpoint and CIDR parsing/formatting.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <xproxy/base/ip.hpp>

using xproxy::Cidr;
using xproxy::CidrSet;
using xproxy::Endpoint;
using xproxy::IpAddress;

TEST(IpAddress, ParseTable) {
    struct Row {
        const char* in;
        bool want_ok;
        const char* want_text;
        bool want_v4;
    };
    const Row rows[] = {
        {"127.0.0.1", true, "127.0.0.1", true},
        {"0.0.0.0", true, "0.0.0.0", true},
        {"255.255.255.255", true, "255.255.255.255", true},
        {"256.0.0.1", false, "", false},
        {"1.2.3", false, "", false},
        {"01.2.3.4", false, "", false},  // leading zero
        {"1.2.3.4 ", false, "", false},
        {"", false, "", false},
        {"::1", true, "::1", false},
        {"2001:DB8:0:0:0:0:0:1", true, "2001:db8::1", false},
        {"::ffff:10.1.2.3", true, "10.1.2.3", true},  // v4-mapped normalised
        {"::ffff:a01:203", true, "10.1.2.3", true},
        {"fe80::1%eth0", false, "", false},
        {"1:2:3:4:5:6:7:8:9", false, "", false},
        {"IPv6:::1", false, "", false},  // prefix only in parse_mta
    };
    for (const auto& r : rows) {
        auto a = IpAddress::parse(r.in);
        ASSERT_EQ(a.has_value(), r.want_ok) << r.in;
        if (!a) continue;
        EXPECT_EQ(a->to_string(), r.want_text) << r.in;
        EXPECT_EQ(a->is_v4(), r.want_v4) << r.in;
    }
}

TEST(IpAddress, ParseMtaPrefixes) {
    EXPECT_EQ(IpAddress::parse_mta("IPv6:2001:db8::5")->to_string(), "2001:db8::5");
    EXPECT_EQ(IpAddress::parse_mta("IPV6:2001:db8::5")->to_string(), "2001:db8::5");
    EXPECT_EQ(IpAddress::parse_mta("ipv6:::1")->to_string(), "::1");
    EXPECT_EQ(IpAddress::parse_mta("[192.0.2.1]")->to_string(), "192.0.2.1");
    EXPECT_EQ(IpAddress::parse_mta("[IPv6:::1]")->to_string(), "::1");
    EXPECT_EQ(IpAddress::parse_mta("192.0.2.1")->to_string(), "192.0.2.1");
    EXPECT_FALSE(IpAddress::parse_mta("IPv6:192.0.2.1"));  // prefix demands an IPv6 literal
    EXPECT_FALSE(IpAddress::parse_mta("IPv6:"));
    EXPECT_FALSE(IpAddress::parse_mta("[192.0.2.1"));
    EXPECT_EQ(IpAddress::parse("2001:db8::5")->to_mta_string(), "IPv6:2001:db8::5");
    EXPECT_EQ(IpAddress::parse("192.0.2.1")->to_mta_string(), "192.0.2.1");
}

TEST(IpAddress, V4MappedRoundTrip) {
    auto a = *IpAddress::parse("10.9.8.7");
    auto m = a.to_v4_mapped();
    EXPECT_TRUE(m.is_v6());
    EXPECT_TRUE(m.is_v4_mapped());
    EXPECT_EQ(m.to_string(), "::ffff:10.9.8.7");
    EXPECT_EQ(m.normalized(), a);
}

TEST(Endpoint, SockaddrRoundTrip) {
    Endpoint e{*IpAddress::parse("127.0.0.66"), 2525};
    sockaddr_storage ss;
    unsigned len = e.to_sockaddr(ss);
    EXPECT_EQ(len, sizeof(sockaddr_in));
    EXPECT_EQ(ss.ss_family, AF_INET);
    EXPECT_EQ(Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len), e);

    len = e.to_sockaddr(ss, true);  // v4 on an IPv6 listener
    EXPECT_EQ(len, sizeof(sockaddr_in6));
    EXPECT_EQ(ss.ss_family, AF_INET6);
    EXPECT_EQ(Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len), e);

    Endpoint e6{*IpAddress::parse("2001:db8::1"), 25};
    len = e6.to_sockaddr(ss);
    EXPECT_EQ(len, sizeof(sockaddr_in6));
    EXPECT_EQ(Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len), e6);
    EXPECT_EQ(e6.to_string(), "[2001:db8::1]:25");
    EXPECT_EQ(e.to_string(), "127.0.0.66:2525");

    EXPECT_FALSE(Endpoint::from_sockaddr(nullptr, 0));
    sockaddr_storage un{};
    un.ss_family = AF_UNIX;
    EXPECT_FALSE(Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&un), sizeof un));
    EXPECT_FALSE(Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), 4));  // short length
}

TEST(Cidr, ParseAndContains) {
    struct Row {
        const char* cidr;
        const char* addr;
        bool want;
    };
    const Row rows[] = {
        {"127.0.0.0/8", "127.0.0.66", true},
        {"127.0.0.0/8", "128.0.0.1", false},
        {"10.0.0.0/9", "10.127.255.255", true},
        {"10.0.0.0/9", "10.128.0.0", false},
        {"0.0.0.0/0", "8.8.8.8", true},
        {"0.0.0.0/0", "::1", false},
        {"192.0.2.7", "192.0.2.7", true},
        {"192.0.2.7", "192.0.2.8", false},
        {"::1", "::1", true},
        {"2001:db8::/32", "2001:db8:ffff::1", true},
        {"2001:db8::/32", "2001:db9::1", false},
        {"127.0.0.0/8", "::ffff:127.0.0.1", true},
        {"IPv6:::1/128", "::1", true},
    };
    for (const auto& r : rows) {
        auto c = Cidr::parse(r.cidr);
        ASSERT_TRUE(c) << r.cidr;
        EXPECT_EQ(c->contains(*IpAddress::parse(r.addr)), r.want) << r.cidr << " " << r.addr;
    }
    for (const char* bad : {"10.1.2.3/8", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/08", "x/8", "10.0.0.0/8x"})
        EXPECT_FALSE(Cidr::parse(bad)) << bad;
}

TEST(CidrSet, ListParsing) {
    auto s = CidrSet::parse("127.0.0.1, 10.0.0.0/8\t::1  ,2001:db8::/48");
    ASSERT_TRUE(s) << s.error();
    EXPECT_EQ(s->entries().size(), 4u);
    EXPECT_TRUE(s->contains(*IpAddress::parse("10.2.3.4")));
    EXPECT_TRUE(s->contains(*IpAddress::parse("::1")));
    EXPECT_FALSE(s->contains(*IpAddress::parse("127.0.0.2")));
    EXPECT_EQ(s->to_string(), "127.0.0.1/32, 10.0.0.0/8, ::1/128, 2001:db8::/48");

    auto bad = CidrSet::parse("127.0.0.1, bogus");
    EXPECT_FALSE(bad);
    EXPECT_NE(bad.error().find("bogus"), std::string::npos);

    auto empty = CidrSet::parse("");
    ASSERT_TRUE(empty);
    EXPECT_TRUE(empty->empty());
    EXPECT_FALSE(empty->contains(*IpAddress::parse("127.0.0.1")));  // trust nobody
}
