// milter_session_test.cpp: xproxy-milter's Session without libmilter: inject and verify
// at end of message, header edits and their order, NULL/IPv6 peers, the policy engine at
// MAIL/RCPT, nothing kept across messages; and TCP_NODELAY inheritance on accept.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <functional>
#include <utility>
#include "milter_socket.hpp"
#include "session.hpp"

#include <xproxy/policy/directory_file.hpp>

#include "expected_value.hpp"

using namespace xproxy;
using namespace xproxy::milter;

namespace {

constexpr std::int64_t kNow = 1790000000;
const char* kRing = "k1 hex:00112233445566778899aabbccddeeff\nk0 hex:ffeeddccbbaa99887766554433221100\n";
const char* kOtherRing = "k1 hex:0102030405060708090a0b0c0d0e0f10\n";

KeyRing ring(const char* text) {
    std::string err;
    auto r = xproxy::test::value_or_error(KeyRing::parse(text), err);
    EXPECT_TRUE(r) << err;
    return std::move(*r);
}

std::shared_ptr<Config> config(Mode mode) {
    auto c = std::make_shared<Config>();
    c->mode = mode;
    c->keys = ring(kRing);
    c->signer = "gw.test";
    return c;
}

Endpoint ep(const char* ip, std::uint16_t port) { return Endpoint{*IpAddress::parse(ip), port}; }

// A header signed for (message_id, sender) by `keys` at time t.
std::string signed_value(const char* ip, const std::string& mid, const std::string& sender, const KeyRing& keys,
                         std::int64_t t = kNow) {
    SourceInfo s;
    s.client = ep(ip, 4242);
    s.helo = "client.example";
    return sign_trace_header(s, "gw0.test", t, MessageBinding{TraceBinding::message_id, mid, sender}, keys);
}

struct Msg {
    std::string sender = "<alice@sender.example>";
    std::string mid = "<m1@client.example>";
    std::vector<std::string> trace;    // X-Original-Source values, in order
    std::vector<std::string> results;  // X-Original-Source-Result values, in order
};

EomResult run(Session& s, const Msg& m, std::int64_t now = kNow) {
    EXPECT_TRUE(s.mail_from(m.sender).is_cont());
    EXPECT_TRUE(s.rcpt_to("<bob@rcpt.example>").is_cont());
    s.header("Subject", "hi");
    for (const auto& t : m.trace) s.header("X-Original-Source", t);
    for (const auto& t : m.results) s.header("x-original-source-result", t);  // any case
    s.header("Message-ID", m.mid);
    auto r = s.end_of_message(now);
    s.abort();
    return r;
}

// Indexes of the removed fields called `name`, in the order of the edits.
std::vector<int> removed(const EomResult& r, std::string_view name = "X-Original-Source") {
    std::vector<int> out;
    for (const auto& e : r.edits)
        if (e.kind == HeaderEdit::Kind::remove && e.name == name) out.push_back(e.index);
    return out;
}

const HeaderEdit* inserted(const EomResult& r, std::string_view name) {
    for (const auto& e : r.edits)
        if (e.kind == HeaderEdit::Kind::insert && e.name == name) return &e;
    return nullptr;
}

TraceVerifyResult check(const std::string& value, const Msg& m, const KeyRing& keys) {
    return verify_trace_header(value, MessageBinding{TraceBinding::message_id, m.mid, m.sender}, keys, kNow, 3600);
}

}  // namespace

TEST(MilterInject, Ipv4PeerGetsSignedHeaderAtTop) {
    auto c = config(Mode::inject);
    Session s(c);
    s.set_macro("{daemon_addr}", "127.0.0.1");
    s.set_macro("{daemon_port}", "25");
    s.set_macro("{client_name}", "unknown");
    s.connect("[127.0.0.66]", ep("127.0.0.66", 40000));
    s.helo("client.example");
    s.set_macro("i", "ABC123");
    Msg m;
    auto r = run(s, m);
    ASSERT_TRUE(r.reply.is_cont());
    EXPECT_TRUE(removed(r).empty());
    const HeaderEdit* h = inserted(r, "X-Original-Source");
    ASSERT_TRUE(h);
    EXPECT_EQ(h->index, 0);
    EXPECT_EQ(h->value.find("X-Original-Source"), std::string::npos);
    auto v = check(h->value, m, c->keys);
    ASSERT_TRUE(v.ok()) << v.reason;
    EXPECT_EQ(v.source.client->to_string(), "127.0.0.66:40000");
    EXPECT_FALSE(v.source.server);  // the header has no server tag
    ASSERT_TRUE(s.source().server);
    EXPECT_EQ(s.source().server->to_string(), "127.0.0.1:25");
    EXPECT_EQ(v.source.helo, "client.example");
    EXPECT_EQ(v.source.ptr_name, "");  // "unknown" and "[...]" are not names
    EXPECT_EQ(v.source.session_id, "ABC123");
    EXPECT_EQ(v.by, "gw.test");
    EXPECT_EQ(v.binding, TraceBinding::message_id);
    EXPECT_NE(s.summary().find("outcome=injected"), std::string::npos) << s.summary();
    EXPECT_NE(s.summary().find("queue_id=ABC123"), std::string::npos) << s.summary();
}

TEST(MilterInject, Ipv6AndTlsAndLogin) {
    auto c = config(Mode::inject);
    Session s(c);
    s.connect("mx.client.example", ep("2001:db8::7", 5555));
    s.set_macro("{tls_version}", "TLSv1.3");
    s.set_macro("{cipher}", "TLS_AES_256_GCM_SHA384");
    s.set_macro("{cipher_bits}", "256");
    s.set_macro("{auth_authen}", "alice@sender.example");
    Msg m;
    auto r = run(s, m);
    auto v = check(inserted(r, "X-Original-Source")->value, m, c->keys);
    ASSERT_TRUE(v.ok()) << v.reason;
    EXPECT_EQ(v.source.client->addr.to_string(), "2001:db8::7");
    EXPECT_EQ(v.source.ptr_name, "mx.client.example");
    EXPECT_EQ(v.source.tls.version, "TLSv1.3");
    EXPECT_EQ(v.source.tls.bits, 256u);
    EXPECT_EQ(v.source.login, "alice@sender.example");
    EXPECT_EQ(v.source.protocol, "ESMTPSA");
}

TEST(MilterInject, NullHostaddrFallsBackToSendmailIpv6Macro) {
    auto c = config(Mode::inject);
    Session s(c);
    s.set_macro("{client_addr}", "IPv6:2001:db8::9");
    s.set_macro("{client_port}", "2525");
    s.connect("[IPv6:2001:db8::9]", std::nullopt);
    Msg m;
    auto r = run(s, m);
    auto v = check(inserted(r, "X-Original-Source")->value, m, c->keys);
    ASSERT_TRUE(v.ok()) << v.reason;
    EXPECT_EQ(v.source.client->to_string(), "[2001:db8::9]:2525");
}

TEST(MilterInject, NullHostaddrWithoutMacroStillSigns) {
    auto c = config(Mode::inject);
    Session s(c);
    s.connect("localhost", std::nullopt);
    Msg m;
    auto r = run(s, m);
    ASSERT_TRUE(r.reply.is_cont());
    auto v = check(inserted(r, "X-Original-Source")->value, m, c->keys);
    ASSERT_TRUE(v.ok()) << v.reason;
    EXPECT_FALSE(v.source.client);
    EXPECT_NE(s.summary().find("original=-"), std::string::npos);
}

TEST(MilterInject, ForgedHeadersRemovedHighestIndexFirst) {
    auto c = config(Mode::inject);
    Session s(c);
    s.connect("x", ep("192.0.2.1", 1));
    Msg m;
    m.trace = {"v=1; forged", signed_value("10.9.9.9", m.mid, m.sender, c->keys), "junk\x01"};
    auto r = run(s, m);
    EXPECT_EQ(removed(r), (std::vector<int>{3, 2, 1}));
    // Removals come before the insertion.
    ASSERT_EQ(r.edits.size(), 4u);
    EXPECT_EQ(r.edits.back().kind, HeaderEdit::Kind::insert);
    EXPECT_NE(s.summary().find("removed=3"), std::string::npos) << s.summary();
}

TEST(MilterInject, TrustedUpstreamKeepsValidTopmostHeader) {
    auto c = config(Mode::inject);
    c->trusted_upstreams = *CidrSet::parse("192.0.2.0/24");
    Session s(c);
    s.connect("x", ep("192.0.2.1", 1));
    Msg m;
    m.trace = {signed_value("10.9.9.9", m.mid, m.sender, c->keys), "v=1; junk below"};
    auto r = run(s, m);
    ASSERT_TRUE(r.reply.is_cont());
    EXPECT_EQ(removed(r), (std::vector<int>{2}));
    EXPECT_FALSE(inserted(r, "X-Original-Source"));
    EXPECT_NE(s.summary().find("outcome=kept"), std::string::npos);
    EXPECT_NE(s.summary().find("original=10.9.9.9:4242"), std::string::npos) << s.summary();
}

TEST(MilterInject, TrustedUpstreamValidHeaderBelowForgedOneDoesNotCount) {
    // A replayed valid header under a bad topmost one: the upstream's own header is the
    // topmost, and it does not verify, so this hop signs what it saw.
    auto c = config(Mode::inject);
    c->trusted_upstreams = *CidrSet::parse("192.0.2.0/24");
    Session s(c);
    s.connect("x", ep("192.0.2.1", 1));
    Msg m;
    m.trace = {"v=1; forged", signed_value("10.9.9.9", m.mid, m.sender, c->keys)};
    auto r = run(s, m);
    ASSERT_TRUE(r.reply.is_cont());
    EXPECT_EQ(removed(r), (std::vector<int>{2, 1}));
    ASSERT_TRUE(inserted(r, "X-Original-Source"));
    auto v = check(inserted(r, "X-Original-Source")->value, m, c->keys);
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v.source.client->addr.to_string(), "192.0.2.1");
}

TEST(MilterInject, ResultHeadersFromOutsideAreRemoved) {
    // A client's own verdict ("pass" for an address of its choice) must not reach the
    // next hop or the mailbox, whether the peer is trusted or not.
    for (bool trusted : {false, true}) {
        SCOPED_TRACE(trusted);
        auto c = config(Mode::inject);
        if (trusted) c->trusted_upstreams = *CidrSet::parse("192.0.2.0/24");
        Session s(c);
        s.connect("x", ep("192.0.2.1", 1));
        Msg m;
        m.trace = {signed_value("10.9.9.9", m.mid, m.sender, c->keys)};
        m.results = {"pass ip=10.9.9.9; kid=k1; signer=x; by=gw.test", "pass ip=10.8.8.8"};
        auto r = run(s, m);
        ASSERT_TRUE(r.reply.is_cont());
        EXPECT_EQ(removed(r, kResultFieldName), (std::vector<int>{2, 1}));
        EXPECT_FALSE(inserted(r, kResultFieldName));
    }
}

TEST(MilterInject, TrustedUpstreamWithInvalidHeaderGetsOurs) {
    auto c = config(Mode::inject);
    c->trusted_upstreams = *CidrSet::parse("192.0.2.0/24");
    Session s(c);
    s.connect("x", ep("192.0.2.1", 1));
    Msg m;
    m.trace = {signed_value("10.9.9.9", "<other@x>", m.sender, c->keys)};  // copied from another message
    auto r = run(s, m);
    EXPECT_EQ(removed(r), (std::vector<int>{1}));
    auto v = check(inserted(r, "X-Original-Source")->value, m, c->keys);
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v.source.client->addr.to_string(), "192.0.2.1");
}

TEST(MilterInject, UntrustedPeerLosesEvenAValidHeader) {
    auto c = config(Mode::inject);  // trusts nobody
    Session s(c);
    s.connect("x", ep("192.0.2.1", 1));
    Msg m;
    m.trace = {signed_value("10.9.9.9", m.mid, m.sender, c->keys)};
    auto r = run(s, m);
    EXPECT_EQ(removed(r), (std::vector<int>{1}));
    EXPECT_TRUE(inserted(r, "X-Original-Source"));
}

TEST(MilterInject, NoMessageIdBindsEnvelope) {
    auto c = config(Mode::inject);
    Session s(c);
    s.connect("x", ep("192.0.2.1", 1));
    ASSERT_TRUE(s.mail_from("<a@b.example>").is_cont());
    auto r = s.end_of_message(kNow);
    auto v = verify_trace_header(inserted(r, "X-Original-Source")->value,
                                 MessageBinding{TraceBinding::message_id, "<later-added@x>", "a@b.example"}, c->keys,
                                 kNow, 60);
    ASSERT_TRUE(v.ok()) << v.reason;
    EXPECT_EQ(v.binding, TraceBinding::envelope);
}

TEST(MilterInject, NothingSurvivesAbort) {
    auto c = config(Mode::inject);
    Session s(c);
    s.connect("x", ep("192.0.2.1", 1));
    s.set_macro("i", "Q1");
    ASSERT_TRUE(s.mail_from("<a@b.example>").is_cont());
    s.header("X-Original-Source", "forged");
    s.header("Message-ID", "<one@x>");
    s.abort();
    EXPECT_EQ(s.macro("i"), "");
    ASSERT_TRUE(s.mail_from("<c@d.example>").is_cont());
    auto r = s.end_of_message(kNow);
    EXPECT_TRUE(removed(r).empty());
    auto v = check(inserted(r, "X-Original-Source")->value, Msg{"<c@d.example>", "", {}, {}}, c->keys);
    ASSERT_TRUE(v.ok()) << v.reason;
    EXPECT_EQ(v.binding, TraceBinding::envelope);
    EXPECT_EQ(v.source.session_id, "");
}

TEST(MilterInject, PolicyEngineAtMailAndRcpt) {
    auto c = config(Mode::inject);
    std::string err;
    ASSERT_TRUE(c->policy.enable({"vdomains", "deposit"}));
    auto dir = xproxy::test::value_or_error(parse_directory("domain example.com state=active services=smtp,submission\n"
                                                            "user alice@example.com state=active\n"),
                                            err);
    ASSERT_TRUE(dir) << err;
    c->directory = std::make_shared<const Directory>(std::move(*dir));
    Session s(c);
    s.connect("x", ep("192.0.2.1", 1));
    auto mail = s.mail_from("<alice@example.com>");  // hosted sender, not authenticated
    EXPECT_EQ(mail.kind, Reply::Kind::reject);
    EXPECT_EQ(mail.code, "550");
    s.abort();
    ASSERT_TRUE(s.mail_from("<x@elsewhere.example>").is_cont());
    auto rcpt = s.rcpt_to("<nobody@example.com>");
    EXPECT_EQ(rcpt.kind, Reply::Kind::reject);
    EXPECT_EQ(rcpt.status, "5.1.1");
    EXPECT_NE(rcpt.text.find("nobody@example.com"), std::string::npos);
    EXPECT_TRUE(s.rcpt_to("<alice@example.com>").is_cont());
    s.abort();
    s.set_macro("{auth_authen}", "alice@example.com");
    EXPECT_TRUE(s.mail_from("<alice@example.com>").is_cont());
}

TEST(MilterInject, HeldRecipientHoldsTheMessage) {
    auto c = config(Mode::inject);
    std::string err;
    ASSERT_TRUE(c->policy.enable({"vdomains"}));
    auto dir = xproxy::test::value_or_error(parse_directory("domain example.com\n"
                                                            "user alice@example.com\n"
                                                            "user held@example.com state=hold\n"
                                                            "user full@example.com state=overquota\n"
                                                            "user off@example.com state=disabled\n"),
                                            err);
    ASSERT_TRUE(dir) << err;
    c->directory = std::make_shared<const Directory>(std::move(*dir));
    Session s(c);
    s.connect("x", ep("192.0.2.1", 1));
    ASSERT_TRUE(s.mail_from("<x@elsewhere.example>").is_cont());
    const auto full = s.rcpt_to("<full@example.com>");
    EXPECT_EQ(full.kind, Reply::Kind::tempfail);
    EXPECT_EQ(full.code + " " + full.status, "452 4.2.2");
    const auto off = s.rcpt_to("<off@example.com>");
    EXPECT_EQ(off.kind, Reply::Kind::reject);
    EXPECT_EQ(off.code + " " + off.status, "550 5.2.1");
    EXPECT_TRUE(s.rcpt_to("<alice@example.com>").is_cont());
    EXPECT_TRUE(s.rcpt_to("<held@example.com>").is_cont());  // accepted: held at end of message
    s.header("Message-ID", "<m@x>");
    auto r = s.end_of_message(kNow);
    EXPECT_TRUE(r.reply.is_cont());
    EXPECT_EQ(r.hold, "<held@example.com>: Mailbox on hold");
    EXPECT_TRUE(inserted(r, "X-Original-Source"));  // still signed
    EXPECT_NE(s.summary().find("outcome=injected"), std::string::npos) << s.summary();
    EXPECT_NE(s.summary().find("hold=vdomains:user_hold"), std::string::npos) << s.summary();
    s.abort();
    // The next message on the connection is not held.
    ASSERT_TRUE(s.mail_from("<x@elsewhere.example>").is_cont());
    EXPECT_TRUE(s.rcpt_to("<alice@example.com>").is_cont());
    EXPECT_EQ(s.end_of_message(kNow).hold, "");
    EXPECT_EQ(s.summary().find("hold="), std::string::npos) << s.summary();
}

TEST(MilterInject, DirectoryNotLoadedDefers) {
    auto c = config(Mode::inject);
    ASSERT_TRUE(c->policy.enable({"vdomains"}));  // directory left as constructed: not loaded
    Session s(c);
    s.connect("x", ep("192.0.2.1", 1));
    const auto mail = s.mail_from("<x@elsewhere.example>");
    EXPECT_EQ(mail.kind, Reply::Kind::tempfail);
    EXPECT_EQ(mail.code + " " + mail.status + " " + mail.text, "451 4.3.0 Directory not available, try again later");
}

// ---- verify ----

struct VerifyRow {
    const char* name;
    std::function<std::string(const Msg&, const KeyRing&)> make;  // "" = no header
    const char* want_outcome;
};

TEST(MilterVerify, Verdicts) {
    auto other = ring(kOtherRing);
    auto unknown = ring("k9 hex:00112233445566778899aabbccddeeff\n");
    std::vector<VerifyRow> rows = {
        {"valid", [](const Msg& m, const KeyRing& k) { return signed_value("127.0.0.66", m.mid, m.sender, k); },
         "verified"},
        {"bad_signature",
         [&](const Msg& m, const KeyRing&) { return signed_value("127.0.0.66", m.mid, m.sender, other); }, "invalid"},
        {"unknown_key",
         [&](const Msg& m, const KeyRing&) { return signed_value("127.0.0.66", m.mid, m.sender, unknown); }, "invalid"},
        {"expired",
         [](const Msg& m, const KeyRing& k) {
             return signed_value("127.0.0.66", m.mid, m.sender, k, kNow - 8 * 86400);
         },
         "invalid"},
        {"wrong_binding",
         [](const Msg& m, const KeyRing& k) { return signed_value("127.0.0.66", "<copied@x>", m.sender, k); },
         "invalid"},
        {"malformed", [](const Msg&, const KeyRing&) { return std::string("v=1; ip=1.2.3.4"); }, "invalid"},
        {"missing", [](const Msg&, const KeyRing&) { return std::string(); }, "missing"},
    };
    for (const auto& row : rows) {
        SCOPED_TRACE(row.name);
        auto c = config(Mode::verify);
        Session s(c);
        s.connect("gw", ep("127.0.0.1", 1000));
        Msg m;
        std::string v = row.make(m, c->keys);
        if (!v.empty()) m.trace = {v};
        auto r = run(s, m);
        EXPECT_NE(s.summary().find(std::string("outcome=") + row.want_outcome), std::string::npos) << s.summary();
        if (std::string(row.want_outcome) == "verified") {
            EXPECT_TRUE(r.reply.is_cont());
            EXPECT_EQ(removed(r), (std::vector<int>{1}));
            const HeaderEdit* res = inserted(r, kResultFieldName);
            ASSERT_TRUE(res);
            EXPECT_NE(res->value.find("pass ip=127.0.0.66"), std::string::npos) << res->value;
        } else {
            EXPECT_EQ(r.reply.kind, Reply::Kind::reject);
            EXPECT_EQ(r.reply.code, "550");
            EXPECT_TRUE(r.edits.empty());
            if (std::string(row.name) != "missing") {
                EXPECT_NE(s.summary().find(std::string("verdict=") + row.name), std::string::npos) << s.summary();
            }
        }
    }
}

TEST(MilterVerify, AcceptActionStripsAndRecords) {
    auto c = config(Mode::verify);
    c->on_invalid = FailAction::accept;
    Session s(c);
    s.connect("gw", ep("127.0.0.1", 1000));
    Msg m;
    m.trace = {"v=1; forged", "also forged"};
    auto r = run(s, m);
    EXPECT_TRUE(r.reply.is_cont());
    EXPECT_EQ(removed(r), (std::vector<int>{2, 1}));
    ASSERT_TRUE(inserted(r, kResultFieldName));
    EXPECT_EQ(inserted(r, kResultFieldName)->value.rfind("fail (malformed)", 0), 0u);
}

TEST(MilterVerify, TempfailAction) {
    auto c = config(Mode::verify);
    c->on_missing = FailAction::tempfail;
    Session s(c);
    s.connect("gw", ep("127.0.0.1", 1000));
    auto r = run(s, Msg{});
    EXPECT_EQ(r.reply.kind, Reply::Kind::tempfail);
    EXPECT_EQ(r.reply.code, "451");
    EXPECT_EQ(r.reply.status, "4.7.1");
}

TEST(MilterVerify, NullSenderWithoutHeaderIsDeferredNeverAccepted) {
    // A DSN from an inject hop that does not sign bounces waits in that hop's queue; a
    // null sender is no proof of anything, so it is never accepted by rule, and a header
    // that is present but bad is refused like any other.
    struct Row {
        const char* name;
        const char* sender;
        bool with_header;  // a header that does not verify
        Reply::Kind want;
        const char* want_code;
    };
    const Row rows[] = {
        {"smtpd_null_sender", "<>", false, Reply::Kind::tempfail, "451"},
        {"cleanup_null_sender", "", false, Reply::Kind::tempfail, "451"},
        {"ordinary_sender", "<a@sender.example>", false, Reply::Kind::reject, "550"},
        {"null_sender_bad_header", "<>", true, Reply::Kind::reject, "550"},
    };
    for (const auto& row : rows) {
        SCOPED_TRACE(row.name);
        auto c = config(Mode::verify);
        Session s(c);
        s.connect("gw", ep("127.0.0.1", 1000));
        Msg m;
        m.sender = row.sender;
        if (row.with_header) m.trace = {signed_value("127.0.0.1", m.mid, m.sender, ring(kOtherRing))};
        auto r = run(s, m);
        EXPECT_EQ(r.reply.kind, row.want);
        EXPECT_EQ(r.reply.code, row.want_code);
    }
}

TEST(MilterVerify, BlockListDecidesOnOriginalNotPeer) {
    auto c = config(Mode::verify);
    c->block_list = *CidrSet::parse("127.0.0.66/32");
    for (const char* ip : {"127.0.0.66", "127.0.0.77"}) {
        SCOPED_TRACE(ip);
        Session s(c);
        s.connect("gw", ep("127.0.0.66", 1000));  // the peer is irrelevant
        Msg m;
        m.trace = {signed_value(ip, m.mid, m.sender, c->keys)};
        auto r = run(s, m);
        if (std::string(ip) == "127.0.0.66") {
            EXPECT_EQ(r.reply.kind, Reply::Kind::reject);
            EXPECT_NE(r.reply.text.find("127.0.0.66"), std::string::npos);
        } else {
            EXPECT_TRUE(r.reply.is_cont());
        }
    }
}

TEST(MilterVerify, KeepHeaderRemovesOnlyTheOthers) {
    auto c = config(Mode::verify);
    c->keep_header = true;
    c->result_header = false;
    Session s(c);
    s.connect("gw", ep("127.0.0.1", 1000));
    Msg m;
    m.trace = {signed_value("127.0.0.77", m.mid, m.sender, c->keys), "v=1; forged", "v=1; forged2"};
    auto r = run(s, m);
    EXPECT_TRUE(r.reply.is_cont());
    EXPECT_EQ(removed(r), (std::vector<int>{3, 2}));
    EXPECT_FALSE(inserted(r, kResultFieldName));
}

TEST(MilterVerify, TopmostHeaderDecides) {
    struct Row {
        const char* name;
        bool topmost_valid;
        bool want_verified;
    };
    const Row rows[] = {
        {"topmost_bad_lower_valid", false, false},
        {"topmost_valid_lower_junk", true, true},
    };
    for (const auto& row : rows) {
        SCOPED_TRACE(row.name);
        auto c = config(Mode::verify);
        Session s(c);
        s.connect("gw", ep("127.0.0.1", 1000));
        Msg m;
        std::string valid = signed_value("127.0.0.77", m.mid, m.sender, c->keys);
        // An older header of the same message and sender, replayed further down, or junk.
        std::string bad = signed_value("127.0.0.66", m.mid, m.sender, ring(kOtherRing));
        m.trace = row.topmost_valid ? std::vector<std::string>{valid, "v=1; junk"}
                                    : std::vector<std::string>{bad, valid};
        auto r = run(s, m);
        if (row.want_verified) {
            EXPECT_TRUE(r.reply.is_cont());
            EXPECT_NE(s.summary().find("outcome=verified"), std::string::npos) << s.summary();
            ASSERT_TRUE(inserted(r, kResultFieldName));
            EXPECT_NE(inserted(r, kResultFieldName)->value.find("pass ip=127.0.0.77"), std::string::npos);
        } else {
            EXPECT_EQ(r.reply.kind, Reply::Kind::reject);
            EXPECT_NE(s.summary().find("outcome=invalid verdict=bad_signature"), std::string::npos) << s.summary();
        }
    }
}

TEST(MilterVerify, IncomingResultHeadersAreReplaced) {
    struct Row {
        const char* name;
        bool valid;
        bool result_header;
        const char* want_prefix;  // our result header, or nullptr for none
    };
    const Row rows[] = {
        {"valid", true, true, "pass ip=127.0.0.77"},
        {"invalid_accepted", false, true, "fail (bad_signature)"},
        {"valid_no_result_header", true, false, nullptr},
    };
    for (const auto& row : rows) {
        SCOPED_TRACE(row.name);
        auto c = config(Mode::verify);
        c->on_invalid = FailAction::accept;
        c->result_header = row.result_header;
        Session s(c);
        s.connect("gw", ep("127.0.0.1", 1000));
        Msg m;
        const KeyRing other = ring(kOtherRing);
        m.trace = {signed_value("127.0.0.77", m.mid, m.sender, row.valid ? std::as_const(c->keys) : other)};
        m.results = {"pass ip=10.9.9.9; kid=k1; signer=x; by=gw.test", "pass", "none"};
        auto r = run(s, m);
        ASSERT_TRUE(r.reply.is_cont());
        EXPECT_EQ(removed(r, kResultFieldName), (std::vector<int>{3, 2, 1}));
        const HeaderEdit* ours = inserted(r, kResultFieldName);
        if (!row.want_prefix) {
            EXPECT_FALSE(ours);
            continue;
        }
        ASSERT_TRUE(ours);
        EXPECT_EQ(ours->value.rfind(row.want_prefix, 0), 0u) << ours->value;
        // Our header is inserted after every removal, so no removal index can hit it.
        EXPECT_EQ(&r.edits.back(), ours);
    }
}

TEST(MilterVerify, PolicyEngineRunsOnOriginalSource) {
    auto c = config(Mode::verify);
    std::string err;
    ASSERT_TRUE(c->policy.enable({"vdomains"}));
    auto dir = xproxy::test::value_or_error(parse_directory("domain rcpt.example state=active\n"), err);
    ASSERT_TRUE(dir) << err;
    c->directory = std::make_shared<const Directory>(std::move(*dir));
    Session s(c);
    s.connect("gw", ep("127.0.0.1", 1000));
    Msg m;
    m.trace = {signed_value("127.0.0.77", m.mid, m.sender, c->keys)};
    auto r = run(s, m);  // bob@rcpt.example does not exist
    EXPECT_EQ(r.reply.kind, Reply::Kind::reject);
    EXPECT_EQ(r.reply.status, "5.1.1");
}

TEST(MilterVerify, HeldRecipientOfTheOriginalSource) {
    auto c = config(Mode::verify);
    std::string err;
    ASSERT_TRUE(c->policy.enable({"vdomains"}));
    auto dir = xproxy::test::value_or_error(
        parse_directory("domain rcpt.example state=hold\nuser bob@rcpt.example state=overquota\n"), err);
    ASSERT_TRUE(dir) << err;
    c->directory = std::make_shared<const Directory>(std::move(*dir));
    Session s(c);
    s.connect("gw", ep("127.0.0.1", 1000));
    Msg m;
    m.trace = {signed_value("127.0.0.77", m.mid, m.sender, c->keys)};
    auto r = run(s, m);  // the domain's hold comes before bob's own (deferring) state
    EXPECT_TRUE(r.reply.is_cont());
    EXPECT_EQ(r.hold, "<bob@rcpt.example>: Mail domain on hold");
    EXPECT_NE(s.summary().find("outcome=verified"), std::string::npos) << s.summary();
    EXPECT_NE(s.summary().find("hold=vdomains:domain_hold"), std::string::npos) << s.summary();
}

TEST(MilterVerify, DisabledRecipientInAHeldDomainIsRefusedNotHeld) {
    auto c = config(Mode::verify);
    std::string err;
    ASSERT_TRUE(c->policy.enable({"vdomains"}));
    auto dir = xproxy::test::value_or_error(
        parse_directory("domain rcpt.example state=hold\nuser bob@rcpt.example state=disabled\n"), err);
    ASSERT_TRUE(dir) << err;
    c->directory = std::make_shared<const Directory>(std::move(*dir));
    Session s(c);
    s.connect("gw", ep("127.0.0.1", 1000));
    Msg m;
    m.trace = {signed_value("127.0.0.77", m.mid, m.sender, c->keys)};
    auto r = run(s, m);  // bob's own refusal wins over the domain's hold
    EXPECT_EQ(r.reply.kind, Reply::Kind::reject);
    EXPECT_EQ(r.reply.code + " " + r.reply.status, "550 5.2.1");
    EXPECT_EQ(r.hold, "");
    EXPECT_EQ(s.summary().find("hold="), std::string::npos) << s.summary();
}

TEST(MilterInject, DeletedRecipientInAHeldDomainIsRefusedNotHeld) {
    auto c = config(Mode::inject);
    std::string err;
    ASSERT_TRUE(c->policy.enable({"vdomains"}));
    auto dir = xproxy::test::value_or_error(parse_directory("domain held.example state=hold\n"
                                                            "user gone@held.example state=deleted\n"
                                                            "user off@held.example state=disabled\n"
                                                            "user ann@held.example\n"),
                                            err);
    ASSERT_TRUE(dir) << err;
    c->directory = std::make_shared<const Directory>(std::move(*dir));
    Session s(c);
    s.connect("x", ep("192.0.2.1", 1));
    ASSERT_TRUE(s.mail_from("<x@elsewhere.example>").is_cont());
    const auto gone = s.rcpt_to("<gone@held.example>");
    EXPECT_EQ(gone.kind, Reply::Kind::reject);
    EXPECT_EQ(gone.code + " " + gone.status, "550 5.1.6");
    const auto off = s.rcpt_to("<off@held.example>");
    EXPECT_EQ(off.kind, Reply::Kind::reject);
    EXPECT_EQ(off.code + " " + off.status, "550 5.2.1");
    s.header("Message-ID", "<m@x>");
    const auto r = s.end_of_message(kNow);
    EXPECT_EQ(r.hold, "");  // no refused recipient sets a hold
    EXPECT_EQ(s.summary().find("hold="), std::string::npos) << s.summary();
    s.abort();
    // An active user of the held domain is still held.
    ASSERT_TRUE(s.mail_from("<x@elsewhere.example>").is_cont());
    EXPECT_TRUE(s.rcpt_to("<ann@held.example>").is_cont());
    s.header("Message-ID", "<m2@x>");
    EXPECT_EQ(s.end_of_message(kNow).hold, "<ann@held.example>: Mail domain on hold");
}

TEST(MilterSession, MacroNamesWithOrWithoutBraces) {
    Session s(config(Mode::inject));
    s.set_macro("{client_addr}", "1.2.3.4");
    EXPECT_EQ(s.macro("client_addr"), "1.2.3.4");
    EXPECT_EQ(s.macro("{client_addr}"), "1.2.3.4");
    s.set_macro("{}", "x");
    EXPECT_EQ(s.macro("{}"), "");
}

TEST(MilterSocket, AcceptedConnectionInheritsNodelay) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(l, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(listen(l, 4), 0);
    EXPECT_TRUE(listening_fds().count(l));
    ASSERT_TRUE(set_nodelay_if_tcp(l));
    socklen_t len = sizeof a;
    ASSERT_EQ(getsockname(l, reinterpret_cast<sockaddr*>(&a), &len), 0);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    int acc = accept(l, nullptr, nullptr);
    ASSERT_GE(acc, 0);
    EXPECT_TRUE(has_nodelay(acc));
    EXPECT_FALSE(has_nodelay(c));
    close(acc);
    close(c);
    close(l);
}

TEST(MilterSession, LogLineEscapesUntrustedBytes) {
    Session s(config(Mode::inject));
    s.set_macro("i", "Q\r\n1");
    s.connect("x", ep("192.0.2.1", 1));
    ASSERT_TRUE(s.mail_from("<a\r\nevent=forged\x1b[31m@b.example>").is_cont());
    s.end_of_message(kNow);
    const std::string& line = s.summary();
    EXPECT_EQ(line.find_first_of("\r\n\x1b"), std::string::npos) << line;
    EXPECT_NE(line.find("queue_id=Q\\x0d\\x0a1"), std::string::npos) << line;
    EXPECT_NE(line.find("\\x0d\\x0aevent=forged\\x1b[31m"), std::string::npos) << line;
}

TEST(MilterSession, SourceIsRebuiltForEveryMessage) {
    Session s(config(Mode::inject));
    s.connect("x", ep("192.0.2.1", 1));
    s.set_macro("{auth_authen}", "alice");
    ASSERT_TRUE(s.mail_from("<a@b.example>").is_cont());
    s.set_macro("i", "Q1");
    s.end_of_message(kNow);
    EXPECT_EQ(s.source().session_id, "Q1");
    s.abort();
    ASSERT_TRUE(s.mail_from("<a@b.example>").is_cont());
    s.end_of_message(kNow + 1);
    EXPECT_EQ(s.source().session_id, "");  // the queue id of the previous message is gone
    EXPECT_EQ(s.source().login, "alice");  // the login belongs to the connection
    EXPECT_EQ(s.source().time, kNow + 1);
}
