// xproxyd_submission_test: the submission mode's decisions from the directory: which home
// MTA a login's mail goes to (and how it is announced there), and which senders a login
// may use.
#include <gtest/gtest.h>

#include <string>
#include <tuple>

#include <xproxy/policy/directory_file.hpp>

#include "submission.hpp"

using namespace xproxy;
using namespace xproxy::xproxyd;

namespace {

const char* const kDirectory =
    "mta mta-a destinations=127.0.0.1:2525,127.0.0.2:2526 encoding=xclient\n"
    "mta mta-b destinations=[::1]:2527\n"
    "mta mta-remote destinations=192.0.2.10:25 encoding=xproxy tls=verify tls-name=mta.example.net\n"
    "mta mta-proxy-remote destinations=192.0.2.11:25 encoding=proxy-v2\n"
    "domain example.com home=mta-a\n"
    "user alice@example.com home=mta-a alias=a.smith login=alice\n"
    "user bob@example.com home=mta-b login=secretary\n"
    "user carol@example.com login=shared\n"
    "user ghost@example.com home=nowhere\n"
    "user far@example.com home=mta-remote\n"
    "user proxied@example.com home=mta-proxy-remote\n"
    "user boss@example.com login=assistant state=inactive\n"
    "domain other.example\n"
    "user dave@other.example login=shared\n"
    "domain closed.example services=smtp\n"
    "user erin@closed.example\n";

Directory load() {
    auto d = parse_directory(kDirectory);
    EXPECT_TRUE(d) << d.error();
    return std::move(*d);
}

DownstreamConfig fallback() {
    DownstreamConfig d;
    d.name = "default";
    d.destinations = {Destination{"127.0.0.9", 25, {}}};
    d.encoding = Encoding::xclient;
    d.helo = "xproxyd.example";
    d.command_timeout = std::chrono::seconds(77);
    return d;
}

}  // namespace

TEST(HomeRoute, TheUsersHomeThenTheDomainsThenTheListeners) {
    const Directory dir = load();
    const DownstreamConfig def = fallback();

    HomeRoute a = home_route(dir, "alice@example.com", def);
    ASSERT_TRUE(a.error.empty()) << a.error;
    EXPECT_EQ(a.name, "mta-a");
    ASSERT_EQ(a.config.destinations.size(), 2u);  // failover order kept
    EXPECT_EQ(a.config.destinations[0].to_string(), "127.0.0.1:2525");
    EXPECT_EQ(a.config.destinations[1].to_string(), "127.0.0.2:2526");
    EXPECT_EQ(a.config.encoding, Encoding::xclient);
    EXPECT_EQ(a.config.tls, TlsMode::none);  // loopback: plain by default
    EXPECT_EQ(a.config.helo, "xproxyd.example");
    EXPECT_EQ(a.config.command_timeout, std::chrono::seconds(77));  // from the listener's downstream
    EXPECT_NE(a.config.name, def.name);

    // A login= name finds its user too; an alias of hers is her.
    EXPECT_EQ(home_route(dir, "alice", def).name, "mta-a");
    EXPECT_EQ(home_route(dir, "A.Smith@Example.COM", def).name, "mta-a");

    HomeRoute b = home_route(dir, "bob@example.com", def);
    ASSERT_TRUE(b.error.empty()) << b.error;
    EXPECT_EQ(b.name, "mta-b");
    EXPECT_EQ(b.config.encoding, Encoding::automatic);  // XPROXY if offered, else XCLIENT
    EXPECT_EQ(b.config.destinations[0].host, "::1");

    // carol has no home: her domain's.
    EXPECT_EQ(home_route(dir, "carol@example.com", def).name, "mta-a");
    // dave: neither; a login unknown to the directory: the listener's downstream.
    for (const char* login : {"dave@other.example", "stranger@example.org", "nobody"}) {
        HomeRoute r = home_route(dir, login, def);
        EXPECT_TRUE(r.name.empty()) << login;
        EXPECT_TRUE(r.error.empty()) << login;
    }
    EXPECT_FALSE(home_route(dir, "nobody", def).user.has_value());
    EXPECT_TRUE(home_route(dir, "dave@other.example", def).user.has_value());
}

TEST(HomeRoute, AnUndefinedOrUnsafeHomeIsNoRouteNeverAnotherHome) {
    const Directory dir = load();
    const DownstreamConfig def = fallback();
    HomeRoute ghost = home_route(dir, "ghost@example.com", def);
    EXPECT_EQ(ghost.name, "nowhere");
    EXPECT_NE(ghost.error.find("not defined in the directory"), std::string::npos) << ghost.error;

    // Off this machine: verified TLS by default (here said explicitly, with its name).
    HomeRoute far = home_route(dir, "far@example.com", def);
    ASSERT_TRUE(far.error.empty()) << far.error;
    EXPECT_EQ(far.config.tls, TlsMode::verify);
    EXPECT_EQ(far.config.tls_name, "mta.example.net");
    EXPECT_EQ(far.config.encoding, Encoding::xproxy);

    // An unsigned PROXY header off this machine: refused, as for a --downstream.
    HomeRoute proxied = home_route(dir, "proxied@example.com", def);
    EXPECT_FALSE(proxied.error.empty());
}

TEST(SenderRefusal, OwnAddressesAliasesAndDelegatedOnly) {
    const Directory dir = load();
    EXPECT_FALSE(sender_refusal(dir, "alice@example.com", "alice@example.com"));
    EXPECT_FALSE(sender_refusal(dir, "alice@example.com", "A.Smith@example.com"));
    EXPECT_FALSE(sender_refusal(dir, "alice", "alice@example.com"));  // her login= name
    EXPECT_FALSE(sender_refusal(dir, "secretary", "bob@example.com"));
    EXPECT_FALSE(sender_refusal(dir, "alice@example.com", ""));  // the null sender

    for (const char* sender :
         {"bob@example.com", "nobody@example.com", "x@elsewhere.example", "no-at-sign", "@x", "x@"}) {
        auto r = sender_refusal(dir, "alice@example.com", sender);
        ASSERT_TRUE(r) << sender;
        EXPECT_EQ(r->rfind("553 5.7.1 ", 0), 0u) << *r;
    }
    auto r = sender_refusal(dir, "alice@example.com", "bob@example.com");
    EXPECT_NE(r->find("not owned by user alice@example.com"), std::string::npos) << *r;
    // An inactive account, a domain without the submission service.
    auto inactive = sender_refusal(dir, "assistant", "boss@example.com");
    ASSERT_TRUE(inactive);
    EXPECT_NE(inactive->find("inactive"), std::string::npos) << *inactive;
    auto closed = sender_refusal(dir, "erin@closed.example", "erin@closed.example");
    ASSERT_TRUE(closed);
    EXPECT_NE(closed->find("may not send mail here"), std::string::npos) << *closed;
    // The login must be one active user of the directory, whatever the sender, the null
    // sender included: unknown, listed by two users, inactive, in a domain without submission.
    for (const auto& [login, sender, want] :
         {std::tuple{"stranger@nowhere.example", "", "is not a user of this service"},
          std::tuple{"stranger@nowhere.example", "alice@example.com", "is not a user of this service"},
          std::tuple{"shared", "carol@example.com", "is not a user of this service (or names several)"},
          std::tuple{"shared", "", "is not a user of this service"}, std::tuple{"assistant", "", "is inactive"},
          std::tuple{"erin@closed.example", "", "may not send mail here"}}) {
        auto r2 = sender_refusal(dir, login, sender);
        ASSERT_TRUE(r2) << login << " " << sender;
        EXPECT_EQ(r2->rfind("553 5.7.1 ", 0), 0u) << *r2;
        EXPECT_NE(r2->find(want), std::string::npos) << *r2;
    }
    EXPECT_FALSE(sender_refusal(dir, "dave@other.example", ""));  // an active user: delivery reports
    // Control bytes in the address are never echoed raw.
    auto echoed = sender_refusal(dir, "alice@example.com", "x\x01y@example.com");
    ASSERT_TRUE(echoed);
    EXPECT_EQ(echoed->find('\x01'), std::string::npos);
}

TEST(SenderRefusal, EveryStateOfLoginAndSender) {
    const auto d = parse_directory(
        "domain example.com\n"
        "user full@example.com state=overquota\n"
        "user held@example.com state=hold\n"
        "user off@example.com state=disabled login=ops\n"
        "user gone@example.com state=removed\n"
        "user boss@example.com state=hold login=pa@example.com\n"
        "user team@example.com state=overquota login=pa@example.com\n"
        "user pa@example.com\n"
        "domain busy.example state=overquota\n"
        "user ann@busy.example\n"
        "user ben@busy.example state=disabled\n"
        "domain frozen.example state=hold\n"
        "user cat@frozen.example\n");
    ASSERT_TRUE(d) << d.error();
    const Directory& dir = *d;
    // A full mailbox does not stop its owner from sending; an over-quota domain neither.
    EXPECT_FALSE(sender_refusal(dir, "full@example.com", "full@example.com"));
    EXPECT_FALSE(sender_refusal(dir, "ann@busy.example", "ann@busy.example"));
    EXPECT_FALSE(sender_refusal(dir, "pa@example.com", "team@example.com"));  // a delegated over-quota sender
    for (const auto& [login, sender, want] : {
             std::tuple{"held@example.com", "", "553 5.7.1 Error: account held@example.com is on hold"},
             std::tuple{"ops", "off@example.com", "553 5.7.1 Error: account ops is disabled"},
             std::tuple{"gone@example.com", "", "553 5.7.1 Error: account gone@example.com is deleted"},
             std::tuple{"ben@busy.example", "", "553 5.7.1 Error: account ben@busy.example is disabled"},
             std::tuple{"cat@frozen.example", "", "553 5.7.1 Error: domain frozen.example may not send mail here"},
             // the login may, the held user it sends for may not
             std::tuple{"pa@example.com", "boss@example.com",
                        "553 5.7.1 <boss@example.com>: Sender address rejected: account is on hold"},
         }) {
        const auto r = sender_refusal(dir, login, sender);
        ASSERT_TRUE(r) << login;
        EXPECT_EQ(*r, want);
    }
    // No directory loaded (a backend that was down at start): a tempfail, never "unknown".
    const Directory none;
    EXPECT_EQ(sender_refusal(none, "alice@example.com", "alice@example.com"),
              "451 4.3.0 Error: directory not available, try again later");
}
