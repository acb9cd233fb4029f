// xproxyd_mx_lookup_test: the pure parts of the outbound MX lookup (name checks, address
// literals, MX rdata, null MX, the delivery order with a fixed random source, the cache
// with a fake clock) and what MxLookup answers without a DNS server: literals and bad
// names without a query, a timeout against a server that never answers, and the
// configuration errors of create(). The answers of a real DNS server are tested end to
// end with NSD (tests/e2e/test_xproxyd_mx_lookup.py). The bounds on what a hostile DNS
// answer can make the lookup keep, refused destinations (with libunbound's own answer
// for `localhost`), the in-flight limit, shared lookups and lookups from several threads.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <thread>
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
    MxAnswer a = answer_for_literal("[IPv6:2001:db8::25]", MxFamilies::ipv6_first, default_refused_destinations());
    ASSERT_EQ(a.status, MxStatus::ok);
    EXPECT_TRUE(a.literal);
    ASSERT_EQ(a.hosts.size(), 1u);
    EXPECT_EQ(a.hosts[0].name, "[IPv6:2001:db8::25]");
    EXPECT_EQ(a.hosts[0].preference, 0);
    ASSERT_EQ(a.hosts[0].addresses.size(), 1u);
    EXPECT_EQ(a.hosts[0].addresses[0].address, ip("2001:db8::25"));
    EXPECT_FALSE(a.hosts[0].addresses[0].secure);
    EXPECT_EQ(answer_for_literal("[IPv6:2001:db8::25]", MxFamilies::ipv4, default_refused_destinations()).status,
              MxStatus::no_address);
    EXPECT_EQ(answer_for_literal("[192.0.2.1]", MxFamilies::ipv6, default_refused_destinations()).status,
              MxStatus::no_address);
    EXPECT_EQ(answer_for_literal("[192.0.2.1]", MxFamilies::ipv4, default_refused_destinations()).status, MxStatus::ok);
    MxAnswer bad = answer_for_literal("[192.0.2.1\n]", MxFamilies::ipv4, default_refused_destinations());
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

TEST(MxLookupTest, CreateRefusesNegativeCacheTtlAndZeroLimits) {
    asio::io_context io;
    MxLookupConfig cfg;
    cfg.forwarders = {"127.0.0.1@53"};
    cfg.max_cache_ttl = std::chrono::seconds(-1);
    auto bad = MxLookup::create(io.get_executor(), cfg);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().find("cache TTL must not be negative"), std::string::npos) << bad.error();
    cfg.max_cache_ttl = 0s;
    EXPECT_TRUE(MxLookup::create(io.get_executor(), cfg));
    cfg.max_addresses_per_host = 0;
    EXPECT_FALSE(MxLookup::create(io.get_executor(), cfg));
    cfg.max_addresses_per_host = 4;
    cfg.max_lookups_in_flight = 0;
    EXPECT_FALSE(MxLookup::create(io.get_executor(), cfg));
}

// The review's proof: thousands of "." targets cannot grow the text past its cap.
TEST(MxReview, SkippedRootTargetsAreBounded) {
    std::vector<MxRecord> v;
    for (std::uint16_t p = 1; p <= 4000; ++p) v.push_back({p, ""});
    std::string skipped;
    auto got = select_mx_records(
        std::move(v), 10, [](std::uint32_t) { return 0u; }, skipped);
    EXPECT_TRUE(got.empty());
    EXPECT_LE(skipped.size(), 1100u);
}

TEST(MxReview, ResultTextIsBounded) {
    MxAnswer a;
    a.status = MxStatus::no_address;
    a.why = std::string(5000, 'x');
    EXPECT_LE(to_result(a, 20).why.size(), kMaxMxNotes + 3);
    std::string notes;
    for (int i = 0; i < 1000; ++i) add_mx_note(notes, "a note of some length");
    EXPECT_LE(notes.size(), kMaxMxNotes + 3);
    EXPECT_EQ(notes.substr(notes.size() - 3), "...");
}

namespace {

std::string a_rdata(const char* text) {
    IpAddress a = ip(text);
    return std::string(reinterpret_cast<const char*>(a.data()), a.size());
}

std::string aaaa_rdata(const char* text) {  // 16 bytes even for ::ffff:a.b.c.d
    IpAddress a = ip(text);
    if (a.is_v4()) a = a.to_v4_mapped();
    return std::string(reinterpret_cast<const char*>(a.data()), 16);
}

}  // namespace

TEST(MxAddresses, ThousandsOfRecordsAreCappedPerHostAndInAll) {
    std::vector<std::string> many;
    for (std::uint32_t i = 0; i < 4000; ++i) {
        std::uint8_t b[4] = {198, 18, static_cast<std::uint8_t>(i >> 8), static_cast<std::uint8_t>(i)};
        many.emplace_back(reinterpret_cast<const char*>(b), 4);
    }
    MxAddressRules rules;  // per_host 4
    CidrSet refused = default_refused_destinations();
    rules.refused = &refused;
    std::size_t left = 20;
    std::string notes;
    std::vector<MxHost> hosts;
    for (int h = 0; h < 10; ++h) {
        MxHost host{"mx" + std::to_string(h) + ".test", 10, {}};
        add_host_addresses(host, false, many, false, rules, left, notes);
        hosts.push_back(std::move(host));
    }
    EXPECT_EQ(hosts[0].addresses.size(), 4u);
    EXPECT_EQ(hosts[4].addresses.size(), 4u);
    EXPECT_TRUE(hosts[5].addresses.empty());  // 20 kept in all
    EXPECT_EQ(left, 0u);
    rules.per_host = 1000;
    left = 5;
    MxHost one{"mx.test", 10, {}};
    add_host_addresses(one, false, many, true, rules, left, notes);
    EXPECT_EQ(one.addresses.size(), 5u);
    EXPECT_TRUE(one.addresses[0].secure);
    EXPECT_EQ(one.addresses[0].address, ip("198.18.0.0"));
}

TEST(MxAddresses, MappedAaaaIsIpv4AndCompatibleIsDropped) {
    MxAddressRules rules;
    rules.per_host = 10;
    std::size_t left = 20;
    std::string notes;
    MxHost host{"mx.test", 10, {}};
    add_host_addresses(host, false, {a_rdata("192.0.2.1")}, false, rules, left, notes);
    add_host_addresses(host, true,
                       {aaaa_rdata("::ffff:192.0.2.1"), aaaa_rdata("::ffff:192.0.2.2"), aaaa_rdata("::192.0.2.3"),
                        aaaa_rdata("2001:db8::1"), aaaa_rdata("2001:db8::1")},
                       false, rules, left, notes);
    ASSERT_EQ(host.addresses.size(), 3u);  // .1 once, .2 as IPv4, ::192.0.2.3 dropped, 2001:db8::1 once
    EXPECT_EQ(host.addresses[0].address, ip("192.0.2.1"));
    EXPECT_TRUE(host.addresses[1].address.is_v4());
    EXPECT_EQ(host.addresses[1].address, ip("192.0.2.2"));
    EXPECT_EQ(host.addresses[2].address, ip("2001:db8::1"));
    EXPECT_NE(notes.find("IPv4-compatible address ::192.0.2.3 dropped"), std::string::npos) << notes;
    // families=ipv6: an IPv4 address written as AAAA is no IPv6 destination.
    rules.families = MxFamilies::ipv6;
    MxHost v6{"mx.test", 10, {}};
    add_host_addresses(v6, true, {aaaa_rdata("::ffff:192.0.2.1"), aaaa_rdata("2001:db8::2")}, false, rules, left,
                       notes);
    ASSERT_EQ(v6.addresses.size(), 1u);
    EXPECT_EQ(v6.addresses[0].address, ip("2001:db8::2"));
}

TEST(MxRefused, DefaultsNameTheSpecialUseRanges) {
    CidrSet d = default_refused_destinations();
    struct Row {
        const char* addr;
        const char* want;  // nullptr: not refused
    };
    const Row rows[] = {
        {"127.0.0.1", "refused destination 127.0.0.1 (loopback)"},
        {"::1", "refused destination ::1 (loopback)"},
        {"0.0.0.0", "(unspecified)"},
        {"::", "(unspecified)"},
        {"169.254.1.1", "(link-local)"},
        {"fe80::1", "(link-local)"},
        {"224.0.0.1", "(multicast)"},
        {"ff02::1", "(multicast)"},
        {"255.255.255.255", "(broadcast)"},
        {"10.1.2.3", "(private)"},
        {"172.31.0.1", "(private)"},
        {"192.168.1.1", "(private)"},
        {"fd00::1", "(unique-local)"},
        {"100.64.0.1", "(shared)"},
        {"::ffff:127.0.0.1", "refused destination 127.0.0.1 (loopback)"},
        {"192.0.2.1", nullptr},
        {"2001:db8::1", nullptr},
        {"8.8.8.8", nullptr},
        {"172.32.0.1", nullptr},
    };
    for (const auto& r : rows) {
        auto got = refused_destination(d, ip(r.addr));
        if (!r.want) {
            EXPECT_FALSE(got) << r.addr;
            continue;
        }
        ASSERT_TRUE(got) << r.addr;
        EXPECT_NE(got->find(r.want), std::string::npos) << *got;
    }
    auto custom = CidrSet::parse("192.0.2.0/24");
    ASSERT_TRUE(custom);
    EXPECT_EQ(refused_destination(*custom, ip("192.0.2.9")).value_or(""),
              "refused destination 192.0.2.9 (refused_destinations)");
    EXPECT_FALSE(refused_destination(CidrSet{}, ip("127.0.0.1")));
    // Address literals too.
    MxAnswer lit = answer_for_literal("[127.0.0.1]", MxFamilies::ipv4_first, d);
    EXPECT_EQ(lit.status, MxStatus::no_address);
    EXPECT_NE(lit.why.find("refused destination 127.0.0.1 (loopback)"), std::string::npos) << lit.why;
    EXPECT_EQ(answer_for_literal("[IPv6:::ffff:10.0.0.1]", MxFamilies::ipv4_first, d).status, MxStatus::no_address);
    EXPECT_EQ(answer_for_literal("[127.0.0.1]", MxFamilies::ipv4_first, CidrSet{}).status, MxStatus::ok);
    // A refused address of a DNS answer is dropped and said.
    MxAddressRules rules;
    rules.refused = &d;
    std::size_t left = 20;
    std::string notes;
    MxHost host{"mx.test", 10, {}};
    EXPECT_EQ(add_host_addresses(host, false, {a_rdata("127.0.0.1"), a_rdata("192.0.2.1")}, false, rules, left, notes),
              1u);
    ASSERT_EQ(host.addresses.size(), 1u);
    EXPECT_EQ(host.addresses[0].address, ip("192.0.2.1"));
    EXPECT_NE(notes.find("mx.test: refused destination 127.0.0.1 (loopback)"), std::string::npos) << notes;
}

TEST(MxLookupTest, LocalhostAndLoopbackLiteralsAreRefusedByDefault) {
    SilentServer dns;  // libunbound answers localhost from its built-in local zone
    ASSERT_NE(dns.port, 0);
    asio::io_context io;
    auto mx = MxLookup::create(io.get_executor(), silent_config(dns));
    ASSERT_TRUE(mx) << mx.error();
    MxResult r = run_lookup(io, **mx, "localhost");
    EXPECT_EQ(r.status, MxStatus::no_address);
    EXPECT_TRUE(is_permanent(r.status));
    EXPECT_NE(r.why.find("every address found is a refused destination"), std::string::npos) << r.why;
    EXPECT_NE(r.why.find("refused destination 127.0.0.1 (loopback)"), std::string::npos) << r.why;
    EXPECT_NE(r.why.find("refused destination ::1 (loopback)"), std::string::npos) << r.why;
    r = run_lookup(io, **mx, "[IPv6:::1]");
    EXPECT_EQ(r.status, MxStatus::no_address);
    // Opened explicitly (as the tests on loopback do), the same answers are destinations.
    MxLookupConfig open = silent_config(dns);
    open.refused_destinations = CidrSet{};
    auto mx2 = MxLookup::create(io.get_executor(), open);
    ASSERT_TRUE(mx2) << mx2.error();
    r = run_lookup(io, **mx2, "localhost");
    ASSERT_EQ(r.status, MxStatus::ok) << r.why;
    ASSERT_EQ(r.destinations.size(), 2u);
    EXPECT_EQ(r.destinations[0].address, ip("127.0.0.1"));
    EXPECT_EQ(r.destinations[1].address, ip("::1"));
}

TEST(MxLookupTest, InFlightLimitFailsAtOnceAndOneDomainIsAskedOnce) {
    SilentServer dns;
    ASSERT_NE(dns.port, 0);
    asio::io_context io;
    MxLookupConfig cfg = silent_config(dns);
    cfg.max_lookups_in_flight = 1;
    auto mx = MxLookup::create(io.get_executor(), cfg);
    ASSERT_TRUE(mx) << mx.error();
    std::vector<MxResult> results(3);
    const char* domains[] = {"a.example", "A.example", "b.example"};
    for (std::size_t k = 0; k < 3; ++k)
        asio::co_spawn(
            io, [&, k]() -> asio::awaitable<void> { results[k] = co_await (*mx)->lookup(domains[k]); }, asio::detached);
    io.run();
    for (const auto& r : results) EXPECT_EQ(r.status, MxStatus::temporary);
    // The second lookup of a.example waited for the first one's queries (not refused).
    EXPECT_NE(results[0].why.find("a.example MX: no answer within 300 ms"), std::string::npos) << results[0].why;
    EXPECT_NE(results[1].why.find("a.example MX: no answer within 300 ms"), std::string::npos) << results[1].why;
    EXPECT_NE(results[2].why.find("too many MX lookups in flight (1)"), std::string::npos) << results[2].why;
    // The slot is free again once the first lookup ended.
    MxResult again = run_lookup(io, **mx, "b.example");
    EXPECT_NE(again.why.find("b.example MX: no answer within 300 ms"), std::string::npos) << again.why;
}

// One MxLookup shared by coroutines on several strands of an io_context run by several
// threads: the lookups' bodies, the cache and libunbound's callbacks stay on the lookup's
// strand (under ThreadSanitizer, or ASan, a body on the caller's thread would race).
TEST(MxLookupTest, SharedByLookupsOnSeveralThreads) {
    SilentServer dns;
    ASSERT_NE(dns.port, 0);
    asio::io_context io;
    MxLookupConfig cfg = silent_config(dns);
    cfg.refused_destinations = CidrSet{};
    cfg.max_cache_ttl = 0s;  // every lookup asks libunbound (its local zone answers localhost)
    auto mx = MxLookup::create(io.get_executor(), cfg);
    ASSERT_TRUE(mx) << mx.error();
    auto guard = asio::make_work_guard(io);
    std::vector<std::thread> runners;
    runners.reserve(3);
    for (int t = 0; t < 3; ++t) runners.emplace_back([&io] { io.run(); });
    constexpr int kCallers = 4;
    constexpr int kEach = 40;
    std::atomic<int> good{0};
    std::atomic<int> done{0};
    std::vector<std::thread> callers;
    callers.reserve(kCallers);
    for (int t = 0; t < kCallers; ++t)
        callers.emplace_back([&, t] {
            auto strand = asio::make_strand(io);
            for (int i = 0; i < kEach; ++i)
                asio::co_spawn(
                    strand,
                    [&, name = std::string((i + t) % 3 == 0 ? "[192.0.2.1]" : (i % 2 ? "localhost" : "LOCALHOST"))]()
                        -> asio::awaitable<void> {
                        MxResult r = co_await (*mx)->lookup(name);
                        bool literal = name.front() == '[';
                        if (r.status == MxStatus::ok && r.destinations.size() == (literal ? 1u : 2u)) ++good;
                        ++done;
                    },
                    asio::detached);
        });
    for (auto& c : callers) c.join();
    guard.reset();
    for (auto& r : runners) r.join();
    EXPECT_EQ(done.load(), kCallers * kEach);
    EXPECT_EQ(good.load(), kCallers * kEach);
}

TEST(MxRefused, AddressesThatCarryARefusedIpv4AddressAreRefused) {
    const CidrSet refused = default_refused_destinations();
    auto ip = [](const char* t) { return *IpAddress::parse(t); };
    // NAT64's well-known prefix and 6to4 reach the IPv4 address they carry.
    auto nat64 = refused_destination(refused, ip("64:ff9b::a00:1"));
    ASSERT_TRUE(nat64);
    EXPECT_NE(nat64->find("carries 10.0.0.1 (private"), std::string::npos) << *nat64;
    EXPECT_TRUE(refused_destination(refused, ip("2002:7f00:1::1")));
    EXPECT_TRUE(refused_destination(refused, ip("::10.0.0.1")));  // IPv4-compatible, deprecated
    // The same prefixes carrying a public address are not refused.
    EXPECT_FALSE(refused_destination(refused, ip("64:ff9b::c000:201")));
    EXPECT_FALSE(refused_destination(refused, ip("2002:c000:201::1")));
    EXPECT_FALSE(refused_destination(CidrSet{}, ip("64:ff9b::a00:1")));  // "none" refuses nothing
}
