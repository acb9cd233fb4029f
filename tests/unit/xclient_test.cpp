// xclient_test: xtext, attribute command lines, XCLIENT and XFORWARD.
#include <gtest/gtest.h>

#include "xproxy/xclient.hpp"
#include "xproxy/xtext.hpp"

using namespace xproxy;
using namespace xproxy::smtp;

TEST(Xtext, Table) {
    struct Row {
        std::string raw;
        const char* want;
    };
    const Row rows[] = {
        {"mail.example.com", "mail.example.com"}, {"a+b=c", "a+2Bb+3Dc"},   {"two words", "two+20words"},
        {"", ""},                                  {"\x7f\x01", "+7F+01"},    {std::string("\0", 1), "+00"},
        {"caf\xc3\xa9", "caf+C3+A9"},
    };
    for (const auto& r : rows) {
        EXPECT_EQ(xtext_encode(r.raw), r.want);
        auto d = xtext_decode(r.want, true);
        ASSERT_TRUE(d) << r.want;
        EXPECT_EQ(*d, r.raw);
    }
}

TEST(Xtext, EveryByteRoundTrips) {
    for (int b = 0; b < 256; ++b) {
        std::string raw(1, static_cast<char>(b));
        auto enc = xtext_encode(raw);
        for (char c : enc) EXPECT_TRUE(c >= 33 && c <= 126 && c != '=') << b;
        auto dec = xtext_decode(enc, true);
        ASSERT_TRUE(dec) << b;
        EXPECT_EQ(*dec, raw) << b;
    }
}

TEST(Xtext, StrictDecoding) {
    for (const char* bad : {"+", "+4", "+4g", "+4a", "a=b", "a b", "+0D", "+0A", "+00", "\x7f", "a\tb"})
        EXPECT_FALSE(xtext_decode(bad)) << bad;
    EXPECT_EQ(*xtext_decode("+0D+0A", true), "\r\n");
}

TEST(Commands, ParseTable) {
    struct Row {
        const char* line;
        bool want_ok;
        const char* want_error;
    };
    const Row rows[] = {
        {"XCLIENT ADDR=192.0.2.1 PORT=25\r\n", true, ""},
        {"xclient addr=192.0.2.1", true, ""},
        {"XCLIENT NAME=[UNAVAILABLE] HELO=[TEMPUNAVAIL]", true, ""},
        {"XCLIENT ADDR=192.0.2.1 ADDR=192.0.2.2", false, "duplicate attribute 'ADDR'"},
        {"XCLIENT FOO=bar", false, "unknown attribute 'FOO'"},
        {"XCLIENT ADDR", false, "malformed attribute 'ADDR'"},
        {"XCLIENT =x", false, "malformed attribute '=x'"},
        {"XCLIENT HELO=a+4", false, "bad xtext in attribute 'HELO'"},
        {"XCLIENT HELO=a+0Db", false, "bad xtext in attribute 'HELO'"},
        {"XCLIENT", false, "XCLIENT without attributes"},
        {"XFORWARD ADDR=1.2.3.4", false, "not an XCLIENT command"},
    };
    for (const auto& r : rows) {
        std::string err;
        auto c = parse_xclient(r.line, &err);
        EXPECT_EQ(c.has_value(), r.want_ok) << r.line << " " << err;
        if (!r.want_ok) {
            EXPECT_EQ(err, r.want_error) << r.line;
        }
    }
    std::string err;
    std::string long_line = "XCLIENT HELO=" + std::string(600, 'a');
    EXPECT_FALSE(parse_xclient(long_line, &err));
    EXPECT_EQ(err, "command line longer than 512 bytes");
    EXPECT_FALSE(parse_xforward("XFORWARD LOGIN=x", &err));
    EXPECT_EQ(err, "unknown attribute 'LOGIN'");
}

TEST(Commands, EhloKeyword) {
    EXPECT_EQ(parse_ehlo_keyword("250-XCLIENT NAME ADDR PORT PROTO HELO LOGIN"),
              (std::set<std::string>{"NAME", "ADDR", "PORT", "PROTO", "HELO", "LOGIN"}));
    EXPECT_EQ(parse_ehlo_keyword("XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT\r\n"),
              (std::set<std::string>{"NAME", "ADDR", "PROTO", "HELO", "SOURCE", "PORT", "IDENT"}));
    EXPECT_EQ(parse_ehlo_keyword("name addr"), (std::set<std::string>{"NAME", "ADDR"}));
}

SourceInfo sample(const char* ip = "192.0.2.66") {
    SourceInfo si;
    si.client = Endpoint{*IpAddress::parse(ip), 40123};
    si.server = Endpoint{*IpAddress::parse("198.51.100.1"), 25};
    si.helo = "client.example.org";
    si.ptr_name = "mail.example.org";
    si.protocol = "ESMTPS";
    si.login = "alice@example.org";
    si.session_id = "4XyZ1";
    return si;
}

TEST(Xclient, EncodeOneCommandAddrLast) {
    auto lines = encode_xclient(sample());
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0],
              "XCLIENT PROTO=ESMTP HELO=client.example.org LOGIN=alice@example.org DESTADDR=198.51.100.1 "
              "DESTPORT=25 NAME=mail.example.org ADDR=192.0.2.66 PORT=40123\r\n");
}

TEST(Xclient, OnlyAdvertisedAndUnavailable) {
    SourceInfo si = sample("2001:db8::66");
    si.helo.clear();
    si.ptr_name.clear();
    auto lines = encode_xclient(si, parse_ehlo_keyword("XCLIENT NAME ADDR PORT HELO"));
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0], "XCLIENT HELO=[UNAVAILABLE] NAME=[UNAVAILABLE] ADDR=IPV6:2001:db8::66 PORT=40123\r\n");
}

TEST(Xclient, RoundTripThroughParser) {
    for (const char* ip : {"192.0.2.66", "2001:db8::66"}) {
        SourceInfo si = sample(ip);
        si.helo = "weird helo with spaces+equals=";
        auto lines = encode_xclient(si);
        SourceInfo got;
        for (const auto& l : lines) {
            std::string err;
            auto c = parse_xclient(l, &err);
            ASSERT_TRUE(c) << err << " " << l;
            ASSERT_TRUE(apply_command(*c, got, &err)) << err;
        }
        EXPECT_EQ(got.client, si.client);
        EXPECT_EQ(got.server, si.server);
        EXPECT_EQ(got.helo, si.helo);
        EXPECT_EQ(got.ptr_name, si.ptr_name);
        EXPECT_EQ(got.login, si.login);
        EXPECT_EQ(got.protocol, "ESMTP");
    }
}

TEST(Xclient, SplitsAt512BytesWithNameAndAddrLast) {
    for (std::size_t helo_len : {300u, 470u, 480u}) {
        SourceInfo si = sample();
        si.helo = std::string(helo_len, 'h');
        si.login = std::string(200, 'l');
        auto lines = encode_xclient(si);
        ASSERT_GE(lines.size(), 2u) << helo_len;
        for (const auto& l : lines) {
            EXPECT_LE(l.size(), 512u);
            EXPECT_EQ(l.substr(0, 8), "XCLIENT ");
            EXPECT_EQ(l.substr(l.size() - 2), "\r\n");
        }
        EXPECT_NE(lines.back().find("ADDR=192.0.2.66"), std::string::npos);
        EXPECT_NE(lines.back().find("NAME=mail.example.org"), std::string::npos);
        for (std::size_t i = 0; i + 1 < lines.size(); ++i) {
            EXPECT_EQ(lines[i].find(" ADDR="), std::string::npos);
            EXPECT_EQ(lines[i].find(" PORT="), std::string::npos);
        }
        SourceInfo got;
        for (const auto& l : lines) {
            std::string err;
            auto c = parse_xclient(l, &err);
            ASSERT_TRUE(c) << err;
            ASSERT_TRUE(apply_command(*c, got, &err));
        }
        EXPECT_EQ(got.helo, si.helo);
        EXPECT_EQ(got.login, si.login);
        EXPECT_EQ(got.client, si.client);
    }
    // Three commands.
    SourceInfo si = sample();
    si.helo = std::string(450, 'h');
    si.login = std::string(450, 'l');
    auto lines = encode_xclient(si);
    EXPECT_EQ(lines.size(), 3u);
    // A single value that cannot fit in any command: nothing is sent.
    si.helo = std::string(600, 'h');
    EXPECT_TRUE(encode_xclient(si).empty());
}

TEST(Xforward, EncodeAndApply) {
    auto lines = encode_xforward(sample());
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0],
              "XFORWARD PROTO=ESMTP HELO=client.example.org IDENT=4XyZ1 SOURCE=REMOTE "
              "NAME=mail.example.org ADDR=192.0.2.66 PORT=40123\r\n");
    std::string err;
    auto c = parse_xforward(lines[0], &err);
    ASSERT_TRUE(c) << err;
    SourceInfo got;
    ASSERT_TRUE(apply_command(*c, got, &err));
    EXPECT_EQ(got.session_id, "4XyZ1");
    EXPECT_EQ(got.client->to_string(), "192.0.2.66:40123");
}

TEST(Xclient, BadValuesChangeNothing) {
    SourceInfo si = sample();
    SourceInfo before = si;
    std::string err;
    for (const char* line : {"XCLIENT ADDR=999.1.1.1 HELO=x", "XCLIENT PORT=65536", "XCLIENT PORT=025",
                             "XCLIENT DESTADDR=host.example"}) {
        auto c = parse_xclient(line, &err);
        ASSERT_TRUE(c) << line;
        EXPECT_FALSE(apply_command(*c, si, &err)) << line;
        EXPECT_EQ(si, before) << line;
    }
    auto c = parse_xclient("XCLIENT ADDR=[UNAVAILABLE]", &err);
    ASSERT_TRUE(apply_command(*c, si, &err));
    EXPECT_FALSE(si.client);
}
