// trace_header_test: the signed X-Original-Source header: round trips, a golden vector,
// refolding, tampering with every tag, unknown key, time window, binding to the message,
// key rotation, hostile values and malformed input.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include <xproxy/base/keyring.hpp>
#include <xproxy/wire/trace_header.hpp>

#include "expected_value.hpp"

using namespace xproxy;

namespace {

constexpr std::int64_t kT = 1790000000;
constexpr std::int64_t kDay = 86400;

KeyRing ring(const std::string& text) {
    std::string err;
    auto r = xproxy::test::value_or_error(KeyRing::parse(text), err);
    EXPECT_TRUE(r) << err;
    return r ? std::move(*r) : KeyRing{};
}

const KeyRing& keys() {
    static const KeyRing k = ring(
        "k2026 hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
        "k2025 hex:202122232425262728292a2b2c2d2e2f\n");
    return k;
}

SourceInfo source() {
    SourceInfo s;
    s.client = Endpoint{*IpAddress::parse("192.0.2.66"), 40123};
    s.helo = "client.example";
    s.ptr_name = "mail.example.org";
    s.protocol = "ESMTPSA";
    s.tls = TlsInfo{"TLSv1.3", "TLS_AES_256_GCM_SHA384", 256, "", "", ""};
    s.login = "alice@example.org";
    s.session_id = "4XyZ1AB2C3";
    return s;
}

MessageBinding msg(std::string mid = "<20260101.1234@client.example>", std::string from = "alice@example.org") {
    return MessageBinding{TraceBinding::message_id, std::move(mid), std::move(from)};
}

std::string signed_value(const SourceInfo& s = source(), const MessageBinding& b = msg()) {
    return sign_trace_header(s, "gw1.example.net", kT, b, keys());
}

TraceVerifyResult check(std::string_view v, const MessageBinding& b = msg(), std::int64_t now = kT + 10) {
    return verify_trace_header(v, b, keys(), now, kDay);
}

// Replaces the value of `tag` in a header value written by sign_trace_header.
std::string with_tag(const std::string& v, const std::string& tag, const std::string& value) {
    const std::string key = tag + "=";
    std::size_t pos = v.find("; " + key);
    if (pos != std::string::npos) pos += 2;
    else if (v.rfind(key, 0) == 0) pos = 0;
    if (pos == std::string::npos) return v + "; " + key + value;
    const std::size_t end = v.find(';', pos);
    return v.substr(0, pos) + key + value + (end == std::string::npos ? "" : v.substr(end));
}

std::string without_tag(const std::string& v, const std::string& tag) {
    const std::size_t pos = v.find("; " + tag + "=");
    if (pos == std::string::npos) return v;
    const std::size_t end = v.find(';', pos + 2);
    return v.substr(0, pos) + (end == std::string::npos ? "" : v.substr(end));
}

}  // namespace

namespace xproxy {
void PrintTo(TraceVerdict v, std::ostream* os) { *os << to_string(v); }
}  // namespace xproxy

TEST(TraceHeader, RoundTrip) {
    const std::string v = signed_value();
    ASSERT_FALSE(v.empty());
    const auto r = check(v);
    ASSERT_EQ(r.verdict, TraceVerdict::ok) << r.reason << "\n" << v;
    SourceInfo want = source();
    want.time = kT;
    EXPECT_EQ(r.source, want);
    EXPECT_EQ(r.by, "gw1.example.net");
    EXPECT_EQ(r.key_id, "k2026");
    EXPECT_EQ(r.binding, TraceBinding::message_id);
    EXPECT_EQ(r.time, kT);
}

// The exact bytes for fixed input: the format and the canonical form may not drift.
// doc/wire-formats.md shows this vector and how to recompute it.
TEST(TraceHeader, GoldenVector) {
    const std::string want =
        "v=1; ip=192.0.2.66; port=40123; helo=client.example; name=mail.example.org; proto=ESMTPSA; "
        "tls=TLSv1.3/TLS_AES_256_GCM_SHA384/256; login=alice@example.org; sid=4XyZ1AB2C3; by=gw1.example.net; "
        "t=1790000000; b=mid; bh=Afssl8MoSYmeRnRCeHDA95mInyaJ41vHh_fYTBz83WM; kid=k2026; "
        "sig=2jPfViaSJLgSGpceUhUpBG2gPNr4UnvocB0pdqKBlGU";
    EXPECT_EQ(signed_value(), want);
}

TEST(TraceHeader, FormatFieldFoldsAndStillVerifies) {
    const std::string field = format_field(signed_value());
    ASSERT_EQ(field.rfind("X-Original-Source: v=1;", 0), 0u) << field;
    std::size_t start = 0, lines = 0;
    while (start < field.size()) {
        auto end = field.find("\r\n", start);
        const std::string line = field.substr(start, end == std::string::npos ? std::string::npos : end - start);
        EXPECT_LE(line.size(), 78u) << line;
        if (lines > 0) {
            EXPECT_EQ(line[0], '\t');
        }
        ++lines;
        start = end == std::string::npos ? field.size() : end + 2;
    }
    EXPECT_GE(lines, 3u);
    EXPECT_EQ(check(field).verdict, TraceVerdict::ok);
    const std::string lf = format_field(signed_value(), "\n");
    EXPECT_EQ(lf.find('\r'), std::string::npos);
    EXPECT_EQ(check(lf).verdict, TraceVerdict::ok);
}

TEST(TraceHeader, SurvivesRefoldingAndWhiteSpace) {
    const std::string v = signed_value();
    std::mt19937 rng(2026);
    const char* const ws[] = {" ", "\t", "  ", "\r\n ", "\r\n\t", "\n\t", " \r\n  "};
    for (int n = 0; n < 300; ++n) {
        std::string out;
        for (char c : v) {
            if (c == ' ') {
                if (rng() % 3 == 0) continue;  // drop a space
                out += ws[rng() % 7];          // or replace it by other folding white space
                continue;
            }
            out += c;
            if ((c == ';' || c == '=') && rng() % 4 == 0) out += ws[rng() % 7];
            if (rng() % 20 == 0) out += ws[rng() % 7];  // even inside a value
        }
        if (rng() % 2) out = "X-Original-Source:" + std::string(ws[rng() % 7]) + out;
        if (rng() % 2) out += ";";
        const auto r = check(out);
        ASSERT_EQ(r.verdict, TraceVerdict::ok) << r.reason << "\n" << out;
        ASSERT_EQ(r.source.helo, "client.example");
    }
    // Tags in another order verify as well: the canonical form has a fixed order.
    std::string reversed;
    std::vector<std::string> parts;
    for (std::size_t p = 0; p < v.size();) {
        auto e = v.find("; ", p);
        parts.push_back(v.substr(p, e == std::string::npos ? std::string::npos : e - p));
        p = e == std::string::npos ? v.size() : e + 2;
    }
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) reversed += *it + ";";
    EXPECT_EQ(check(reversed).verdict, TraceVerdict::ok) << reversed;
}

TEST(TraceHeader, TamperingWithEveryTag) {
    SourceInfo s = source();
    s.tls.peer_fingerprint = "AB:CD:EF";
    const std::string v = signed_value(s);
    ASSERT_EQ(check(v).verdict, TraceVerdict::ok);
    struct Row {
        const char* tag;
        const char* value;
        TraceVerdict want;
    };
    const Row rows[] = {
        {"ip", "192.0.2.67", TraceVerdict::bad_signature},
        {"ip", "::1", TraceVerdict::bad_signature},
        {"ip", "192.0.2.666", TraceVerdict::malformed},
        {"port", "40124", TraceVerdict::bad_signature},
        {"port", "040123", TraceVerdict::malformed},
        {"port", "65536", TraceVerdict::malformed},
        {"helo", "client.examplf", TraceVerdict::bad_signature},
        {"helo", "", TraceVerdict::bad_signature},
        {"name", "mail.example.com", TraceVerdict::bad_signature},
        {"proto", "ESMTPS", TraceVerdict::bad_signature},
        {"tls", "TLSv1.2/TLS_AES_256_GCM_SHA384/256/AB:CD:EF", TraceVerdict::bad_signature},
        {"tls", "TLSv1.3/TLS_AES_128_GCM_SHA256/256/AB:CD:EF", TraceVerdict::bad_signature},
        {"tls", "TLSv1.3/TLS_AES_256_GCM_SHA384/128/AB:CD:EF", TraceVerdict::bad_signature},
        {"tls", "TLSv1.3/TLS_AES_256_GCM_SHA384/256/AB:CD:EE", TraceVerdict::bad_signature},
        {"tls", "TLSv1.3/TLS_AES_256_GCM_SHA384/256", TraceVerdict::bad_signature},
        {"tls", "TLSv1.3/TLS_AES_256_GCM_SHA384", TraceVerdict::malformed},
        {"tls", "/x/1", TraceVerdict::malformed},
        {"login", "mallory@example.org", TraceVerdict::bad_signature},
        {"sid", "4XyZ1AB2C4", TraceVerdict::bad_signature},
        {"by", "gw2.example.net", TraceVerdict::bad_signature},
        {"t", "1790000001", TraceVerdict::bad_signature},
        {"t", "-1", TraceVerdict::malformed},
        {"t", "01790000000", TraceVerdict::malformed},
        {"b", "env", TraceVerdict::bad_signature},
        {"b", "all", TraceVerdict::malformed},
        {"bh", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", TraceVerdict::bad_signature},
        {"bh", "AAAA", TraceVerdict::malformed},
        {"kid", "k2025", TraceVerdict::bad_signature},  // another key of the ring
        {"kid", "k2024", TraceVerdict::unknown_key},
        {"kid", "k 2024/x", TraceVerdict::malformed},
        {"sig", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", TraceVerdict::bad_signature},
        {"sig", "AAAA", TraceVerdict::malformed},
        {"sig", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", TraceVerdict::malformed},
        {"v", "2", TraceVerdict::malformed},
    };
    for (const auto& r : rows) {
        const std::string t = with_tag(v, r.tag, r.value);
        ASSERT_NE(t, v) << r.tag;
        const auto got = check(t);
        EXPECT_EQ(got.verdict, r.want) << r.tag << "=" << r.value << ": " << got.reason;
    }
    // One flipped character in the signature, at every position.
    const std::size_t sig = v.find("sig=") + 4;
    for (std::size_t i = sig; i < v.size(); ++i) {
        std::string t = v;
        t[i] = t[i] == 'A' ? 'B' : 'A';
        EXPECT_EQ(check(t).verdict, TraceVerdict::bad_signature) << i;
    }
}

TEST(TraceHeader, AddingOrRemovingTags) {
    const std::string v = signed_value();
    for (const char* optional : {"helo", "name", "proto", "tls", "login", "sid", "by"})
        EXPECT_EQ(check(without_tag(v, optional)).verdict, TraceVerdict::bad_signature) << optional;
    for (const char* required : {"t", "b", "bh", "kid", "sig"})
        EXPECT_EQ(check(without_tag(v, required)).verdict, TraceVerdict::malformed) << required;
    EXPECT_EQ(check(without_tag(v, "ip")).verdict, TraceVerdict::malformed);  // port without ip
    EXPECT_EQ(check(without_tag(without_tag(v, "ip"), "port")).verdict, TraceVerdict::bad_signature);
    EXPECT_EQ(check(v.substr(v.find("; ") + 2)).verdict, TraceVerdict::malformed);  // no v=
    EXPECT_EQ(check(v + "; x=1").verdict, TraceVerdict::malformed);                 // unknown tag
    EXPECT_EQ(check(v + "; helo=evil").verdict, TraceVerdict::malformed);           // repeated tag
    EXPECT_EQ(check("helo=evil; " + v).verdict, TraceVerdict::malformed);
    // An empty value is the same as an absent tag (both sign as empty).
    SourceInfo s = source();
    s.login.clear();
    const std::string no_login = signed_value(s);
    EXPECT_EQ(no_login.find("login="), std::string::npos);
    EXPECT_EQ(check(with_tag(no_login, "login", "")).verdict, TraceVerdict::ok);
}

TEST(TraceHeader, TimeWindow) {
    const std::string v = signed_value();
    struct Row {
        std::int64_t now, max_age, max_future;
        TraceVerdict want;
    };
    const Row rows[] = {
        {kT, kDay, 300, TraceVerdict::ok},
        {kT + kDay, kDay, 300, TraceVerdict::ok},           // exactly max_age old
        {kT + kDay + 1, kDay, 300, TraceVerdict::expired},  // one second more
        {kT - 300, kDay, 300, TraceVerdict::ok},            // exactly max_future ahead
        {kT - 301, kDay, 300, TraceVerdict::future},
        {kT - 1, kDay, 0, TraceVerdict::future},
        {kT + 1, 0, 0, TraceVerdict::expired},
        {kT + 1, -5, -5, TraceVerdict::expired},  // negative bounds count as 0
        {kT + 100 * 365 * kDay, INT64_MAX, INT64_MAX, TraceVerdict::ok},
        {INT64_MAX, INT64_MAX, INT64_MAX, TraceVerdict::expired},  // no overflow
        {INT64_MIN, INT64_MAX, INT64_MAX, TraceVerdict::future},
    };
    for (const auto& r : rows) {
        const auto got = verify_trace_header(v, msg(), keys(), r.now, r.max_age, r.max_future);
        EXPECT_EQ(got.verdict, r.want) << r.now << " " << r.max_age << " " << got.reason;
    }
}

TEST(TraceHeader, CopiedIntoAnotherMessage) {
    const std::string mid_bound = signed_value();
    MessageBinding env{TraceBinding::envelope, "", "alice@example.org"};
    const std::string env_bound = signed_value(source(), env);
    ASSERT_NE(env_bound.find("b=env"), std::string::npos);
    struct Row {
        const std::string* header;
        MessageBinding at;
        TraceVerdict want;
    };
    const Row rows[] = {
        {&mid_bound, msg(), TraceVerdict::ok},
        {&mid_bound, msg(" <20260101.1234@client.example>\r\n"), TraceVerdict::ok},  // folding ignored
        {&mid_bound, msg("<20260101.1234@client.example>", "<alice@Example.ORG>"), TraceVerdict::ok},
        {&mid_bound, msg("<20260101.1234@client.example>", "ALICE@example.org"), TraceVerdict::wrong_binding},
        {&mid_bound, msg("<20260101.1235@client.example>"), TraceVerdict::wrong_binding},
        {&mid_bound, msg(""), TraceVerdict::wrong_binding},
        {&mid_bound, msg("<20260101.1234@client.example>", "bob@example.org"), TraceVerdict::wrong_binding},
        {&mid_bound, msg("<20260101.1234@client.example>", ""), TraceVerdict::wrong_binding},
        {&env_bound, msg(), TraceVerdict::ok},  // Message-ID not bound
        {&env_bound, msg("<other@x>"), TraceVerdict::ok},
        {&env_bound, msg("<other@x>", "bob@example.org"), TraceVerdict::wrong_binding},
    };
    for (const auto& r : rows) {
        const auto got = check(*r.header, r.at);
        EXPECT_EQ(got.verdict, r.want) << r.at.message_id << " " << r.at.sender << ": " << got.reason;
    }
    // The null sender is a sender like any other.
    MessageBinding bounce{TraceBinding::message_id, "<b@x>", ""};
    EXPECT_EQ(check(signed_value(source(), bounce), bounce).verdict, TraceVerdict::ok);
    EXPECT_EQ(check(signed_value(source(), bounce), MessageBinding{TraceBinding::message_id, "<b@x>", "<>"}).verdict,
              TraceVerdict::ok);
}

// A hop re-spells the envelope sender (Postfix unquotes a needless quoted string and drops
// a source route; a policy service gets Postfix's unquoted internal form): the binding is
// over the canonical address, so the header still verifies there, for both kinds, while
// another mailbox still does not.
TEST(TraceHeader, SenderRespelledByTheNextHop) {
    struct Row {
        const char* signed_with;
        const char* verified_with;
        TraceVerdict want;
    };
    const Row rows[] = {
        {"\"alice\"@Example.COM", "alice@example.com", TraceVerdict::ok},
        {"<\"alice\"@Example.COM>", "<alice@example.com>", TraceVerdict::ok},
        {"<@relay:alice@example.com>", "alice@example.com", TraceVerdict::ok},
        {"<@a.example,@b.example:alice@example.com>", "<alice@EXAMPLE.com>", TraceVerdict::ok},
        {"alice@example.com", "\"alice\"@example.com", TraceVerdict::ok},
        {"\"al\\ice\"@example.com", "alice@example.com", TraceVerdict::ok},  // quoted pair
        {"\"first.last\"@example.com", "first.last@example.com", TraceVerdict::ok},
        {"\"a b\"@example.com", "a b@example.com", TraceVerdict::ok},  // Postfix's internal form
        {" < alice@example.com > ", "alice@example.com", TraceVerdict::ok},
        {"alice@example.com.", "alice@example.com", TraceVerdict::ok},  // Postfix drops the dot
        {"\"alice\"@example.com", "bob@example.com", TraceVerdict::wrong_binding},
        {"\"alice\"@example.com", "Alice@example.com", TraceVerdict::wrong_binding},  // local case kept
        {"\"a b\"@example.com", "ab@example.com", TraceVerdict::wrong_binding},
        {"\"a.\"@example.com", "a.@example.com", TraceVerdict::ok},  // both need quotes
        {"\"a.\"@example.com", "a@example.com", TraceVerdict::wrong_binding},
        {"\"alice@x\"@example.com", "alice@x@example.com", TraceVerdict::ok},  // internal form again
        {"\"alice@x\"@example.com", "alice@x.example.com", TraceVerdict::wrong_binding},
        {"<@relay:alice@example.com>", "alice@relay", TraceVerdict::wrong_binding},
        {"alice@example.com", "alice@example.org", TraceVerdict::wrong_binding},
        {"<>", "", TraceVerdict::ok},
        {"\"\"@example.com", "@example.com", TraceVerdict::ok},
        {"\"\"@example.com", "", TraceVerdict::wrong_binding},
    };
    for (TraceBinding kind : {TraceBinding::message_id, TraceBinding::envelope}) {
        for (const auto& r : rows) {
            const MessageBinding at_signer{kind, "<m@x>", r.signed_with};
            const MessageBinding at_verifier{kind, "<m@x>", r.verified_with};
            const auto got = check(signed_value(source(), at_signer), at_verifier);
            EXPECT_EQ(got.verdict, r.want) << to_string(kind) << " " << r.signed_with << " -> " << r.verified_with;
        }
    }
}

TEST(TraceHeader, KeyRotation) {
    const std::string hex_old = "hex:202122232425262728292a2b2c2d2e2f";
    const std::string hex_new = "hex:303132333435363738393a3b3c3d3e3f";
    const KeyRing old_only = ring("old " + hex_old);
    const KeyRing both_old_signs = ring("old " + hex_old + "\nnew " + hex_new);
    const KeyRing both_new_signs = ring("new " + hex_new + "\nold " + hex_old);
    const KeyRing new_only = ring("new " + hex_new);
    const KeyRing new_id_old_secret = ring("old " + hex_new);

    const std::string by_old = sign_trace_header(source(), "gw", kT, msg(), old_only);
    const std::string by_new = sign_trace_header(source(), "gw", kT, msg(), both_new_signs);
    ASSERT_NE(by_old.find("kid=old"), std::string::npos);
    ASSERT_NE(by_new.find("kid=new"), std::string::npos);
    auto v = [&](const std::string& h, const KeyRing& k) { return verify_trace_header(h, msg(), k, kT, kDay).verdict; };
    EXPECT_EQ(v(by_old, both_old_signs), TraceVerdict::ok);
    EXPECT_EQ(v(by_old, both_new_signs), TraceVerdict::ok);
    EXPECT_EQ(v(by_new, both_old_signs), TraceVerdict::ok);
    EXPECT_EQ(v(by_new, old_only), TraceVerdict::unknown_key);
    EXPECT_EQ(v(by_old, new_only), TraceVerdict::unknown_key);
    EXPECT_EQ(v(by_old, new_id_old_secret), TraceVerdict::bad_signature);  // same id, other secret
    EXPECT_EQ(sign_trace_header(source(), "gw", kT, msg(), KeyRing{}), "");
    EXPECT_EQ(v(by_old, KeyRing{}), TraceVerdict::unknown_key);
}

TEST(TraceHeader, HostileValuesRoundTrip) {
    struct Row {
        std::string helo, login, name, tls_version, fingerprint;
    };
    const Row rows[] = {
        {"evil; sig=AAAA; ip=10.0.0.1", "a=b; c", "x y\tz", "TLSv1/SSLv3", "AB/CD"},
        {"caf\xc3\xa9.example", "\xff\xfe", "+2B+", "TLSv1.2", ""},
        {"line\r\nX-Injected: 1", std::string("nul\0in", 6), "\\x41", "TLSv1.3", "a:b"},
        {std::string(1, '\0'), "+", "=", "v", "/"},
    };
    for (const auto& r : rows) {
        SourceInfo s = source();
        s.helo = r.helo;
        s.login = r.login;
        s.ptr_name = r.name;
        s.tls.version = r.tls_version;
        s.tls.peer_fingerprint = r.fingerprint;
        const std::string v = signed_value(s);
        for (char c : v) ASSERT_TRUE(c >= 0x20 && c < 0x7F) << v;  // one printable line
        const auto got = check(format_field(v));
        ASSERT_EQ(got.verdict, TraceVerdict::ok) << got.reason << "\n" << v;
        s.time = kT;
        EXPECT_EQ(got.source, s);
    }
}

TEST(TraceHeader, LongValuesAreCut) {
    SourceInfo s = source();
    s.helo = std::string(300, 'h');
    s.login = std::string(1000, '\xff');  // 3000 bytes encoded before the cut
    s.tls.cipher = std::string(100, 'c');
    s.tls.peer_fingerprint = std::string(300, 'f');
    const std::string v = signed_value(s);
    const auto got = check(format_field(v));
    ASSERT_EQ(got.verdict, TraceVerdict::ok) << got.reason;
    EXPECT_EQ(got.source.helo, std::string(kTraceMaxText, 'h'));
    EXPECT_EQ(got.source.login, std::string(kTraceMaxText, '\xff'));
    EXPECT_EQ(got.source.tls.cipher, std::string(64, 'c'));
    EXPECT_EQ(got.source.tls.peer_fingerprint, std::string(192, 'f'));
    // Every line of the folded field stays under the 998-byte limit of RFC 5322.
    const std::string field = format_field(v);
    for (std::size_t p = 0, e; p < field.size(); p = e + 2) {
        e = field.find("\r\n", p);
        if (e == std::string::npos) e = field.size();
        EXPECT_LE(e - p, 998u);
    }
    EXPECT_LE(v.size(), kTraceMaxInput);
    // A value over the cap written by hand is malformed.
    EXPECT_EQ(check(with_tag(signed_value(), "helo", std::string(256, 'h'))).verdict, TraceVerdict::malformed);
}

TEST(TraceHeader, Addresses) {
    struct Row {
        const char* in;
        const char* want_ip;
    };
    const Row rows[] = {
        {"2001:db8::25", "2001:db8::25"}, {"::ffff:192.0.2.1", "192.0.2.1"}, {"127.0.0.1", "127.0.0.1"}};
    for (const auto& r : rows) {
        SourceInfo s = source();
        auto a = IpAddress::parse(r.in);
        ASSERT_TRUE(a);
        s.client = Endpoint{*a, 25};
        const std::string v = signed_value(s);
        EXPECT_NE(v.find(std::string("ip=") + r.want_ip + ";"), std::string::npos) << v;
        const auto got = check(v);
        ASSERT_EQ(got.verdict, TraceVerdict::ok) << got.reason;
        EXPECT_EQ(got.source.client->addr.to_string(), r.want_ip);
    }
    // A v4-mapped address given as raw bytes is written as IPv4 and still verifies.
    const std::uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 9};
    SourceInfo s = source();
    s.client = Endpoint{IpAddress::v6_bytes(mapped), 25};
    const auto got = check(signed_value(s));
    ASSERT_EQ(got.verdict, TraceVerdict::ok) << got.reason;
    EXPECT_EQ(got.source.client->addr.to_string(), "192.0.2.9");
    // No client at all.
    s.client.reset();
    const std::string none = signed_value(s);
    EXPECT_EQ(none.find("ip="), std::string::npos);
    EXPECT_FALSE(check(none).source.client);
    EXPECT_EQ(check(none).verdict, TraceVerdict::ok);
}

TEST(TraceHeader, MalformedInput) {
    const std::string v = signed_value();
    const std::string rows[] = {
        "",
        ";;;",
        "v=1",
        "garbage",
        "=1; v=1",
        "v=1; t",
        v + "\x01",
        v + " \x7f",
        "X-Original-Source: v=1; caf\xc3\xa9=1",
        std::string(kTraceMaxInput + 1, ' ') + v,
        with_tag(v, "helo", "bad+2"),   // truncated +HH
        with_tag(v, "helo", "bad+2b"),  // lower-case hex
        with_tag(v, "helo", "a=b"),     // raw '=' in a value
        with_tag(v, "tls", "TLSv1.3/X/256/AB/CD"),
        with_tag(v, "tls", "TLSv1.3/X/99999"),
        with_tag(v, "t", "99999999999999"),  // 14 digits
    };
    for (const auto& in : rows) {
        const auto got = check(in);
        EXPECT_EQ(got.verdict, TraceVerdict::malformed) << in << ": " << got.reason;
        EXPECT_FALSE(got.reason.empty());
    }
    // At the input cap exactly, white space padding is fine.
    const std::string padded = v + std::string(kTraceMaxInput - v.size(), ' ');
    EXPECT_EQ(check(padded).verdict, TraceVerdict::ok);
}

TEST(TraceHeader, ReasonsCarryNoInput) {
    const std::string v = with_tag(signed_value(), "helo", "SECRET+0ASTUFF");
    const auto got = check(v);
    EXPECT_EQ(got.verdict, TraceVerdict::bad_signature);
    EXPECT_EQ(got.reason.find("SECRET"), std::string::npos);
}

TEST(TraceHeader, MutationsNeverCrash) {
    const std::string field = format_field(signed_value());
    std::mt19937 rng(99);
    std::size_t ok = 0;
    for (int n = 0; n < 20000; ++n) {
        std::string m = field;
        const int edits = 1 + static_cast<int>(rng() % 4);
        for (int e = 0; e < edits && !m.empty(); ++e) {
            const std::size_t at = rng() % m.size();
            switch (rng() % 3) {
                case 0: m[at] = static_cast<char>(rng() & 0xFF); break;
                case 1: m.erase(at, 1 + rng() % 8); break;
                default: m.insert(at, 1, static_cast<char>(rng() & 0xFF)); break;
            }
        }
        const auto got = check(m);
        if (got.ok()) {
            ++ok;
            // Whatever verifies carries exactly the signed values.
            EXPECT_EQ(got.source.helo, "client.example") << m;
            EXPECT_EQ(got.source.login, "alice@example.org") << m;
        }
    }
    EXPECT_LT(ok, 20000u);
}

TEST(TraceHeader, VerdictNames) {
    EXPECT_STREQ(to_string(TraceVerdict::ok), "ok");
    EXPECT_STREQ(to_string(TraceVerdict::malformed), "malformed");
    EXPECT_STREQ(to_string(TraceVerdict::unknown_key), "unknown_key");
    EXPECT_STREQ(to_string(TraceVerdict::bad_signature), "bad_signature");
    EXPECT_STREQ(to_string(TraceVerdict::wrong_binding), "wrong_binding");
    EXPECT_STREQ(to_string(TraceVerdict::expired), "expired");
    EXPECT_STREQ(to_string(TraceVerdict::future), "future");
    EXPECT_STREQ(to_string(TraceBinding::message_id), "mid");
    EXPECT_STREQ(to_string(TraceBinding::envelope), "env");
}
