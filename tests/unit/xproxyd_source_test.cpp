// xproxyd_source_test: trust decisions (XCLIENT, XFORWARD, XPROXYFROM only from trusted
// upstreams; anyone else gets 550 5.7.0 and nothing changes), the scope of each command
// (XFORWARD: one transaction; XCLIENT/XPROXYFROM: the session), the announcements for
// each downstream encoding (decoded back with common/'s decoders), and connection
// identities (a different original client never shares a PROXY connection).
#include <gtest/gtest.h>

#include <string>

#include "config.hpp"
#include "source.hpp"
#include "xproxy/proxy_protocol.hpp"

using namespace xproxy;
using namespace xproxy::proxyd;

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
    for (const char* line : {"XCLIENT ADDR=127.0.0.66", "XFORWARD ADDR=127.0.0.66 PORT=1",
                             "XPROXYFROM SID=1 IP=127.0.0.66 PORT=1"}) {
        std::string l(line);
        SourceVerdict v = l.rfind("XCLIENT", 0) == 0 ? t.xclient(l) : l.rfind("XFORWARD", 0) == 0 ? t.xforward(l)
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
    proxy::Header h;
    auto r = proxy::decode(reinterpret_cast<const std::uint8_t*>(a.header.data()), a.header.size(), h);
    ASSERT_TRUE(r.complete());
    EXPECT_EQ(r.consumed, a.header.size());
    SourceInfo back;
    proxy::to_source_info(h, back);
    EXPECT_EQ(back.client, s.client);
    EXPECT_EQ(back.helo, "client.example");
    EXPECT_EQ(announce(Encoding::proxy_v1, s).header, "PROXY TCP4 127.0.0.66 127.0.0.1 4242 10025\r\n");
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
    SourceInfo none;
    EXPECT_FALSE(announce(Encoding::xproxyfrom, none).error.empty());
}

TEST(Source, IdentitySeparatesClientsForProxyEncodings) {
    SourceInfo a = peer("127.0.0.66", 1), b = peer("127.0.0.77", 1);
    for (Encoding e : {Encoding::proxy_v2, Encoding::proxy_v1, Encoding::xclient, Encoding::xproxyfrom}) {
        EXPECT_NE(identity(e, a), identity(e, b)) << to_string(e);
        EXPECT_EQ(identity(e, a), identity(e, peer("127.0.0.66", 1))) << to_string(e);
    }
    EXPECT_EQ(identity(Encoding::xforward, a), identity(Encoding::xforward, b));
}

TEST(Config, DownstreamSpecs) {
    std::string err;
    auto d = parse_downstream("legacy destinations=127.0.0.1:2525,[::1]:2526 encoding=xclient tls=verify "
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

TEST(Config, StreamThroughConditions) {
    std::string err;
    EXPECT_EQ(parse_condition("always", &err)->kind, StreamThroughCondition::Kind::always);
    EXPECT_EQ(parse_condition("size-over=1000", &err)->size, 1000u);
    EXPECT_TRUE(parse_condition("client=10.0.0.0/8", &err)->cidr->contains(*IpAddress::parse("10.1.2.3")));
    EXPECT_FALSE(parse_condition("size-over=", &err));
    EXPECT_FALSE(parse_condition("client=10.1.2.3/8", &err));
    EXPECT_FALSE(parse_condition("sometimes", &err));
}
