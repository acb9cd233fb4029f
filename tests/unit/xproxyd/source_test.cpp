// xproxyd_source_test: trust decisions (XCLIENT, XFORWARD, XPROXYFROM only from trusted
// upstreams; anyone else gets 550 5.7.0 and nothing changes), the scope of each command
// (XFORWARD: one transaction; XCLIENT/XPROXYFROM: the session), the announcements for
// each downstream encoding (decoded back with common/'s decoders), and connection
// identities (a different original client never shares a PROXY connection).
#include <gtest/gtest.h>

#include <string>

#include "config.hpp"
#include "source.hpp"
#include <xproxy/wire/proxy_protocol.hpp>

using namespace xproxy;
using namespace xproxy::xproxyd;

namespace {

SourceInfo peer(const char* ip = "127.0.0.1", std::uint16_t port = 40000) {
    SourceInfo s;
    s.client = Endpoint{*IpAddress::parse(ip), port};
    s.server = Endpoint{*IpAddress::parse("127.0.0.1"), 10025};
    s.protocol = "SMTP";
    s.session_id = "S1";
    return s;
}

}  // namespace

TEST(Source, UntrustedPeerIsRefusedAndUnchanged) {
    SourceTracker t(peer("192.0.2.9"), false);
    for (const char* line :
         {"XCLIENT ADDR=127.0.0.66", "XFORWARD ADDR=127.0.0.66 PORT=1", "XPROXYFROM SID=1 IP=127.0.0.66 PORT=1"}) {
        std::string l(line);
        SourceVerdict v = l.rfind("XCLIENT", 0) == 0    ? t.xclient(l)
                          : l.rfind("XFORWARD", 0) == 0 ? t.xforward(l)
                                                        : t.xproxyfrom(l);
        EXPECT_EQ(v.kind, SourceVerdict::Kind::refused) << line;
        EXPECT_EQ(v.reply.rfind("550 5.7.0", 0), 0u) << v.reply;
        EXPECT_EQ(t.effective().client->to_string(), "192.0.2.9:40000") << line;
    }
}

TEST(Source, XforwardLastsOneTransaction) {
    SourceTracker t(peer(), true);
    EXPECT_EQ(t.xforward("XFORWARD NAME=spike.porcupine.org ADDR=127.0.0.66 PORT=5555").kind,
              SourceVerdict::Kind::accepted);
    EXPECT_EQ(t.xforward("XFORWARD HELO=client.example IDENT=ABC PROTO=ESMTP").kind, SourceVerdict::Kind::accepted);
    SourceInfo s = t.effective();
    EXPECT_EQ(s.client->to_string(), "127.0.0.66:5555");
    EXPECT_EQ(s.helo, "client.example");
    EXPECT_EQ(s.session_id, "ABC");
    t.end_transaction();
    EXPECT_EQ(t.effective().client->to_string(), "127.0.0.1:40000");
}

TEST(Source, XclientAndXproxyfromLastTheSession) {
    SourceTracker t(peer(), true);
    EXPECT_EQ(t.xclient("XCLIENT ADDR=127.0.0.77 PORT=2525 HELO=h.example").kind, SourceVerdict::Kind::accepted);
    t.end_transaction();
    EXPECT_EQ(t.effective().client->to_string(), "127.0.0.77:2525");
    EXPECT_EQ(t.xproxyfrom("XPROXYFROM SID=Q1 IP=127.0.0.88 PORT=33 HELO=x.example LAST=False").kind,
              SourceVerdict::Kind::need_more);
    EXPECT_EQ(t.effective().client->to_string(), "127.0.0.77:2525");  // not complete yet
    EXPECT_EQ(t.xproxyfrom("XPROXYFROM LOGIN=bob LAST=True").kind, SourceVerdict::Kind::accepted);
    t.end_transaction();
    SourceInfo s = t.effective();
    EXPECT_EQ(s.client->to_string(), "127.0.0.88:33");
    EXPECT_EQ(s.login, "bob");
    EXPECT_EQ(s.session_id, "Q1");
}

namespace {

TlsInfo hop_tls() {
    TlsInfo t;
    t.version = "TLSv1.3";
    t.cipher = "TLS_AES_256_GCM_SHA384";
    t.bits = 256;
    return t;
}

// The TLS a PROXY v2 announcement of `s` carries, as the downstream decodes it.
TlsInfo announced_tls(const SourceInfo& s) {
    Announcement a = announce(Encoding::proxy_v2, s);
    pp::Header h;
    auto r = pp::decode(reinterpret_cast<const std::uint8_t*>(a.header.data()), a.header.size(), h);
    EXPECT_TRUE(r.complete());
    SourceInfo back;
    pp::to_source_info(h, back);
    return back.tls;
}

bool has_attr(const Announcement& a, const std::string& attr) {
    for (const auto& l : a.lines)
        if (l.find(" " + attr) != std::string::npos) return true;
    return false;
}

}  // namespace

// Postfix's xclient_cmd(): an XCLIENT without HELO, PROTO or LOGIN resets them; NAME,
// ADDR, PORT, DESTADDR, DESTPORT persist. So an unauthenticated client named after an
// authenticated one is never announced with the first one's login.
TEST(Source, XclientResetsHeloProtoLoginLikePostfix) {
    SourceTracker t(peer(), true);
    t.ehlo("hop.example", true);
    ASSERT_EQ(t.xclient("XCLIENT NAME=a.example ADDR=127.0.0.66 PORT=1066 HELO=a.example PROTO=ESMTP LOGIN=alice").kind,
              SourceVerdict::Kind::accepted);
    t.ehlo("a.example", true);
    SourceInfo a = t.effective();
    EXPECT_EQ(a.login, "alice");
    EXPECT_EQ(a.helo, "a.example");
    EXPECT_EQ(a.protocol, "ESMTP");
    EXPECT_TRUE(has_attr(announce(Encoding::xclient, a), "LOGIN=alice"));

    ASSERT_EQ(t.xclient("XCLIENT ADDR=127.0.0.67 PORT=1067").kind, SourceVerdict::Kind::accepted);
    SourceInfo b = t.effective();
    EXPECT_EQ(b.client->to_string(), "127.0.0.67:1067");
    EXPECT_EQ(b.login, "") << "LOGIN of the previous client kept";
    EXPECT_EQ(b.helo, "") << "HELO of the previous client kept";
    EXPECT_EQ(b.protocol, "SMTP");
    EXPECT_EQ(b.ptr_name, "a.example");  // NAME persists in Postfix too
    EXPECT_EQ(b.session_id, "S1");
    for (Encoding e : {Encoding::xclient, Encoding::xforward, Encoding::xproxyfrom}) {
        Announcement an = announce(e, b);
        ASSERT_TRUE(an.error.empty()) << an.error;
        EXPECT_FALSE(has_attr(an, "LOGIN=")) << to_string(e);
        EXPECT_FALSE(has_attr(an, "HELO=a.example")) << to_string(e);
    }
    // The EHLO that follows an XCLIENT without HELO names the client (Postfix's
    // helo_reset() then ehlo_cmd()), and makes the protocol ESMTP.
    t.ehlo("b.example", true);
    EXPECT_EQ(t.effective().helo, "b.example");
    EXPECT_EQ(t.effective().protocol, "ESMTP");

    // LOGIN=[UNAVAILABLE] is no login either.
    ASSERT_EQ(t.xclient("XCLIENT LOGIN=bob").kind, SourceVerdict::Kind::accepted);
    EXPECT_EQ(t.effective().login, "bob");
    ASSERT_EQ(t.xclient("XCLIENT LOGIN=[UNAVAILABLE] HELO=c.example").kind, SourceVerdict::Kind::accepted);
    EXPECT_EQ(t.effective().login, "");
    // An XCLIENT's own HELO stays when the upstream then says EHLO with its own name.
    t.ehlo("hop.example", true);
    EXPECT_EQ(t.effective().helo, "c.example");
}

TEST(Source, XclientAfterXproxyfromKeepsNoSessionIdOfTheOtherClient) {
    SourceTracker t(peer(), true);
    ASSERT_EQ(t.xproxyfrom("XPROXYFROM SID=Q1 IP=127.0.0.88 PORT=33 LOGIN=bob HELO=q.example").kind,
              SourceVerdict::Kind::accepted);
    ASSERT_EQ(t.xclient("XCLIENT ADDR=127.0.0.89 PORT=34").kind, SourceVerdict::Kind::accepted);
    SourceInfo s = t.effective();
    EXPECT_EQ(s.session_id, "S1");
    EXPECT_EQ(s.login, "");
    EXPECT_EQ(s.helo, "");
}

// The upstream's STARTTLS with xproxyd describes the upstream: a client it names is
// announced without TLS; the TCP peer itself is announced with its own TLS.
TEST(Source, HopTlsIsNeverTheNamedClientsTls) {
    {
        SourceTracker t(peer("127.0.0.5"), true);
        t.set_peer_tls(hop_tls());
        t.ehlo("hop.example", true);
        EXPECT_EQ(announced_tls(t.effective()).version, "TLSv1.3");  // the peer itself
        EXPECT_EQ(t.effective().protocol, "ESMTPS");
        ASSERT_EQ(t.xclient("XCLIENT ADDR=127.0.0.66 PORT=1 HELO=c.example").kind, SourceVerdict::Kind::accepted);
        EXPECT_FALSE(t.effective().tls.active());
        EXPECT_FALSE(announced_tls(t.effective()).active()) << "hop TLS announced for the XCLIENT client";
    }
    {
        SourceTracker t(peer("127.0.0.5"), true);
        t.set_peer_tls(hop_tls());
        ASSERT_EQ(t.xforward("XFORWARD ADDR=127.0.0.66 PORT=1").kind, SourceVerdict::Kind::accepted);
        EXPECT_FALSE(announced_tls(t.effective()).active());
        t.end_transaction();
        ASSERT_EQ(t.xproxyfrom("XPROXYFROM SID=Q IP=127.0.0.66 PORT=1").kind, SourceVerdict::Kind::accepted);
        EXPECT_FALSE(announced_tls(t.effective()).active());
    }
    {  // XFORWARD naming no client (only IDENT): the client is still the peer, with its TLS
        SourceTracker t(peer("127.0.0.5"), true);
        t.set_peer_tls(hop_tls());
        ASSERT_EQ(t.xforward("XFORWARD IDENT=Q7").kind, SourceVerdict::Kind::accepted);
        EXPECT_EQ(t.effective().client->to_string(), "127.0.0.5:40000");
        EXPECT_EQ(t.effective().session_id, "Q7");
        EXPECT_TRUE(announced_tls(t.effective()).active());
    }
}

// RFC 3207 4.2: XCLIENT or XPROXYFROM sent before the front-side STARTTLS (in plain
// text, where an on-path attacker can insert it) is forgotten by the handshake: the
// source is the TCP peer again, with its TLS, no HELO and no login, until a trusted
// upstream names a client inside the protected session.
TEST(Source, StarttlsForgetsWhatWasSaidInPlainText) {
    struct Row {
        const char* name;
        void (*before)(SourceTracker&);
    };
    const Row rows[] = {
        {"XCLIENT",
         [](SourceTracker& t) {
             ASSERT_EQ(t.xclient("XCLIENT ADDR=203.0.113.66 PORT=4242 LOGIN=admin HELO=evil.example").kind,
                       SourceVerdict::Kind::accepted);
         }},
        {"XPROXYFROM",
         [](SourceTracker& t) {
             ASSERT_EQ(t.xproxyfrom("XPROXYFROM SID=Q IP=203.0.113.66 PORT=4242 LOGIN=admin").kind,
                       SourceVerdict::Kind::accepted);
         }},
        {"XFORWARD",
         [](SourceTracker& t) {
             ASSERT_EQ(t.xforward("XFORWARD ADDR=203.0.113.66 PORT=4242").kind, SourceVerdict::Kind::accepted);
         }},
        {"EHLO", [](SourceTracker& t) { t.ehlo("before.example", true); }},
    };
    for (const auto& r : rows) {
        SourceTracker t(peer("127.0.0.5"), true);
        t.ehlo("upstream.example", true);
        r.before(t);
        t.set_peer_tls(hop_tls());
        SourceInfo s = t.effective();
        ASSERT_TRUE(s.client) << r.name;
        EXPECT_EQ(s.client->to_string(), "127.0.0.5:40000") << r.name;
        EXPECT_EQ(s.login, "") << r.name;
        EXPECT_EQ(s.helo, "") << r.name << ": HELO from before the handshake";
        EXPECT_EQ(s.session_id, "S1") << r.name;
        EXPECT_TRUE(announced_tls(s).active()) << r.name;
        EXPECT_FALSE(t.overridden()) << r.name;
        t.ehlo("upstream.example", true);
        EXPECT_EQ(t.effective().helo, "upstream.example") << r.name;
        EXPECT_EQ(t.effective().protocol, "ESMTPS") << r.name;
        // Inside TLS, the trusted upstream may name the client again.
        ASSERT_EQ(t.xclient("XCLIENT ADDR=127.0.0.66 PORT=1 LOGIN=alice").kind, SourceVerdict::Kind::accepted);
        EXPECT_EQ(t.effective().client->to_string(), "127.0.0.66:1") << r.name;
        EXPECT_EQ(t.effective().login, "alice") << r.name;
    }
}

// Postfix's "don't mix" rule: an XFORWARD naming the client replaces every client
// attribute; what it leaves out is unknown, not the session's.
TEST(Source, XforwardNeverMixesWithTheSessionsClient) {
    SourceTracker t(peer("127.0.0.5"), true);
    ASSERT_EQ(t.xclient("XCLIENT ADDR=127.0.0.66 PORT=1 LOGIN=alice HELO=a.example").kind,
              SourceVerdict::Kind::accepted);
    ASSERT_EQ(t.xforward("XFORWARD HELO=x.example").kind, SourceVerdict::Kind::accepted);
    SourceInfo s = t.effective();
    EXPECT_FALSE(s.client) << s.client->to_string();
    EXPECT_EQ(s.login, "");
    EXPECT_EQ(s.helo, "x.example");
    EXPECT_EQ(s.session_id, "S1");
}

// A trusted upstream may leave any optional attribute out: every encoding still has
// something to send (never an error that would defer the message on every retry).
TEST(Source, MissingOptionalAttributesNeverFailAnAnnouncement) {
    SourceTracker t(peer(), true);
    ASSERT_EQ(t.xforward("XFORWARD ADDR=127.0.0.66 PORT=5555 HELO=c.example").kind, SourceVerdict::Kind::accepted);
    SourceInfo s = t.effective();
    EXPECT_EQ(s.session_id, "S1") << "no IDENT: the session's own id";
    Announcement x = announce(Encoding::xproxyfrom, s);
    ASSERT_TRUE(x.error.empty()) << x.error;
    ASSERT_EQ(x.lines.size(), 1u);
    EXPECT_NE(x.lines[0].find("SID=S1"), std::string::npos) << x.lines[0];
    EXPECT_NE(x.lines[0].find("IP=127.0.0.66"), std::string::npos) << x.lines[0];
    t.end_transaction();

    ASSERT_EQ(t.xforward("XFORWARD IDENT=[UNAVAILABLE] ADDR=127.0.0.66").kind, SourceVerdict::Kind::accepted);
    EXPECT_EQ(t.effective().session_id, "S1");
    t.end_transaction();

    // Locally submitted mail at the upstream: no client address at all.
    ASSERT_EQ(t.xforward("XFORWARD NAME=[UNAVAILABLE] ADDR=[UNAVAILABLE] PORT=[UNAVAILABLE] SOURCE=LOCAL").kind,
              SourceVerdict::Kind::accepted);
    s = t.effective();
    for (Encoding e : {Encoding::proxy_v2, Encoding::proxy_v1, Encoding::xclient, Encoding::xforward,
                       Encoding::xproxyfrom, Encoding::none}) {
        EXPECT_TRUE(announce(e, s).error.empty()) << to_string(e) << ": " << announce(e, s).error;
    }
    EXPECT_TRUE(announce(Encoding::xproxyfrom, s).lines.empty());

    // Values XPROXYFROM cannot carry are left out, not fatal.
    SourceInfo odd = peer("127.0.0.66", 1);
    odd.helo = "a\r\nb";
    odd.login = std::string("x\0y", 3);
    odd.protocol = "ESMTP";
    Announcement o = announce(Encoding::xproxyfrom, odd);
    ASSERT_TRUE(o.error.empty()) << o.error;
    ASSERT_EQ(o.lines.size(), 1u);
    EXPECT_EQ(o.lines[0].find("HELO="), std::string::npos);
    EXPECT_EQ(o.lines[0].find("LOGIN="), std::string::npos);
    EXPECT_NE(o.lines[0].find("PROTO=ESMTP"), std::string::npos);
}

// A LAST=False XPROXYFROM sequence does not survive RSET, HELO/EHLO, STARTTLS, XCLIENT or
// any other command: its next line alone is incomplete (501), and nothing of it applies.
TEST(Source, UnfinishedXproxyfromSequenceIsAbandoned) {
    const char* first = "XPROXYFROM SID=Q1 IP=127.0.0.88 PORT=33 LAST=False";
    const char* second = "XPROXYFROM LOGIN=bob LAST=True";
    struct Row {
        const char* name;
        void (*between)(SourceTracker&);
    };
    const Row rows[] = {
        {"RSET", [](SourceTracker& t) { t.end_transaction(); }},
        {"EHLO", [](SourceTracker& t) { t.ehlo("hop.example", true); }},
        {"HELO", [](SourceTracker& t) { t.ehlo("hop.example", false); }},
        {"STARTTLS", [](SourceTracker& t) { t.set_peer_tls(hop_tls()); }},
        {"XCLIENT", [](SourceTracker& t) { (void)t.xclient("XCLIENT ADDR=127.0.0.77"); }},
        {"other command", [](SourceTracker& t) { t.abandon_sequence(); }},
    };
    for (const auto& r : rows) {
        SourceTracker t(peer(), true);
        ASSERT_EQ(t.xproxyfrom(first).kind, SourceVerdict::Kind::need_more) << r.name;
        r.between(t);
        EXPECT_EQ(t.xproxyfrom(second).kind, SourceVerdict::Kind::bad) << r.name;
        EXPECT_EQ(t.effective().login, "") << r.name;
        EXPECT_NE(t.effective().client->to_string(), "127.0.0.88:33") << r.name;
    }
    // Unbroken, the sequence applies.
    SourceTracker t(peer(), true);
    ASSERT_EQ(t.xproxyfrom(first).kind, SourceVerdict::Kind::need_more);
    ASSERT_EQ(t.xproxyfrom(second).kind, SourceVerdict::Kind::accepted);
    EXPECT_EQ(t.effective().login, "bob");
}

// XFORWARD lasts one transaction: HELO/EHLO, STARTTLS, XCLIENT and XPROXYFROM end it too
// (Postfix's mail_reset()).
TEST(Source, XforwardEndsWithEhloStarttlsAndReannouncement) {
    const char* fwd = "XFORWARD ADDR=127.0.0.66 PORT=5555 IDENT=F1";
    struct Row {
        const char* name;
        void (*between)(SourceTracker&);
        const char* want_client;
    };
    const Row rows[] = {
        {"EHLO", [](SourceTracker& t) { t.ehlo("hop.example", true); }, "127.0.0.1:40000"},
        {"STARTTLS", [](SourceTracker& t) { t.set_peer_tls(hop_tls()); }, "127.0.0.1:40000"},
        {"XCLIENT", [](SourceTracker& t) { (void)t.xclient("XCLIENT ADDR=127.0.0.77 PORT=7"); }, "127.0.0.77:7"},
        {"XPROXYFROM", [](SourceTracker& t) { (void)t.xproxyfrom("XPROXYFROM SID=Q IP=127.0.0.88 PORT=8"); },
         "127.0.0.88:8"},
    };
    for (const auto& r : rows) {
        SourceTracker t(peer(), true);
        ASSERT_EQ(t.xforward(fwd).kind, SourceVerdict::Kind::accepted) << r.name;
        r.between(t);
        SourceInfo s = t.effective();
        EXPECT_EQ(s.client->to_string(), r.want_client) << r.name;
        EXPECT_NE(s.session_id, "F1") << r.name;
    }
}

// Postfix keeps REVERSE_NAME (NAME sets it only when the name is known) and
// DESTADDR/DESTPORT when an XCLIENT leaves them out: on a connection that announced
// another client, or where Postfix looked up xproxyd itself, they would be someone
// else's. They are always sent when the downstream advertises them.
TEST(Source, XclientAnnouncementLeavesNothingToTheDownstreamsMemory) {
    SourceInfo s = peer("127.0.0.66", 1);
    s.server.reset();
    Announcement a = announce(Encoding::xclient, s);
    ASSERT_TRUE(a.error.empty()) << a.error;
    EXPECT_TRUE(has_attr(a, "REVERSE_NAME=[UNAVAILABLE]"));
    EXPECT_TRUE(has_attr(a, "NAME=[UNAVAILABLE]"));
    EXPECT_TRUE(has_attr(a, "DESTADDR=[UNAVAILABLE]"));
    EXPECT_TRUE(has_attr(a, "DESTPORT=[UNAVAILABLE]"));
    s = peer("127.0.0.66", 1);
    s.ptr_name = "mail.example.org";
    a = announce(Encoding::xclient, s);
    EXPECT_TRUE(has_attr(a, "REVERSE_NAME=mail.example.org"));
    EXPECT_TRUE(has_attr(a, "DESTADDR=127.0.0.1"));
    // Only what the downstream advertised (smtp-sink: NAME HELO).
    a = announce(Encoding::xclient, s, std::set<std::string>{"NAME", "HELO"});
    EXPECT_FALSE(has_attr(a, "REVERSE_NAME="));
    EXPECT_FALSE(has_attr(a, "DESTADDR="));
}

TEST(Source, BadSyntaxFromTrustedPeerIs501) {
    SourceTracker t(peer(), true);
    EXPECT_EQ(t.xclient("XCLIENT ADDR=300.1.1.1").reply.rfind("501 5.5.4", 0), 0u);
    EXPECT_EQ(t.xforward("XFORWARD FOO=1").reply.rfind("501 5.5.4", 0), 0u);
    EXPECT_EQ(t.xproxyfrom("XPROXYFROM IP=1.2.3.4").reply.rfind("501 5.5.4", 0), 0u);
    EXPECT_EQ(t.effective().client->to_string(), "127.0.0.1:40000");
}

TEST(Source, ProxyV2AnnouncementDecodesToTheClient) {
    SourceInfo s = peer("127.0.0.66", 4242);
    s.helo = "client.example";
    Announcement a = announce(Encoding::proxy_v2, s);
    ASSERT_TRUE(a.error.empty()) << a.error;
    pp::Header h;
    auto r = pp::decode(reinterpret_cast<const std::uint8_t*>(a.header.data()), a.header.size(), h);
    ASSERT_TRUE(r.complete());
    EXPECT_EQ(r.consumed, a.header.size());
    SourceInfo back;
    pp::to_source_info(h, back);
    EXPECT_EQ(back.client, s.client);
    EXPECT_EQ(back.helo, "client.example");
    EXPECT_EQ(announce(Encoding::proxy_v1, s).header, "PROXY TCP4 127.0.0.66 127.0.0.1 4242 10025\r\n");
}

// A signed header verifies with the shim's key and is fresh; the same header with the
// client rewritten (what an on-path attacker does before STARTTLS) does not verify.
TEST(Source, SignedProxyV2HeaderDetectsRewriting) {
    SourceInfo s = peer("127.0.0.66", 4242);
    s.login = "alice";
    const std::string key = "0123456789abcdef-shared";
    ProxySigning sign{key, 9, 1790000000};
    Announcement a = announce(Encoding::proxy_v2, s, std::nullopt, &sign);
    ASSERT_TRUE(a.error.empty()) << a.error;
    auto check = [&](const std::string& bytes) {
        pp::Header h;
        auto r = pp::decode(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), h);
        EXPECT_TRUE(r.complete());
        return pp::verify_hmac(reinterpret_cast<const std::uint8_t*>(bytes.data()), r.consumed, h,
                               {key, 1790000010, pp::kHmacWindow});
    };
    EXPECT_EQ(check(a.header), pp::HmacVerdict::ok);
    pp::Header h;
    ASSERT_TRUE(pp::decode(reinterpret_cast<const std::uint8_t*>(a.header.data()), a.header.size(), h).complete());
    EXPECT_EQ(pp::hmac_key_id(h), 9);
    std::string forged = a.header;
    const std::string from("\x7f\x00\x00\x42", 4), to("\x0a\x01\x02\x03", 4);
    ASSERT_NE(forged.find(from), std::string::npos);
    forged.replace(forged.find(from), 4, to);
    EXPECT_EQ(check(forged), pp::HmacVerdict::invalid);
    // Unsigned: nothing to verify (a shim with a key drops it). The identity of a
    // connection does not depend on the signature's time.
    EXPECT_EQ(check(announce(Encoding::proxy_v2, s).header), pp::HmacVerdict::absent);
    EXPECT_EQ(identity(Encoding::proxy_v2, s), identity(Encoding::proxy_v2, s));
}

TEST(Source, CommandAnnouncements) {
    SourceInfo s = peer("127.0.0.66", 4242);
    s.helo = "client.example";
    s.protocol = "ESMTP";
    auto x = announce(Encoding::xclient, s);
    ASSERT_EQ(x.lines.size(), 1u);
    EXPECT_NE(x.lines[0].find("ADDR=127.0.0.66"), std::string::npos) << x.lines[0];
    auto f = announce(Encoding::xforward, s);
    ASSERT_EQ(f.lines.size(), 1u);
    EXPECT_EQ(f.lines[0].rfind("XFORWARD ", 0), 0u);
    auto p = announce(Encoding::xproxyfrom, s);
    ASSERT_EQ(p.lines.size(), 1u) << p.error;
    EXPECT_NE(p.lines[0].find("IP=127.0.0.66"), std::string::npos);
    EXPECT_TRUE(announce(Encoding::none, s).lines.empty());
    SourceInfo none;  // no client: XPROXYFROM is not sent (as PROXY UNKNOWN), never an error
    Announcement n = announce(Encoding::xproxyfrom, none);
    EXPECT_TRUE(n.error.empty()) << n.error;
    EXPECT_TRUE(n.lines.empty());
}

// The submission mode's XPROXY (seed 000 fig. 4): SID, the client's IP and PORT, its EHLO
// as DOMAIN (its address literal without one), the login.
TEST(Source, XproxyAnnouncesTheSubmittingClient) {
    SourceInfo s = peer("127.0.0.66", 4242);
    s.session_id = "08CE780858C360B8";
    s.helo = "mua.example";
    s.login = "alice@example.com";
    auto x = announce(Encoding::xproxy, s);
    ASSERT_EQ(x.lines.size(), 1u) << x.error;
    EXPECT_EQ(x.lines[0],
              "XPROXY SID=08CE780858C360B8 IP=127.0.0.66 PORT=4242 DOMAIN=mua.example "
              "LOGIN=alice@example.com\r\n");
    s.helo.clear();
    s.login.clear();
    x = announce(Encoding::xproxy, s);
    ASSERT_EQ(x.lines.size(), 1u) << x.error;
    EXPECT_EQ(x.lines[0], "XPROXY SID=08CE780858C360B8 IP=127.0.0.66 PORT=4242 DOMAIN=[127.0.0.66]\r\n");
    s.helo = "bad\r\nRSET";  // never sent as it is
    x = announce(Encoding::xproxy, s);
    ASSERT_EQ(x.lines.size(), 1u) << x.error;
    EXPECT_EQ(x.lines[0].find("RSET"), std::string::npos) << x.lines[0];
    EXPECT_TRUE(announce(Encoding::xproxy, SourceInfo{}).lines.empty());  // no client: nothing to say
    // auto is decided after the downstream's EHLO; its connections are bound to the source.
    EXPECT_TRUE(announce(Encoding::automatic, s).lines.empty());
    EXPECT_NE(identity(Encoding::automatic, peer("127.0.0.66", 1)),
              identity(Encoding::automatic, peer("127.0.0.77", 1)));
    EXPECT_EQ(parse_encoding("auto"), Encoding::automatic);
    EXPECT_EQ(parse_encoding("xproxy"), Encoding::xproxy);
    EXPECT_STREQ(to_string(Encoding::automatic), "auto");
}

TEST(Source, IdentitySeparatesClientsForProxyEncodings) {
    SourceInfo a = peer("127.0.0.66", 1), b = peer("127.0.0.77", 1);
    for (Encoding e :
         {Encoding::proxy_v2, Encoding::proxy_v1, Encoding::xclient, Encoding::xproxyfrom, Encoding::xproxy}) {
        EXPECT_NE(identity(e, a), identity(e, b)) << to_string(e);
        EXPECT_EQ(identity(e, a), identity(e, peer("127.0.0.66", 1))) << to_string(e);
    }
    EXPECT_EQ(identity(Encoding::xforward, a), identity(Encoding::xforward, b));
}

TEST(Config, DownstreamSpecs) {
    std::string err;
    auto d = parse_downstream(
        "legacy destinations=127.0.0.1:2525,[::1]:2526 encoding=xclient tls=verify "
        "connect-timeout=5 command-timeout=60 helo=gw.example",
        &err);
    ASSERT_TRUE(d) << err;
    EXPECT_EQ(d->name, "legacy");
    ASSERT_EQ(d->destinations.size(), 2u);
    EXPECT_EQ(d->destinations[1].to_string(), "[::1]:2526");
    EXPECT_EQ(d->encoding, Encoding::xclient);
    EXPECT_EQ(d->tls, TlsMode::verify);
    EXPECT_EQ(d->connect_timeout.count(), 5);
    for (const char* bad : {"x", "x destinations=host:25", "x destinations=1.2.3.4", "x destinations=1.2.3.4:0",
                            "x destinations=1.2.3.4:25 encoding=smtp", "x destinations=1.2.3.4:25 tls=maybe",
                            "x destinations=1.2.3.4:25 colour=blue", "destinations=1.2.3.4:25"}) {
        EXPECT_FALSE(parse_downstream(bad, &err)) << bad;
    }
}

// A PROXY header goes before STARTTLS: only a signature protects it. The combinations
// that would let an on-path attacker rewrite the announced client are refused, and the
// message says what to write.
TEST(Config, UnprotectedProxyHeadersAreRefused) {
    struct Row {
        const char* spec;
        bool want_ok;
        const char* want_error;  // a part of the message
    };
    const Row rows[] = {
        // Off this machine, the defaults (proxy-v2, tls=verify) are refused until signed.
        {"d destinations=192.0.2.1:25", false, "hmac-key-file=PATH"},
        {"d destinations=192.0.2.1:25 encoding=proxy-v1 tls=verify", false, "before STARTTLS"},
        {"d destinations=192.0.2.1:25 encoding=proxy-v2 tls=none", false, "proxy-unsigned=yes only on a segment"},
        {"d destinations=192.0.2.1:25 encoding=proxy-v2 tls=none proxy-unsigned=yes", true, ""},
        {"d destinations=192.0.2.1:25 encoding=proxy-v2 proxy-unsigned=yes", false, "tls=none proxy-unsigned=yes"},
        {"d destinations=192.0.2.1:25 hmac-key-file=/k", true, ""},
        {"d destinations=192.0.2.1:25 hmac-key-file=/k hmac-key-id=7 tls=none", true, ""},
        // On loopback: plain text is fine, TLS without a signature is a false assurance.
        {"d destinations=127.0.0.1:25", true, ""},
        {"d destinations=127.0.0.1:25 encoding=proxy-v2 tls=verify", false, "or tls=none"},
        {"d destinations=127.0.0.1:25 encoding=proxy-v1 tls=may", false, "before STARTTLS"},
        {"d destinations=127.0.0.1:25 encoding=proxy-v2 tls=encrypt hmac-key-file=/k", true, ""},
        // Options that would be silently meaningless.
        {"d destinations=127.0.0.1:25 encoding=proxy-v1 hmac-key-file=/k", false, "need encoding=proxy-v2"},
        {"d destinations=127.0.0.1:25 encoding=xclient hmac-key-file=/k", false, "need encoding=proxy-v2"},
        {"d destinations=127.0.0.1:25 hmac-key-id=2", false, "needs hmac-key-file="},
        {"d destinations=127.0.0.1:25 hmac-key-file=/k hmac-key-id=256", false, "bad value"},
        {"d destinations=127.0.0.1:25 encoding=xforward proxy-unsigned=yes", false, "proxy-unsigned=yes is for"},
        {"d destinations=127.0.0.1:25 hmac-key-file=/k proxy-unsigned=yes", false, "proxy-unsigned=yes is for"},
        // Encodings sent after STARTTLS are protected by it.
        {"d destinations=192.0.2.1:25 encoding=xclient", true, ""},
        {"d destinations=192.0.2.1:25 encoding=xproxyfrom tls=verify", true, ""},
    };
    for (const auto& r : rows) {
        std::string err;
        auto d = parse_downstream(r.spec, &err);
        EXPECT_EQ(d.has_value(), r.want_ok) << r.spec << ": " << err;
        if (!r.want_ok) {
            EXPECT_NE(err.find(r.want_error), std::string::npos) << r.spec << ": " << err;
        }
    }
    std::string err;
    auto d = parse_downstream("d destinations=192.0.2.1:25 hmac-key-file=/k hmac-key-id=7", &err);
    ASSERT_TRUE(d) << err;
    EXPECT_EQ(d->hmac_key_file, "/k");
    EXPECT_EQ(d->hmac_key_id, 7);
    EXPECT_EQ(d->tls, TlsMode::verify);
}

TEST(Config, StreamThroughConditions) {
    std::string err;
    EXPECT_EQ(parse_condition("always", &err)->kind, StreamThroughCondition::Kind::always);
    EXPECT_EQ(parse_condition("size-over=1000", &err)->size, 1000u);
    EXPECT_TRUE(parse_condition("client=10.0.0.0/8", &err)->cidr->contains(*IpAddress::parse("10.1.2.3")));
    EXPECT_FALSE(parse_condition("size-over=", &err));
    EXPECT_FALSE(parse_condition("client=10.1.2.3/8", &err));
    EXPECT_FALSE(parse_condition("sometimes", &err));
}
