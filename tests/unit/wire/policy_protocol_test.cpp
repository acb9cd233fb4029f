// policy_protocol_test: the Postfix policy request parser (fixtures from Postfix's README
// and from a live Postfix 3.7.11, bounds at and one past each limit, every split
// position), the reply encoder and the request -> SourceInfo mapping.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <xproxy/wire/policy_protocol.hpp>

using namespace xproxy;

namespace {

std::string fixture(const char* name) {
    const std::string path = std::string(XPROXY_SOURCE_DIR) + "/tests/e2e/data/" + name;
    std::ifstream in(path, std::ios::binary);
    EXPECT_TRUE(in) << path;
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

struct Outcome {
    std::vector<PolicyRequest> requests;
    bool failed = false;
    std::string error;
    bool in_request = false;
};

// Feeds `in` in pieces of `step` bytes (0: all at once).
Outcome parse(std::string_view in, std::size_t step = 0, PolicyLimits limits = {}) {
    PolicyRequestParser p(limits);
    Outcome o;
    if (step == 0) step = in.size() ? in.size() : 1;
    for (std::size_t i = 0; i < in.size(); i += step) p.feed(in.data() + i, std::min(step, in.size() - i), o.requests);
    o.failed = p.failed();
    o.error = p.error();
    o.in_request = p.in_request();
    return o;
}

// Every attribute as "name=value\n" in a fixed order, for comparing requests.
std::string dump(const PolicyRequest& r) {
    std::string out;
    for (std::size_t i = 0; i < PolicyRequest::kKnownCount; ++i)
        if (r.present(i)) out += std::string(PolicyRequest::known_names()[i]) + "=" + r.field(i) + "\n";
    for (const auto& [k, v] : r.other) out += "+" + k + "=" + v + "\n";
    return out;
}

std::string dump(const Outcome& o) {
    std::string out;
    for (const auto& r : o.requests) out += dump(r) + "---\n";
    out += o.failed ? "error=" + o.error : std::string("ok");
    out += o.in_request ? " pending" : "";
    return out;
}

const char kMinimal[] =
    "request=smtpd_access_policy\n"  // the one attribute the README requires
    "protocol_state=RCPT\n"
    "client_address=192.0.2.7\n"
    "\n";  // empty line: end of request

}  // namespace

TEST(PolicyProtocol, PostfixReadmeExample) {
    const std::string text = fixture("policy_example_readme.txt");
    const Outcome o = parse(text);
    ASSERT_FALSE(o.failed) << o.error;
    ASSERT_EQ(o.requests.size(), 1u);
    const PolicyRequest& r = o.requests[0];
    EXPECT_EQ(r.request, "smtpd_access_policy");
    EXPECT_EQ(r.protocol_state, "RCPT");
    EXPECT_EQ(r.protocol_name, "SMTP");
    EXPECT_EQ(r.helo_name, "some.domain.tld");
    EXPECT_EQ(r.queue_id, "8045F2AB23");
    EXPECT_EQ(r.sender, "foo@bar.tld");
    EXPECT_EQ(r.recipient, "bar@foo.tld");
    EXPECT_EQ(r.recipient_count, "0");
    EXPECT_EQ(r.client_address, "1.2.3.4");
    EXPECT_EQ(r.client_name, "another.domain.tld");
    EXPECT_EQ(r.reverse_client_name, "another.domain.tld");
    EXPECT_EQ(r.instance, "123.456.7");
    EXPECT_EQ(r.sasl_method, "plain");
    EXPECT_EQ(r.sasl_username, "you");
    EXPECT_EQ(r.sasl_sender, "");
    EXPECT_EQ(r.size, "12345");
    EXPECT_EQ(r.ccert_subject, "solaris9.porcupine.org");
    EXPECT_EQ(r.ccert_issuer, "Wietse+20Venema");  // Postfix does not decode; neither do we
    EXPECT_EQ(r.ccert_fingerprint, "C2:9D:F4:87:71:73:73:D9:18:E7:C2:F3:C1:DA:6E:04");
    EXPECT_EQ(r.encryption_protocol, "TLSv1/SSLv3");
    EXPECT_EQ(r.encryption_cipher, "DHE-RSA-AES256-SHA");
    EXPECT_EQ(r.encryption_keysize, "256");
    EXPECT_EQ(r.etrn_domain, "");
    EXPECT_EQ(r.stress, "");
    EXPECT_EQ(r.ccert_pubkey_fingerprint, "68:B3:29:DA:98:93:E3:40:99:C7:D8:AD:5C:B9:C9:40");
    EXPECT_EQ(r.client_port, "1234");
    EXPECT_EQ(r.policy_context, "submission");
    EXPECT_EQ(r.server_address, "10.3.2.1");
    EXPECT_EQ(r.server_port, "54321");
    // Newer attributes are kept by name.
    ASSERT_EQ(r.other.size(), 3u);
    EXPECT_EQ(r.get("compatibility_level"), "major.minor.patch");
    EXPECT_EQ(r.get("mail_version"), "3.8.0");
    EXPECT_EQ(r.get("tls_sni"), "mail.example.com");
    EXPECT_EQ(r.attribute_count(), 32u);
    EXPECT_TRUE(r.has("etrn_domain"));  // present, empty
    EXPECT_TRUE(r.present(*PolicyRequest::known_index("request")));
    EXPECT_EQ(r.find("no_such_name"), nullptr);

    const SourceInfo s = policy_source_info(r);
    ASSERT_TRUE(s.client);
    EXPECT_EQ(s.client->to_string(), "1.2.3.4:1234");
    ASSERT_TRUE(s.server);
    EXPECT_EQ(s.server->to_string(), "10.3.2.1:54321");
    EXPECT_EQ(s.helo, "some.domain.tld");
    EXPECT_EQ(s.ptr_name, "another.domain.tld");
    EXPECT_EQ(s.protocol, "SMTP");
    EXPECT_EQ(s.login, "you");
    EXPECT_EQ(s.session_id, "8045F2AB23");
    EXPECT_EQ(s.tls.version, "TLSv1/SSLv3");
    EXPECT_EQ(s.tls.cipher, "DHE-RSA-AES256-SHA");
    EXPECT_EQ(s.tls.bits, 256u);
    EXPECT_EQ(s.tls.peer_fingerprint, "C2:9D:F4:87:71:73:73:D9:18:E7:C2:F3:C1:DA:6E:04");
    EXPECT_EQ(s.tls.peer_subject, "solaris9.porcupine.org");
}

TEST(PolicyProtocol, LivePostfix37Capture) {
    const std::string text = fixture("policy_postfix37_capture.txt");
    const Outcome o = parse(text);
    ASSERT_FALSE(o.failed) << o.error;
    ASSERT_EQ(o.requests.size(), 1u);
    const PolicyRequest& r = o.requests[0];
    // Postfix 3.7.11 sends exactly the 29 known attributes, in the order of known_names().
    EXPECT_EQ(r.attribute_count(), 29u);
    EXPECT_TRUE(r.other.empty());
    std::string order;
    for (std::size_t p = 0; p < text.size();) {
        const auto eq = text.find('=', p);
        if (eq == std::string::npos) break;
        order += text.substr(p, eq - p) + ",";
        p = text.find('\n', eq) + 1;
    }
    std::string want_order;
    for (auto n : PolicyRequest::known_names()) want_order += std::string(n) + ",";
    EXPECT_EQ(order, want_order);
    EXPECT_EQ(r.request, "smtpd_access_policy");
    EXPECT_EQ(r.protocol_state, "RCPT");
    EXPECT_EQ(r.protocol_name, "ESMTP");
    EXPECT_EQ(r.client_address, "127.0.0.66");
    EXPECT_EQ(r.client_name, "unknown");
    EXPECT_EQ(r.reverse_client_name, "unknown");
    EXPECT_EQ(r.server_address, "127.0.0.1");
    EXPECT_EQ(r.helo_name, "client66.example");
    EXPECT_EQ(r.sender, "alice@example.org");
    EXPECT_EQ(r.recipient, "bob@example.net");
    EXPECT_EQ(r.recipient_count, "0");
    EXPECT_EQ(r.queue_id, "");  // not yet assigned at the first RCPT
    EXPECT_FALSE(r.instance.empty());
    EXPECT_EQ(r.size, "0");
    EXPECT_EQ(r.encryption_keysize, "0");
    EXPECT_EQ(r.sasl_username, "");
    const SourceInfo s = policy_source_info(r);
    ASSERT_TRUE(s.client);
    EXPECT_EQ(s.client->addr.to_string(), "127.0.0.66");
    EXPECT_EQ(std::to_string(s.client->port), r.client_port);
    EXPECT_EQ(s.ptr_name, "");            // "unknown" means no verified name
    EXPECT_EQ(s.session_id, r.instance);  // no queue id yet
    EXPECT_FALSE(s.tls.active());
}

TEST(PolicyProtocol, Table) {
    struct Row {
        const char* name;
        std::string in;
        std::size_t want_requests;
        const char* want_error;  // "" = no error
        bool want_pending;
    };
    const Row rows[] = {
        {"minimal", kMinimal, 1, "", false},
        {"pipelined", std::string(kMinimal) + kMinimal + kMinimal, 3, "", false},
        {"crlf", "request=smtpd_access_policy\r\nsender=a@b\r\n\r\n", 1, "", false},
        {"mixed endings", "request=x\r\nsender=a@b\n\r\n", 1, "", false},
        {"half request", "request=x\nsender=a", 0, "", true},
        {"no empty line yet", "request=x\n", 0, "", true},
        {"request then half", std::string(kMinimal) + "request=x\n", 1, "", true},
        {"empty value", "request=\n\n", 1, "", false},
        {"value with =", "sender=a=b@c\n\n", 1, "", false},
        {"value with CR inside", "helo_name=a\rb\n\n", 1, "", false},
        {"8-bit value", "helo_name=caf\xc3\xa9\n\n", 1, "", false},
        {"unknown name", "x-new.attr_2=1\n\n", 1, "", false},
        {"duplicate keeps first", "sender=a\nsender=b\n\n", 1, "", false},
        {"no '='", "request=x\nbroken\n\n", 0, "line without '='", false},
        {"empty name", "=x\n\n", 0, "empty attribute name", false},
        {"bad name", "na me=x\n\n", 0, "attribute name", false},
        {"NUL in value", std::string("sender=a\0b\n\n", 12), 0, "NUL", false},
        {"empty request", "\n", 0, "empty request", false},
        {"empty after request", std::string(kMinimal) + "\n", 1, "empty request", false},
        {"CR alone is a line", "\r\n", 0, "empty request", false},
        {"good then bad", std::string(kMinimal) + "junk\n", 1, "line without '='", false},
        {"nothing", "", 0, "", false},
    };
    for (const auto& r : rows) {
        const Outcome o = parse(r.in);
        EXPECT_EQ(o.requests.size(), r.want_requests) << r.name;
        EXPECT_EQ(o.failed, *r.want_error != '\0') << r.name << " " << o.error;
        if (*r.want_error) {
            EXPECT_NE(o.error.find(r.want_error), std::string::npos) << r.name << ": " << o.error;
        }
        EXPECT_EQ(o.in_request, r.want_pending) << r.name;
    }
}

TEST(PolicyProtocol, ValuesAndLookup) {
    const Outcome o = parse("sender=a=b@c\nhelo_name=a\rb\nsender=second\nx-new.attr_2=1\nrequest=\r\n\n");
    ASSERT_EQ(o.requests.size(), 1u);
    const PolicyRequest& r = o.requests[0];
    EXPECT_EQ(r.sender, "a=b@c");
    EXPECT_EQ(r.helo_name, "a\rb");
    EXPECT_EQ(r.get("sender"), "a=b@c");  // first value kept
    EXPECT_EQ(r.get("x-new.attr_2"), "1");
    EXPECT_TRUE(r.has("request"));
    EXPECT_EQ(r.get("request"), "");
    EXPECT_FALSE(r.has("recipient"));  // absent, not empty
    EXPECT_EQ(r.get("recipient"), "");
    EXPECT_EQ(r.attribute_count(), 4u);
    EXPECT_FALSE(PolicyRequest::known_index("Sender"));
    EXPECT_EQ(PolicyRequest::known_index("policy_context"), 28u);
}

// Build-then-parse: every known attribute and a few unknown ones, with odd values.
TEST(PolicyProtocol, RoundTrip) {
    PolicyRequest want;
    for (std::size_t i = 0; i < PolicyRequest::kKnownCount; ++i)
        ASSERT_TRUE(want.set(PolicyRequest::known_names()[i], "v" + std::to_string(i) + "=\t\xff"));
    ASSERT_TRUE(want.set("tls_sni", "mail.example.com"));
    ASSERT_TRUE(want.set("z", ""));
    ASSERT_FALSE(want.set("z", "again"));
    std::string text;
    for (std::size_t i = 0; i < PolicyRequest::kKnownCount; ++i)
        text += std::string(PolicyRequest::known_names()[i]) + "=" + want.field(i) + "\n";
    for (const auto& [k, v] : want.other) text += k + "=" + v + "\n";
    text += "\n";
    const Outcome o = parse(text);
    ASSERT_EQ(o.requests.size(), 1u) << o.error;
    EXPECT_EQ(dump(o.requests[0]), dump(want));
}

// Every way of cutting the bytes gives the same requests and the same end state.
TEST(PolicyProtocol, EverySplitPosition) {
    const std::string streams[] = {
        fixture("policy_postfix37_capture.txt") + fixture("policy_example_readme.txt") + kMinimal,
        std::string(kMinimal) + "request=x\r\nsender=a\r\n\r\nrequest=half",
        std::string(kMinimal) + "broken line\n" + kMinimal,
        std::string(kMinimal) + "sender=" + std::string(3000, 'x') + "\n\n",
    };
    for (const auto& s : streams) {
        const std::string whole = dump(parse(s));
        EXPECT_EQ(dump(parse(s, 1)), whole);  // byte by byte
        EXPECT_EQ(dump(parse(s, 7)), whole);
        for (std::size_t cut = 1; cut < s.size(); ++cut) {
            PolicyRequestParser p;
            Outcome o;
            p.feed(s.data(), cut, o.requests);
            p.feed(s.data() + cut, s.size() - cut, o.requests);
            o.failed = p.failed();
            o.error = p.error();
            o.in_request = p.in_request();
            ASSERT_EQ(dump(o), whole) << "cut at " << cut;
        }
    }
}

// Every strict prefix of a valid request is "need more": no request, no error.
TEST(PolicyProtocol, StrictPrefixesNeedMore) {
    const std::string text = fixture("policy_postfix37_capture.txt");
    for (std::size_t n = 0; n < text.size(); ++n) {
        const Outcome o = parse(std::string_view(text).substr(0, n));
        ASSERT_TRUE(o.requests.empty()) << n;
        ASSERT_FALSE(o.failed) << n << " " << o.error;
        ASSERT_EQ(o.in_request, n > 0) << n;
    }
}

TEST(PolicyProtocol, BoundsAtAndPastEachLimit) {
    struct Row {
        const char* name;
        PolicyLimits limits;
        std::string in;
        bool want_ok;
        const char* want_error;
    };
    // A line of `total` bytes before its LF.
    auto line = [](std::size_t total) { return "sender=" + std::string(total - 7, 'x') + "\n"; };
    auto attrs = [](std::size_t n) {
        std::string s;
        for (std::size_t i = 0; i < n; ++i) s += "a" + std::to_string(i) + "=\n";
        return s + "\n";
    };
    // A request of exactly `total` bytes, the final empty line included.
    auto sized = [](std::size_t total) { return "sender=" + std::string(total - 9, 'y') + "\n\n"; };
    const PolicyLimits def{};
    const Row rows[] = {
        {"line at default 2048", def, line(2048) + "\n", true, ""},
        {"line past default 2048", def, line(2049) + "\n", false, "line longer than 2048 bytes"},
        {"CR at the limit", def, line(2047).insert(2047, "\r") + "\n", true, ""},
        {"CR past the limit", def, line(2048).insert(2048, "\r") + "\n", false, "line longer than 2048"},
        {"line at 10", {10, 100, 10}, line(10) + "\n", true, ""},
        {"line past 10", {10, 100, 10}, line(11) + "\n", false, "line longer than 10 bytes"},
        {"request at 16384", {20000, 16384, 100}, sized(16384), true, ""},
        {"request past 16384", {20000, 16384, 100}, sized(16385), false, "request larger than 16384 bytes"},
        {"request at 64", {100, 64, 10}, sized(64), true, ""},
        {"request past 64", {100, 64, 10}, sized(65), false, "request larger than 64 bytes"},
        {"second request sized alone", {100, 64, 10}, sized(64) + sized(64), true, ""},
        {"attributes at 100", def, attrs(100), true, ""},
        {"attributes past 100", def, attrs(101), false, "more than 100 attributes"},
        {"attributes at 3", {100, 1000, 3}, attrs(3), true, ""},
        {"attributes past 3", {100, 1000, 3}, attrs(4), false, "more than 3 attributes"},
        {"duplicates count", {100, 1000, 3}, "a=1\na=2\na=3\na=4\n\n", false, "more than 3 attributes"},
    };
    for (const auto& r : rows) {
        for (std::size_t step : {std::size_t{0}, std::size_t{1}}) {
            const Outcome o = parse(r.in, step, r.limits);
            EXPECT_EQ(!o.failed, r.want_ok) << r.name << " step " << step << ": " << o.error;
            if (!r.want_ok) {
                EXPECT_NE(o.error.find(r.want_error), std::string::npos) << r.name << ": " << o.error;
            } else {
                EXPECT_GE(o.requests.size(), 1u) << r.name;
            }
        }
    }
    // A line past the bound fails before its LF arrives: a peer cannot make us buffer.
    PolicyRequestParser p(PolicyLimits{10, 100, 10});
    EXPECT_TRUE(p.feed("sender=xyz"));
    EXPECT_FALSE(p.feed("w"));
    EXPECT_NE(p.error().find("line longer"), std::string::npos);
}

TEST(PolicyProtocol, FailedStaysFailed) {
    PolicyRequestParser p;
    EXPECT_TRUE(p.feed(kMinimal));
    EXPECT_FALSE(p.feed("oops\n"));
    const std::string err = p.error();
    EXPECT_FALSE(p.feed(kMinimal));
    EXPECT_TRUE(p.failed());
    EXPECT_EQ(p.error(), err);
    ASSERT_EQ(p.ready(), 1u);  // the request before the error is still answered
    EXPECT_TRUE(p.next());
    EXPECT_FALSE(p.next());
}

TEST(PolicyProtocol, NextYieldsInOrder) {
    PolicyRequestParser p;
    ASSERT_TRUE(p.feed("request=a\n\nrequest=b\n\nrequest=c\n"));
    EXPECT_EQ(p.next()->request, "a");
    EXPECT_EQ(p.next()->request, "b");
    EXPECT_FALSE(p.next());
    EXPECT_TRUE(p.in_request());
    ASSERT_TRUE(p.feed("\n"));
    EXPECT_EQ(p.next()->request, "c");
    EXPECT_FALSE(p.in_request());
}

TEST(PolicyProtocol, ReplyEncoder) {
    struct Row {
        std::string action, want;
    };
    const Row rows[] = {
        {"DUNNO", "action=DUNNO\n\n"},
        {"PREPEND X-Original-Source: v=1; ip=192.0.2.1", "action=PREPEND X-Original-Source: v=1; ip=192.0.2.1\n\n"},
        {"550 5.1.1 no\r\naction=OK", "action=550 5.1.1 no  action=OK\n\n"},
        {std::string("450 a\0b", 7), "action=450 a b\n\n"},
        {"", "action=\n\n"},
    };
    for (const auto& r : rows) EXPECT_EQ(encode_policy_reply(r.action), r.want);
}

TEST(PolicyProtocol, SourceInfoMapping) {
    const Outcome o = parse(
        "client_address=2001:db8::7\nclient_port=587\nserver_address=IPv6:2001:db8::1\nserver_port=x\n"
        "client_name=mx.example\nhelo_name=h\nqueue_id=ABC123\ninstance=1.2.3\nencryption_protocol=TLSv1.3\n"
        "encryption_cipher=TLS_AES_128_GCM_SHA256\nencryption_keysize=128\nsasl_username=bob\n\n");
    ASSERT_EQ(o.requests.size(), 1u);
    const SourceInfo s = policy_source_info(o.requests[0]);
    ASSERT_TRUE(s.client);
    EXPECT_EQ(s.client->to_string(), "[2001:db8::7]:587");
    ASSERT_TRUE(s.server);
    EXPECT_EQ(s.server->port, 0);  // "x" is no port
    EXPECT_EQ(s.ptr_name, "mx.example");
    EXPECT_EQ(s.session_id, "ABC123");
    EXPECT_EQ(s.tls.bits, 128u);
    EXPECT_EQ(s.login, "bob");
    const SourceInfo none = policy_source_info(PolicyRequest{});
    EXPECT_FALSE(none.client);
    EXPECT_FALSE(none.server);
}
