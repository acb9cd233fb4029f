// xproxyd_mx_lookup_test: the pure parts of the outbound MX lookup (name checks, address
// literals, MX rdata, null MX, the delivery order with a fixed random source, the cache
// with a fake clock) and what MxLookup answers without a DNS server: literals and bad
// names without a query, a timeout against a server that never answers, and the
// configuration errors of create(). The answers of a real DNS server are tested end to
// end with NSD (tests/e2e/test_xproxyd_mx_lookup.py).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include <xproxy/base/unique_fd.hpp>

#include "expected_value.hpp"
#include "mx_cache.hpp"
#include "mx_lookup.hpp"
#include "mx_records.hpp"

using namespace xproxy;
using namespace xproxy::xproxyd;
using namespace std::chrono_literals;

namespace {

IpAddress ip(const char* s) { return *IpAddress::parse(s); }

// A random source that returns the given numbers in turn (each taken modulo bound).
MxRandom sequence(const std::vector<std::uint32_t>& seq) {
    auto pos = std::make_shared<std::size_t>(0);
    return [seq, pos](std::uint32_t bound) { return seq[(*pos)++ % seq.size()] % bound; };
}

std::string names(const std::vector<MxRecord>& v) {
    std::string out;
    for (const auto& r : v) out += (out.empty() ? "" : ",") + r.target;
    return out;
}

}  // namespace

TEST(MxNames, CheckDomainName) {
    struct Row {
        std::string name;
        bool want_ok;
        const char* want_error;
    };
    const std::vector<Row> rows = {
        {"example.com", true, ""},
        {"a", true, ""},
        {"xn--bcher-kva.example", true, ""},
        {"MX_1.Example-Host.test", true, ""},
        {"1.2.3.example", true, ""},
        {std::string(63, 'a') + ".example", true, ""},
        {std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." + std::string(61, 'd'),
         true, ""},  // 253 bytes
        {"", false, "empty domain name"},
        {".", false, "empty label"},
        {"example.com.", false, "empty label"},
        {".example.com", false, "empty label"},
        {"a..b", false, "empty label"},
        {std::string(64, 'a') + ".example", false, "longer than 63"},
        {std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." + std::string(62, 'd'),
         false, "longer than 253"},
        {"-a.example", false, "starting or ending with '-'"},
        {"a-.example", false, "starting or ending with '-'"},
        {"exa mple.com", false, "not allowed in a host name"},
        {std::string("ex\0ample", 8), false, "\"ex\\x00ample\""},
        {"ex\r\nample", false, "\"ex\\x0d\\x0aample\""},
        {"b\xc3\xbc"
         "cher.example",
         false, "\"b\\xc3\\xbccher.example\""},
        {"192.0.2.1", false, "an IP address is not a domain name"},
        {"[192.0.2.1]", false, "not allowed in a host name"},
    };
    for (const auto& r : rows) {
        auto got = check_domain_name(r.name);
        EXPECT_EQ(got.has_value(), r.want_ok) << r.name;
        if (!r.want_ok) {
            EXPECT_NE(got.error().find(r.want_error), std::string::npos) << got.error();
            for (char c : got.error()) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << "unescaped byte in " << got.error();
        }
    }
}

TEST(MxNames, AddressLiterals) {
    struct Row {
        const char* text;
        const char* want;  // nullptr: refused
    };
    const Row rows[] = {
        {"[192.0.2.1]", "192.0.2.1"},
        {"[IPv6:2001:db8::1]", "2001:db8::1"},
        {"[ipv6:::1]", "::1"},
        {"[IPV6:::ffff:192.0.2.7]", "192.0.2.7"},  // v4-mapped, normalised as everywhere
        {"[2001:db8::1]", nullptr},                // RFC 5321: an IPv6 literal has its tag
        {"[IPv6:192.0.2.1]", nullptr},
        {"[192.0.2.256]", nullptr},
        {"[192.0.2.01]", nullptr},
        {"[ 192.0.2.1]", nullptr},
        {"[]", nullptr},
        {"[x-tag:whatever]", nullptr},
        {"192.0.2.1", nullptr},
        {"[192.0.2.1", nullptr},
    };
    for (const auto& r : rows) {
        std::string err;
        auto got = test::value_or_error(parse_address_literal(r.text), err);
        if (r.want) {
            ASSERT_TRUE(got) << r.text << ": " << err;
            EXPECT_EQ(*got, ip(r.want)) << r.text;
        } else {
            EXPECT_FALSE(got) << r.text;
            EXPECT_FALSE(err.empty());
        }
    }
}

TEST(MxNames, AnswerForLiteralBypassesDnsAndHonoursFamilies) {
    MxAnswer a = answer_for_literal("[IPv6:2001:db8::25]", MxFamilies::ipv6_first);
    ASSERT_EQ(a.status, MxStatus::ok);
    EXPECT_TRUE(a.literal);
    ASSERT_EQ(a.hosts.size(), 1u);
    EXPECT_EQ(a.hosts[0].name, "[IPv6:2001:db8::25]");
    EXPECT_EQ(a.hosts[0].preference, 0);
    ASSERT_EQ(a.hosts[0].addresses.size(), 1u);
    EXPECT_EQ(a.hosts[0].addresses[0].address, ip("2001:db8::25"));
    EXPECT_FALSE(a.hosts[0].addresses[0].secure);
    EXPECT_EQ(answer_for_literal("[IPv6:2001:db8::25]", MxFamilies::ipv4).status, MxStatus::no_address);
    EXPECT_EQ(answer_for_literal("[192.0.2.1]", MxFamilies::ipv6).status, MxStatus::no_address);
    EXPECT_EQ(answer_for_literal("[192.0.2.1]", MxFamilies::ipv4).status, MxStatus::ok);
    MxAnswer bad = answer_for_literal("[192.0.2.1\n]", MxFamilies::ipv4);
    EXPECT_EQ(bad.status, MxStatus::invalid_domain);
    EXPECT_EQ(bad.why.find('\n'), std::string::npos);
    EXPECT_TRUE(is_permanent(bad.status));
}

TEST(MxRdata, Decode) {
    struct Row {
        std::string rdata;
        bool want_ok;
        std::uint16_t want_pref;
        const char* want;  // target, or a part of the error
    };
    using namespace std::string_literals;
    const std::vector<Row> rows = {
        // 00 0a = preference 10; 03 "mx1" 07 "example" 04 "test" 00 = mx1.example.test.
        {"\x00\x0a\x03mx1\x07"
         "example\x04test\x00"s,
         true, 10, "mx1.example.test"},
        // preference 65535, upper case folded
        {"\xff\xff\x02MX\x04TEST\x00"s, true, 65535, "mx.test"},
        // 00 00 00: preference 0, the root: a null MX candidate
        {"\x00\x00\x00"s, true, 0, ""},
        {"\x00\x0a"s, false, 0, "MX record of 2 bytes"},
        // c0 0c: a compression pointer (libunbound hands names over uncompressed)
        {"\x00\x0a\xc0\x0c"s, false, 0, "compressed"},
        // 05 "mx1" then the end: the label is longer than the rdata
        {"\x00\x0a\x05mx1"s, false, 0, "truncated"},
        // no root label
        {"\x00\x0a\x03mx1"s, false, 0, "truncated"},
        {"\x00\x0a\x03mx1\x00\x00"s, false, 0, "bytes after the name"},
        // 03 "a.b": a dot inside one label would read as two labels in text
        {"\x00\x0a\x03\x61.b\x00"s, false, 0, "\"a.b\""},
        {"\x00\x0a\x03m\nx\x00"s, false, 0, "\"m\\x0ax\""},
        // 03 "192" 01 "0" 01 "2" 01 "1" 00: an IP address written as a name
        {"\x00\x0a\x03\x31\x39\x32\x01\x30\x01\x32\x01\x31\x00"s, false, 0, "an IP address is not a domain name"},
        {"\x00\x0a\x02-a\x00"s, false, 0, "'-'"},
    };
    for (const auto& r : rows) {
        std::string err;
        auto got = test::value_or_error(decode_mx_rdata(r.rdata), err);
        EXPECT_EQ(got.has_value(), r.want_ok) << r.want << " " << err;
        if (got) {
            EXPECT_EQ(got->preference, r.want_pref);
            EXPECT_EQ(got->target, r.want);
        } else {
            EXPECT_NE(err.find(r.want), std::string::npos) << err;
        }
    }
    // Every strict prefix of a valid record is refused.
    const std::string valid = std::string(
        "\x00\x0a\x03mx1\x07"
        "example\x04test\x00",
        20);
    for (std::size_t n = 0; n < valid.size(); ++n) EXPECT_FALSE(decode_mx_rdata(valid.substr(0, n))) << n;
}

TEST(MxRdata, NullMx) {
    EXPECT_TRUE(is_null_mx({{0, ""}}));
    EXPECT_FALSE(is_null_mx({}));
    EXPECT_FALSE(is_null_mx({{10, ""}}));                  // RFC 7505: preference 0
    EXPECT_FALSE(is_null_mx({{0, ""}, {10, "mx.test"}}));  // not alone
    EXPECT_FALSE(is_null_mx({{0, "mx.test"}}));
}

TEST(MxOrder, SortThenShuffleEqualPreferences) {
    std::vector<MxRecord> v = {{20, "b20"}, {10, "x"}, {10, "y"}, {30, "c30"}, {10, "z"}};
    // A source answering bound-1 swaps nothing: the stable order.
    auto top = [](std::uint32_t bound) { return bound - 1; };
    auto w = v;
    sort_and_shuffle(w, top);
    EXPECT_EQ(names(w), "x,y,z,b20,c30");
    // Always 0: i=3 swaps 2<->0 (z,y,x), i=2 swaps 1<->0 (y,z,x).
    w = v;
    sort_and_shuffle(w, sequence({0}));
    EXPECT_EQ(names(w), "y,z,x,b20,c30");
    // Every (j3, j2) pair gives another order: all 6 permutations are reachable.
    std::set<std::string> seen;
    for (std::uint32_t j3 = 0; j3 < 3; ++j3)
        for (std::uint32_t j2 = 0; j2 < 2; ++j2) {
            w = v;
            sort_and_shuffle(w, sequence({j3, j2}));
            EXPECT_EQ(names(std::vector<MxRecord>(w.begin() + 3, w.end())), "b20,c30");
            seen.insert(names(std::vector<MxRecord>(w.begin(), w.begin() + 3)));
        }
    EXPECT_EQ(seen.size(), 6u);
    // A source out of range cannot lose or duplicate a record.
    w = v;
    sort_and_shuffle(w, [](std::uint32_t) { return 1000u; });
    EXPECT_EQ(w.size(), 5u);
    std::set<std::string> all;
    for (const auto& r : w) all.insert(r.target);
    EXPECT_EQ(all.size(), 5u);
}

TEST(MxOrder, SelectDropsRootAndDuplicatesAndCaps) {
    std::string skipped;
    auto top = [](std::uint32_t bound) { return bound - 1; };
    auto got = select_mx_records({{30, "c"}, {10, "a"}, {0, ""}, {20, "b"}, {5, "b"}, {40, "d"}}, 3, top, skipped);
    EXPECT_EQ(names(got), "b,a,c");  // b kept at 5, "." dropped, d beyond the cap
    EXPECT_EQ(got[0].preference, 5);
    EXPECT_NE(skipped.find("MX 0 \".\" is no host"), std::string::npos) << skipped;
    skipped.clear();
    EXPECT_TRUE(select_mx_records({{10, ""}}, 10, top, skipped).empty());
}

TEST(MxOrder, ToResultFlattensDedupesAndCaps) {
    MxAnswer a;
    a.status = MxStatus::ok;
    a.mx_secure = true;
    a.ttl = 60;
    a.hosts = {
        {"mx1.test", 10, {{ip("192.0.2.1"), true}, {ip("2001:db8::1"), false}}},
        {"mx2.test", 20, {{ip("192.0.2.1"), true}, {ip("192.0.2.2"), true}}},  // .1 again: dropped
        {"mx3.test", 30, {{ip("192.0.2.3"), false}}},
    };
    MxResult r = to_result(a, 20);
    ASSERT_EQ(r.destinations.size(), 4u);
    EXPECT_EQ(r.destinations[0].host, "mx1.test");
    EXPECT_EQ(r.destinations[1].address, ip("2001:db8::1"));
    EXPECT_FALSE(r.destinations[1].address_secure);
    EXPECT_EQ(r.destinations[2].host, "mx2.test");
    EXPECT_EQ(r.destinations[2].address, ip("192.0.2.2"));
    EXPECT_EQ(r.destinations[2].preference, 20);
    EXPECT_TRUE(r.destinations[2].mx_secure);
    EXPECT_EQ(r.destinations[3].host, "mx3.test");
    EXPECT_EQ(r.ttl, 60u);
    EXPECT_EQ(to_result(a, 2).destinations.size(), 2u);
}

TEST(MxCacheTest, TtlExpiryWithAFakeClock) {
    auto now = std::make_shared<MxCache::TimePoint>();
    MxCache c(10, [now] { return *now; });
    MxAnswer a;
    a.status = MxStatus::ok;
    a.hosts = {{"mx.test", 10, {{ip("192.0.2.1"), false}}}};
    EXPECT_FALSE(c.get("example.test"));
    c.put("example.test", a, 300);
    *now += 100s;
    auto hit = c.get("example.test");
    ASSERT_TRUE(hit);
    EXPECT_EQ(hit->ttl, 200u);  // the seconds left
    EXPECT_EQ(hit->hosts[0].name, "mx.test");
    *now += 199s + 500ms;
    ASSERT_TRUE(c.get("example.test"));
    EXPECT_EQ(c.get("example.test")->ttl, 1u);  // rounded up, never 0 while valid
    *now += 500ms;                              // exactly 300 s: gone
    EXPECT_FALSE(c.get("example.test"));
    EXPECT_EQ(c.size(), 0u);
    EXPECT_EQ(c.hits(), 3u);
    EXPECT_EQ(c.misses(), 2u);
    c.put("zero.test", a, 0);  // TTL 0: never stored
    EXPECT_FALSE(c.get("zero.test"));
    c.put("example.test", a, 10);
    a.why = "replaced";
    c.put("example.test", a, 20);
    *now += 15s;
    ASSERT_TRUE(c.get("example.test"));
    EXPECT_EQ(c.get("example.test")->why, "replaced");
    EXPECT_EQ(c.size(), 1u);
}

TEST(MxCacheTest, LeastRecentlyUsedGoesFirst) {
    MxCache c(2);
    MxAnswer a;
    c.put("a.test", a, 300);
    c.put("b.test", a, 300);
    EXPECT_TRUE(c.get("a.test"));  // b is now the least recently used
    c.put("c.test", a, 300);
    EXPECT_EQ(c.size(), 2u);
    EXPECT_TRUE(c.get("a.test"));
    EXPECT_FALSE(c.get("b.test"));
    EXPECT_TRUE(c.get("c.test"));
    MxCache none(0);
    none.put("a.test", a, 300);
    EXPECT_EQ(none.size(), 0u);
}

namespace {

namespace asio = boost::asio;

// Runs one lookup to its end on a fresh io_context.
MxResult run_lookup(asio::io_context& io, MxLookup& mx, std::string domain) {
    MxResult out;
    bool done = false;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            out = co_await mx.lookup(domain);
            done = true;
        },
        asio::detached);
    io.restart();
    io.run();
    EXPECT_TRUE(done);
    return out;
}

// A UDP socket on 127.0.0.1 that receives queries and never answers.
struct SilentServer {
    UniqueFd fd{::socket(AF_INET, SOCK_DGRAM, 0)};
    std::uint16_t port = 0;
    SilentServer() {
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof sa;
        if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
            ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &len) == 0)
            port = ntohs(sa.sin_port);
    }
};

MxLookupConfig silent_config(const SilentServer& s) {
    MxLookupConfig cfg;
    cfg.forwarders = {"127.0.0.1@" + std::to_string(s.port)};
    cfg.query_timeout = 300ms;
    return cfg;
}

}  // namespace

TEST(MxLookupTest, LiteralsAndBadNamesNeedNoQuery) {
    SilentServer dns;
    ASSERT_NE(dns.port, 0);
    asio::io_context io;
    auto mx = MxLookup::create(io.get_executor(), silent_config(dns));
    ASSERT_TRUE(mx) << mx.error();
    MxResult r = run_lookup(io, **mx, "[192.0.2.1]");
    ASSERT_EQ(r.status, MxStatus::ok);
    EXPECT_TRUE(r.literal);
    ASSERT_EQ(r.destinations.size(), 1u);
    EXPECT_EQ(r.destinations[0].address, ip("192.0.2.1"));
    r = run_lookup(io, **mx, "a..example");
    EXPECT_EQ(r.status, MxStatus::invalid_domain);
    EXPECT_NE(r.why.find("empty label"), std::string::npos);
    r = run_lookup(io, **mx, "192.0.2.1");
    EXPECT_EQ(r.status, MxStatus::invalid_domain);
    EXPECT_EQ((*mx)->cache_hits() + (*mx)->cache_misses(), 0u);  // neither reached the cache
}

TEST(MxLookupTest, ServerThatNeverAnswersIsTemporaryAndNotCached) {
    SilentServer dns;
    ASSERT_NE(dns.port, 0);
    asio::io_context io;
    auto mx = MxLookup::create(io.get_executor(), silent_config(dns));
    ASSERT_TRUE(mx) << mx.error();
    MxResult r = run_lookup(io, **mx, "example.org");  // run() returns: nothing left armed
    EXPECT_EQ(r.status, MxStatus::temporary);
    EXPECT_FALSE(is_permanent(r.status));
    EXPECT_NE(r.why.find("example.org MX: no answer within 300 ms"), std::string::npos) << r.why;
    r = run_lookup(io, **mx, "Example.ORG");
    EXPECT_EQ(r.status, MxStatus::temporary);
    EXPECT_FALSE(r.from_cache);
    EXPECT_EQ((*mx)->cache_hits(), 0u);
    EXPECT_EQ((*mx)->cache_misses(), 2u);
}

TEST(MxLookupTest, LookupsInFlightWhenTheOwnerGoes) {
    SilentServer dns;
    asio::io_context io;
    auto mx = MxLookup::create(io.get_executor(), silent_config(dns));
    ASSERT_TRUE(mx) << mx.error();
    int done = 0;
    for (const char* d : {"a.example", "b.example", "c.example"})
        asio::co_spawn(
            io,
            [&, lookup = mx->get(), name = std::string(d)]() -> asio::awaitable<void> {
                MxResult r = co_await lookup->lookup(name);
                EXPECT_EQ(r.status, MxStatus::temporary);
                ++done;
            },
            asio::detached);
    io.poll();  // every lookup has started its query and waits
    // The resolver stays alive until they end (ASan would see a use after free).
    mx->reset();
    io.run();
    EXPECT_EQ(done, 3);
}

TEST(MxLookupTest, CreateRefusesBadConfiguration) {
    asio::io_context io;
    MxLookupConfig cfg;
    cfg.forwarders = {"not-an-address"};
    auto bad = MxLookup::create(io.get_executor(), cfg);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().find("bad forwarder \"not-an-address\""), std::string::npos) << bad.error();
    cfg.forwarders = {"127.0.0.1@53"};
    cfg.trust_anchor_file = "/nonexistent/root.key";
    bad = MxLookup::create(io.get_executor(), cfg);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().find("trust anchor"), std::string::npos) << bad.error();
    cfg.trust_anchor_file.clear();
    cfg.unbound_options = {{"no-such-option:", "yes"}};
    EXPECT_FALSE(MxLookup::create(io.get_executor(), cfg));
    cfg.unbound_options.clear();
    cfg.max_addresses = 0;
    EXPECT_FALSE(MxLookup::create(io.get_executor(), cfg));
    cfg.max_addresses = 20;
    EXPECT_TRUE(MxLookup::create(io.get_executor(), cfg));
}
