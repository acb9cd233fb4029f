// proxy_v1_test: the PROXY protocol v1 text line: valid and invalid rows (with the exact
// prefix length at which an invalid line is first rejected), a commented byte fixture,
// every strict prefix of a valid line, trailing data, round trips through encode_v1, the
// 107-byte limit and the IPv6 literal parser checked against inet_pton.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>

#include <xproxy/wire/proxy_protocol.hpp>

using namespace xproxy;
using namespace xproxy::pp;

namespace {

DecodeResult run(std::string_view s, Header& h) {
    return decode_v1(reinterpret_cast<const std::uint8_t*>(s.data()), s.size(), h);
}

DecodeResult run_any(std::string_view s, Header& h) {
    return decode(reinterpret_cast<const std::uint8_t*>(s.data()), s.size(), h);
}

// Smallest prefix length that decodes as invalid (0 if none does).
std::size_t first_invalid(std::string_view s) {
    Header h;
    for (std::size_t k = 1; k <= s.size(); ++k)
        if (run(s.substr(0, k), h).invalid()) return k;
    return 0;
}

const std::string kMaxV6 =
    "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
const std::string kUnknown107 = "PROXY UNKNOWN" + std::string(92, 'x') + "\r\n";

struct ValidRow {
    const char* name;
    std::string in;
    Family want_family;
    bool want_addresses;
    const char* want_src;
    const char* want_dst;
    std::uint16_t want_sport;
    std::uint16_t want_dport;
};

const ValidRow kValid[] = {
    {"spec example", "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", Family::inet, true, "192.168.0.1",
     "192.168.0.11", 56324, 443},
    {"longest TCP4 (56 bytes)", "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", Family::inet, true,
     "255.255.255.255", "255.255.255.255", 65535, 65535},
    {"zeros", "PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", Family::inet, true, "0.0.0.0", "0.0.0.0", 0, 0},
    {"TCP6", "PROXY TCP6 2001:db8::1 ::1 51234 25\r\n", Family::inet6, true, "2001:db8::1", "::1", 51234, 25},
    {"TCP6 upper case, full form", "PROXY TCP6 2001:DB8:0:0:0:0:0:1 0:0:0:0:0:0:0:2 1 2\r\n", Family::inet6, true,
     "2001:db8::1", "::2", 1, 2},
    {"TCP6 4-digit groups with zeros", "PROXY TCP6 0001:0db8::00ff ::1 1 2\r\n", Family::inet6, true, "1:db8::ff",
     "::1", 1, 2},
    {"longest TCP6 (104 bytes)", kMaxV6, Family::inet6, true, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, 65535},
    {"TCP6 v4-mapped source is normalised", "PROXY TCP6 ::ffff:192.0.2.7 2001:db8::25 40000 25\r\n", Family::inet6,
     true, "192.0.2.7", "2001:db8::25", 40000, 25},
    {"TCP6 IPv4 tail after ::", "PROXY TCP6 ::1.2.3.4 1::2:3:4:5:6.7.8.9 1 2\r\n", Family::inet6, true, "::1.2.3.4",
     "1:0:2:3:4:5:607:809", 1, 2},
    {"TCP6 :: standing for one group", "PROXY TCP6 1:2:3:4:5:6:7:: ::8 1 2\r\n", Family::inet6, true, "1:2:3:4:5:6:7:0",
     "::8", 1, 2},
    {"TCP6 all zeros", "PROXY TCP6 :: :: 0 0\r\n", Family::inet6, true, "::", "::", 0, 0},
    // Groups of 1 to 4 digits, each followed by ':', take a shorter path while at least 6
    // bytes remain and the group cannot be one too many; these rows sit at its limits.
    {"TCP6 seven groups after ::", "PROXY TCP6 ::1:2:3:4:5:6:7 ::1 1 2\r\n", Family::inet6, true, "0:1:2:3:4:5:6:7",
     "::1", 1, 2},
    {"TCP6 five groups, ::, two groups", "PROXY TCP6 1:2:3:4:5::6:7 ::1 1 2\r\n", Family::inet6, true,
     "1:2:3:4:5:0:6:7", "::1", 1, 2},
    {"TCP6 every hex digit, both cases",
     "PROXY TCP6 abcd:ef01:2345:6789:ABCD:EF01:2345:6789 1:0db8:00ff:1234:5678:9abc:def0:1 1 2\r\n", Family::inet6,
     true, "abcd:ef01:2345:6789:abcd:ef01:2345:6789", "1:db8:ff:1234:5678:9abc:def0:1", 1, 2},
    {"TCP6 six groups and an IPv4 tail", "PROXY TCP6 1:2:3:4:5:6:1.2.3.4 ::1 1 2\r\n", Family::inet6, true,
     "1:2:3:4:5:6:102:304", "::1", 1, 2},
    {"UNKNOWN short form", "PROXY UNKNOWN\r\n", Family::unspec, false, "", "", 0, 0},
    {"UNKNOWN with addresses ignored", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", Family::unspec, false, "", "", 0, 0},
    {"UNKNOWN with anything up to CRLF", "PROXY UNKNOWNX\x01\xff garbage\r\n", Family::unspec, false, "", "", 0, 0},
    {"UNKNOWN at exactly 107 bytes", kUnknown107, Family::unspec, false, "", "", 0, 0},
};

struct InvalidRow {
    const char* name;
    std::string in;
    const char* want_reason;
    std::size_t want_at;  // shortest prefix that is already invalid
};

const InvalidRow kInvalid[] = {
    {"first byte not P", "GET / HTTP/1.0\r\n", "not a PROXY v1 header", 1},
    {"lower case signature", "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "not a PROXY v1 header", 1},
    {"tab instead of space", "PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n", "not a PROXY v1 header", 6},
    {"two spaces before protocol", "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "unknown v1 protocol", 7},
    {"unknown protocol TCP5", "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "unknown v1 protocol", 10},
    {"UNKNOW truncated keyword", "PROXY UNKNOW\r\n", "unknown v1 protocol", 13},
    {"two spaces after protocol", "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "IPv4 octet expected", 12},
    {"bare LF", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "LF without CR", 31},
    {"CR without LF", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "CR without LF", 32},
    {"space before CRLF", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "CRLF expected after destination port", 31},
    {"IPv4 leading zero", "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "leading zero in IPv4 octet", 13},
    {"IPv4 octet 256", "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "IPv4 octet above 255", 20},
    {"IPv4 three octets", "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "'.' expected in IPv4 address", 17},
    {"IPv4 five octets", "PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", "space expected after IPv4 address", 19},
    {"IPv4 hex octet", "PROXY TCP4 1.2.3.a 5.6.7.8 1 2\r\n", "IPv4 octet expected", 18},
    {"port leading zero", "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "leading zero in port", 29},
    {"port 65536", "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "port above 65535", 32},
    {"negative port", "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "port expected", 28},
    {"destination port missing", "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "single space expected after source port", 29},
    {"TCP4 with IPv6 address", "PROXY TCP4 ::1 ::1 1 2\r\n", "IPv4 octet expected", 12},
    {"TCP6 with IPv4 address", "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", "IPv4 tail at the wrong place in IPv6 address",
     13},
    {"IPv6 group of 5 digits", "PROXY TCP6 12345::1 ::1 1 2\r\n", "IPv6 group longer than 4 digits", 16},
    {"IPv6 :::", "PROXY TCP6 :::1 ::1 1 2\r\n", "':::' in IPv6 address", 14},
    {"IPv6 two ::", "PROXY TCP6 1::2::3 ::1 1 2\r\n", "second '::' in IPv6 address", 17},
    {"IPv6 nine groups", "PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", "too many IPv6 groups", 27},
    {"IPv6 eight groups and ::", "PROXY TCP6 1:2:3:4:5:6:7::8 ::1 1 2\r\n", "too many IPv6 groups", 27},
    {"IPv6 eight groups after ::", "PROXY TCP6 ::1:2:3:4:5:6:7:8 ::1 1 2\r\n", "too many IPv6 groups", 27},
    {"IPv6 six groups, ::, two groups", "PROXY TCP6 1:2:3:4:5:6::7:8 ::1 1 2\r\n", "too many IPv6 groups", 26},
    {"IPv6 eight groups then ::", "PROXY TCP6 1:2:3:4:5:6:7:8:: ::1 1 2\r\n", "too many IPv6 groups", 27},
    {"IPv6 group of 5 digits in the middle", "PROXY TCP6 1:22:333:4444:55555:6:7:8 ::1 1 2\r\n",
     "IPv6 group longer than 4 digits", 30},
    {"IPv6 bad character after eight groups", "PROXY TCP6 1:2:3:4:5:6:7:8/ ::1 1 2\r\n",
     "bad character in IPv6 address", 27},
    {"IPv6 non-hex group", "PROXY TCP6 1:2:3:g:5:6:7:8 ::1 1 2\r\n", "bad character in IPv6 address", 18},
    {"IPv6 seven groups", "PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n", "IPv6 address too short", 25},
    {"IPv6 single leading colon", "PROXY TCP6 :1::2 ::1 1 2\r\n", "IPv6 address starts with a single ':'", 13},
    {"IPv6 single trailing colon", "PROXY TCP6 1:: 1:2:3:4:5:6:7: 1 2\r\n", "IPv6 address ends with a single ':'", 30},
    {"IPv6 zone id", "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "bad character in IPv6 address", 19},
    {"IPv6 IPv4 tail leading zero", "PROXY TCP6 ::ffff:01.2.3.4 ::1 1 2\r\n", "leading zero in IPv4 octet", 21},
    {"IPv6 hex IPv4 tail", "PROXY TCP6 ::ffff:a.2.3.4 ::1 1 2\r\n", "IPv4 octet expected", 20},
    {"IPv6 IPv4 tail too early", "PROXY TCP6 1:2:3:4:5:1.2.3.4 ::1 1 2\r\n",
     "IPv4 tail at the wrong place in IPv6 address", 23},
    {"UNKNOWN bare LF", "PROXY UNKNOWN\n", "LF without CR", 14},
    {"UNKNOWN CR without LF", "PROXY UNKNOWN x\rx\r\n", "CR without LF", 17},
    {"107 bytes without CRLF", "PROXY UNKNOWN" + std::string(94, 'x'), "no CRLF within 107 bytes", 106},
    {"UNKNOWN line of 108 bytes", "PROXY UNKNOWN" + std::string(93, 'x') + "\r\n", "no CRLF within 107 bytes", 106},
    // Syntactically fine, but even " 0 0\r\n" after these two addresses would make 108 bytes:
    // rejected at the first byte after which no completion fits (see the computation in
    // doc/wire-formats.md).
    {"TCP6 line that cannot fit in 107 bytes",
     "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 1 2\r\n",
     "no CRLF within 107 bytes", 102},
};

}  // namespace

TEST(ProxyV1, ValidRows) {
    for (const auto& r : kValid) {
        SCOPED_TRACE(r.name);
        Header h;
        DecodeResult res = run(r.in, h);
        ASSERT_TRUE(res.complete()) << res.reason;
        EXPECT_EQ(res.consumed, r.in.size());
        EXPECT_EQ(h.version, 1);
        EXPECT_EQ(h.command, Command::proxy);
        EXPECT_EQ(h.family, r.want_family);
        EXPECT_EQ(h.has_addresses, r.want_addresses);
        EXPECT_TRUE(h.tlv_bytes.empty());
        if (!r.want_addresses) continue;
        EXPECT_EQ(h.transport, Transport::stream);
        EXPECT_EQ(h.source.addr.to_string(), r.want_src);
        EXPECT_EQ(h.destination.addr.to_string(), r.want_dst);
        EXPECT_EQ(h.source.port, r.want_sport);
        EXPECT_EQ(h.destination.port, r.want_dport);
    }
}

TEST(ProxyV1, InvalidRowsAreRejectedAtTheFirstImpossibleByte) {
    for (const auto& r : kInvalid) {
        SCOPED_TRACE(r.name);
        Header h;
        DecodeResult res = run(r.in, h);
        ASSERT_TRUE(res.invalid());
        EXPECT_EQ(res.reason, r.want_reason);
        EXPECT_EQ(first_invalid(r.in), r.want_at);
        // Once invalid, every longer prefix stays invalid.
        for (std::size_t k = r.want_at; k <= r.in.size(); ++k) EXPECT_TRUE(run(r.in.substr(0, k), h).invalid()) << k;
    }
}

TEST(ProxyV1, EveryStrictPrefixOfAValidLineNeedsMore) {
    for (const auto& r : kValid) {
        SCOPED_TRACE(r.name);
        Header h;
        for (std::size_t k = 0; k < r.in.size(); ++k) {
            EXPECT_TRUE(run(r.in.substr(0, k), h).need_more()) << k;
            EXPECT_TRUE(run_any(r.in.substr(0, k), h).need_more()) << k;
        }
    }
}

TEST(ProxyV1, ByteFixture) {
    const std::uint8_t line[] = {
        0x50, 0x52, 0x4F, 0x58, 0x59,                          // "PROXY"
        0x20,                                                  // ' '
        0x54, 0x43, 0x50, 0x34,                                // "TCP4"
        0x20,                                                  // ' '
        0x32, 0x30, 0x33, 0x2E, 0x30, 0x2E, 0x31, 0x31, 0x33,  // "203.0.113"
        0x2E, 0x37,                                            // ".7"  source
        0x20,                                                  // ' '
        0x31, 0x39, 0x38, 0x2E, 0x35, 0x31, 0x2E, 0x31, 0x30,  // "198.51.10"
        0x30, 0x2E, 0x32, 0x35,                                // "0.25" destination
        0x20,                                                  // ' '
        0x35, 0x31, 0x32, 0x33, 0x34,                          // "51234" source port
        0x20,                                                  // ' '
        0x32, 0x35,                                            // "25" destination port
        0x0D, 0x0A,                                            // CRLF
        0x45, 0x48, 0x4C, 0x4F,                                // "EHLO": application data
    };
    Header h;
    DecodeResult res = decode(line, sizeof line, h);
    ASSERT_TRUE(res.complete()) << res.reason;
    EXPECT_EQ(res.consumed, sizeof line - 4);
    EXPECT_EQ(h.source.to_string(), "203.0.113.7:51234");
    EXPECT_EQ(h.destination.to_string(), "198.51.100.25:25");
    EXPECT_EQ(encode_v1(h.source, h.destination), std::string(reinterpret_cast<const char*>(line), sizeof line - 4));
}

TEST(ProxyV1, TrailingApplicationDataIsNotConsumed) {
    for (const auto& r : kValid) {
        SCOPED_TRACE(r.name);
        for (std::string tail : {"E", "EHLO x\r\n", "\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"}) {
            Header h;
            DecodeResult res = run(r.in + tail, h);
            ASSERT_TRUE(res.complete()) << res.reason;
            EXPECT_EQ(res.consumed, r.in.size());
        }
    }
}

TEST(ProxyV1, RoundTrips) {
    struct Row {
        const char* name;
        std::optional<Endpoint> src, dst;
        const char* want_line;
    };
    auto ep = [](const char* ip, std::uint16_t port) { return Endpoint{*IpAddress::parse(ip), port}; };
    const Row rows[] = {
        {"v4", ep("192.0.2.1", 40000), ep("198.51.100.2", 25), "PROXY TCP4 192.0.2.1 198.51.100.2 40000 25\r\n"},
        {"v6", ep("2001:db8::1", 1), ep("2001:db8::2", 587), "PROXY TCP6 2001:db8::1 2001:db8::2 1 587\r\n"},
        {"mixed", ep("192.0.2.1", 65535), ep("2001:db8::2", 0), "PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 65535 0\r\n"},
        {"no source", std::nullopt, ep("2001:db8::2", 25), "PROXY UNKNOWN\r\n"},
        {"no destination", ep("192.0.2.1", 25), std::nullopt, "PROXY UNKNOWN\r\n"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.name);
        std::string line = encode_v1(r.src, r.dst);
        EXPECT_EQ(line, r.want_line);
        Header h;
        DecodeResult res = run(line, h);
        ASSERT_TRUE(res.complete()) << res.reason;
        EXPECT_EQ(res.consumed, line.size());
        ASSERT_EQ(h.has_addresses, r.src && r.dst);
        if (!h.has_addresses) continue;
        EXPECT_EQ(h.source, *r.src);
        EXPECT_EQ(h.destination, *r.dst);
    }
}

// The IPv6 literal parser agrees with inet_pton on complete literals.
TEST(ProxyV1, Ipv6LiteralsAgreeWithInetPton) {
    const char* literals[] = {
        "::",
        "::1",
        "1::",
        "1::2",
        "::ffff:1.2.3.4",
        "::1.2.3.4",
        "1:2:3:4:5:6:1.2.3.4",
        "1:2:3:4:5::1.2.3.4",
        "1:2:3:4:5:6::1.2.3.4",
        "1:2:3:4:5:6:7:8",
        "1:2:3:4:5:6:7::",
        "::2:3:4:5:6:7:8",
        "1:2:3:4:5:6:7:8::",
        "1:2:3:4:5:6:7",
        ":",
        ":::",
        "1:::2",
        ":1",
        "1:",
        "12345::",
        "abcd:EF01::",
        "g::",
        "1.2.3.4",
        "::1.2.3",
        "::1.2.3.4.5",
        "::256.1.1.1",
        "::01.1.1.1",
        "::0.0.0.0",
        "1::2::3",
        "::ffff:0a.1.1.1",
        "fe80::1%1",
        "0000:0000:0000:0000:0000:0000:0000:0000",
        "::ffff:255.255.255.255",
        "1:2:3:4:5:6:7:1.2.3.4",
    };
    for (const char* lit : literals) {
        SCOPED_TRACE(lit);
        std::uint8_t want[16];
        const bool ok = inet_pton(AF_INET6, lit, want) == 1;
        std::string line = std::string("PROXY TCP6 ") + lit + " ::1 1 2\r\n";
        Header h;
        DecodeResult res = run(line, h);
        ASSERT_EQ(res.complete(), ok) << res.reason;
        if (ok) {
            EXPECT_EQ(h.source.addr, IpAddress::v6_bytes(want).normalized());
        }
    }
}

TEST(ProxyV1, DispatchByFirstByte) {
    Header h;
    EXPECT_TRUE(run_any("", h).need_more());
    EXPECT_TRUE(run_any("P", h).need_more());
    EXPECT_TRUE(run_any("\r", h).need_more());
    DecodeResult res = run_any("GET / HTTP/1.1\r\n", h);
    ASSERT_TRUE(res.invalid());
    EXPECT_EQ(res.reason, "not a PROXY protocol header");
    res = run_any("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", h);
    ASSERT_TRUE(res.complete());
    EXPECT_EQ(h.version, 1);
}
