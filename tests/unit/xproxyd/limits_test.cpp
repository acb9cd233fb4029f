// xproxyd_limits_test: the resource limits that keep one peer from starving the others:
// sessions in all and per client (IPv6 clients counted per /64, places given back when a
// Slot ends), the spill quota shared by all body copies (a copy that would exceed it
// fails as over quota and gives its bytes back on clear()), and the downstream TLS
// options (closed default, identities, and values that are configuration errors).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "body_buffer.hpp"
#include "config.hpp"
#include "session_limits.hpp"

using namespace xproxy;
using namespace xproxy::xproxyd;

namespace {

IpAddress ip(const char* s) { return *IpAddress::parse(s); }

}  // namespace

TEST(SessionLimits, PerClientAndTotal) {
    SessionLimits lim(5, 2);
    std::vector<SessionLimits::Slot> held(5);
    EXPECT_EQ(lim.acquire(ip("192.0.2.1"), &held[0]), SessionLimits::Verdict::ok);
    EXPECT_EQ(lim.acquire(ip("192.0.2.1"), &held[1]), SessionLimits::Verdict::ok);
    SessionLimits::Slot extra;
    EXPECT_EQ(lim.acquire(ip("192.0.2.1"), &extra), SessionLimits::Verdict::per_client);
    EXPECT_FALSE(extra);
    EXPECT_EQ(lim.acquire(ip("192.0.2.2"), &held[2]), SessionLimits::Verdict::ok);
    EXPECT_EQ(lim.acquire(ip("192.0.2.3"), &held[3]), SessionLimits::Verdict::ok);
    EXPECT_EQ(lim.acquire(ip("192.0.2.3"), &held[4]), SessionLimits::Verdict::ok);
    EXPECT_EQ(lim.acquire(ip("192.0.2.4"), &extra), SessionLimits::Verdict::total);
    EXPECT_EQ(lim.active(), 5u);
    EXPECT_EQ(lim.active(ip("192.0.2.1")), 2u);
    held[0].reset();  // a session ends: its place is free for anyone
    EXPECT_EQ(lim.active(ip("192.0.2.1")), 1u);
    EXPECT_EQ(lim.acquire(ip("192.0.2.4"), &extra), SessionLimits::Verdict::ok);
    EXPECT_EQ(lim.active(), 5u);
}

TEST(SessionLimits, SlotsGiveTheirPlaceBackOnceWhenMovedOrDestroyed) {
    SessionLimits lim(10, 1);
    {
        SessionLimits::Slot a;
        ASSERT_EQ(lim.acquire(ip("192.0.2.1"), &a), SessionLimits::Verdict::ok);
        SessionLimits::Slot b(std::move(a));
        EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): the moved-from state is under test
        EXPECT_TRUE(b);
        SessionLimits::Slot c;
        c = std::move(b);
        EXPECT_EQ(lim.active(), 1u);
        SessionLimits::Slot d;
        EXPECT_EQ(lim.acquire(ip("192.0.2.1"), &d), SessionLimits::Verdict::per_client);
    }
    EXPECT_EQ(lim.active(), 0u);
    EXPECT_EQ(lim.active(ip("192.0.2.1")), 0u);
}

TEST(SessionLimits, Ipv6ClientsCountPerSlash64AndMappedV4AsV4) {
    SessionLimits lim(10, 2);
    SessionLimits::Slot a, b, c, d;
    EXPECT_EQ(lim.acquire(ip("2001:db8:1:2::1"), &a), SessionLimits::Verdict::ok);
    EXPECT_EQ(lim.acquire(ip("2001:db8:1:2:ffff::9"), &b), SessionLimits::Verdict::ok);
    EXPECT_EQ(lim.acquire(ip("2001:db8:1:2::77"), &c), SessionLimits::Verdict::per_client);  // same /64
    EXPECT_EQ(lim.acquire(ip("2001:db8:1:3::1"), &c), SessionLimits::Verdict::ok);           // next /64
    EXPECT_EQ(SessionLimits::client_key(ip("::ffff:192.0.2.1")), SessionLimits::client_key(ip("192.0.2.1")));
    EXPECT_NE(SessionLimits::client_key(ip("192.0.2.1")), SessionLimits::client_key(ip("192.0.2.2")));
    (void)d;
}

TEST(SpillQuota, SharedAcrossBuffersAndGivenBackOnClear) {
    char tmpl[] = "/tmp/xproxyd-quota-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    const std::string dir = tmpl;
    SpillQuota quota(3000);
    std::string err;
    BodyBuffer a(100, dir, &quota), b(100, dir, &quota);
    ASSERT_TRUE(a.append(std::string(2000, 'a'), &err)) << err;  // spilled: 2000 counted
    EXPECT_TRUE(a.spilled());
    EXPECT_EQ(quota.used(), 2000u);
    ASSERT_TRUE(b.append(std::string(50, 'b'), &err));  // in memory: not counted
    EXPECT_EQ(quota.used(), 2000u);
    ASSERT_TRUE(b.append(std::string(900, 'b'), &err));  // spills 950
    EXPECT_EQ(quota.used(), 2950u);
    EXPECT_FALSE(b.append(std::string(51, 'b'), &err));  // 3001 > 3000
    EXPECT_TRUE(b.over_quota());
    EXPECT_TRUE(b.failed());
    EXPECT_NE(err.find("quota"), std::string::npos) << err;
    EXPECT_FALSE(b.append("x", &err));  // stays failed until clear()
    EXPECT_EQ(quota.used(), 2950u);
    ASSERT_TRUE(a.append(std::string(50, 'a'), &err));  // exactly the limit
    EXPECT_EQ(quota.used(), 3000u);
    b.clear();
    EXPECT_FALSE(b.over_quota());
    EXPECT_EQ(quota.used(), 2050u);
    a.clear();
    EXPECT_EQ(quota.used(), 0u);
    {
        BodyBuffer c(10, dir, &quota);
        ASSERT_TRUE(c.append(std::string(3000, 'c'), &err));
        EXPECT_EQ(quota.used(), 3000u);
    }  // destroyed without clear(): still given back
    EXPECT_EQ(quota.used(), 0u);
    BodyBuffer big(10, dir, &quota);
    EXPECT_FALSE(big.append(std::string(3001, 'd'), &err));  // over the quota at the spill itself
    EXPECT_TRUE(big.over_quota());
    big.clear();
    EXPECT_EQ(quota.used(), 0u);
    rmdir(dir.c_str());
}

TEST(DownstreamTls, ClosedDefaultAndOptions) {
    struct Row {
        const char* spec;
        bool want_ok;
        TlsMode want_tls;
        const char* want_error;  // substring, when !want_ok
    };
    // encoding=xclient: a PROXY header's own rules are in xproxyd_source_test.
    const Row rows[] = {
        {"d encoding=xclient destinations=127.0.0.1:25", true, TlsMode::none, ""},  // loopback only: plain
        {"d encoding=xclient destinations=127.0.0.1:25,[::1]:25", true, TlsMode::none, ""},
        {"d encoding=xclient destinations=127.0.0.1:25,192.0.2.1:25", true, TlsMode::verify, ""},  // leaves the machine
        {"d encoding=xclient destinations=[2001:db8::1]:25", true, TlsMode::verify, ""},
        {"d encoding=xclient destinations=192.0.2.1:25 tls=none", true, TlsMode::none, ""},
        {"d encoding=xclient destinations=192.0.2.1:25 tls=off", true, TlsMode::none, ""},
        {"d encoding=xclient destinations=192.0.2.1:25 tls=may", true, TlsMode::may, ""},
        {"d encoding=xclient destinations=192.0.2.1:25 tls=encrypt tls-name=mx.example", true, TlsMode::encrypt, ""},
        {"d encoding=xclient destinations=192.0.2.1:25 tls=verify tls-name=mx.example tls-ca=/etc/ca.pem", true,
         TlsMode::verify, ""},
        {"d encoding=xclient destinations=192.0.2.1:25 tls-name=192.0.2.1", true, TlsMode::verify, ""},
        {"d encoding=xclient destinations=192.0.2.1:25 tls=required", false, TlsMode::none, "tls=required is gone"},
        {"d encoding=xclient destinations=192.0.2.1:25 tls=opportunistic", false, TlsMode::none,
         "tls=opportunistic is gone"},
        {"d encoding=xclient destinations=192.0.2.1:25 tls=maybe", false, TlsMode::none, "bad value"},
        {"d encoding=xclient destinations=192.0.2.1:25 tls=may tls-ca=/etc/ca.pem", false, TlsMode::none,
         "tls-ca= needs tls=verify"},
        {"d encoding=xclient destinations=127.0.0.1:25 tls-name=mx.example", false, TlsMode::none,
         "tls-name= needs TLS"},
        {"d encoding=xclient destinations=192.0.2.1:25 tls-name=*.example", false, TlsMode::none, "bad value"},
        {"d encoding=xclient destinations=192.0.2.1:25 tls-name=mx..example", false, TlsMode::none, "bad value"},
        {"d encoding=xclient destinations=192.0.2.1:25 tls-name=", false, TlsMode::none, "bad value"},
        {"d encoding=xclient destinations=192.0.2.1:25 tls-ca=", false, TlsMode::none, "bad value"},
    };
    for (const auto& r : rows) {
        std::string err;
        auto d = parse_downstream(r.spec, &err);
        EXPECT_EQ(d.has_value(), r.want_ok) << r.spec << ": " << err;
        if (d && r.want_ok) {
            EXPECT_EQ(d->tls, r.want_tls) << r.spec;
        }
        if (!r.want_ok) {
            EXPECT_NE(err.find(r.want_error), std::string::npos) << r.spec << ": " << err;
        }
    }
}

TEST(DownstreamMx, OutboundDefaultsAndRefusals) {
    std::string err;
    auto d = parse_downstream("internet destinations=mx", &err);
    ASSERT_TRUE(d) << err;
    EXPECT_TRUE(d->mx);
    EXPECT_EQ(d->mx_port, 25);
    EXPECT_EQ(d->encoding, Encoding::none);  // nothing of the source goes to other organisations
    EXPECT_EQ(d->tls, TlsMode::may);         // what the internet's MX hosts allow; REQUIRETLS verifies
    auto v = parse_downstream("internet destinations=mx mx-port=2525 tls=verify tls-ca=/etc/ca.pem", &err);
    ASSERT_TRUE(v) << err;
    EXPECT_EQ(v->mx_port, 2525);
    EXPECT_EQ(v->tls, TlsMode::verify);
    const std::pair<const char*, const char*> bad[] = {
        {"i destinations=mx encoding=xclient", "encoding=none"},
        {"i destinations=mx encoding=proxy-v2", "encoding=none"},
        {"i destinations=mx tls=may tls-name=mx.example", "MX host name is checked"},
        {"i destinations=mx mx-port=0", "bad value"},
        {"i destinations=127.0.0.1:25 mx-port=2525", "mx-port= needs destinations=mx"},
        {"i destinations=mx proxy-unsigned=yes", "no PROXY header"},
    };
    for (const auto& [spec, want] : bad) {
        err.clear();
        EXPECT_FALSE(parse_downstream(spec, &err)) << spec;
        EXPECT_NE(err.find(want), std::string::npos) << spec << ": " << err;
    }
}

namespace {

// parse_config on an argument list; the exit code and what it printed to stderr.
std::optional<Config> configure(std::vector<std::string> args, int& code, std::string& said) {
    args.insert(args.begin(), "xproxyd");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    testing::internal::CaptureStderr();
    auto c = parse_config(static_cast<int>(argv.size()), argv.data(), code);
    said = testing::internal::GetCapturedStderr();
    return c;
}

}  // namespace

TEST(OutboundConfig, ListenersPoolsAndEgresses) {
    int code = 0;
    std::string said;
    const std::vector<std::string> base = {"--downstream", "internet destinations=mx",
                                           "--egress",     "a address=192.0.2.1 helo=a.example",
                                           "--egress",     "b address=192.0.2.2 helo=b.example",
                                           "--pool",       "bulk a,b:0",
                                           "--pool",       "default b"};
    auto args = base;
    for (const char* l : {"inet:127.0.0.1:10025 internet", "inet:127.0.0.1:10026 internet risk=bulk xproxyto=splice",
                          "inet:127.0.0.1:10027 internet xproxyto=relay risk=bulk"}) {
        args.push_back("--listen");
        args.push_back(l);
    }
    auto c = configure(args, code, said);
    ASSERT_TRUE(c) << said;
    ASSERT_EQ(c->listeners.size(), 3u);
    EXPECT_EQ(c->listeners[0].risk, "default");
    EXPECT_EQ(c->listeners[0].pool, std::optional<std::size_t>(1));
    EXPECT_FALSE(c->listeners[0].splice);
    EXPECT_EQ(c->listeners[1].pool, std::optional<std::size_t>(0));
    EXPECT_TRUE(c->listeners[1].splice);
    EXPECT_FALSE(c->listeners[2].splice);
    EXPECT_FALSE(c->dns.refused.empty());  // closed by default

    const std::pair<std::vector<std::string>, const char*> bad[] = {
        {{"--listen", "inet:127.0.0.1:10025 internet risk=gold"}, "no --pool for risk gold"},
        {{"--egress", "a address=192.0.2.9 helo=x.example"}, "egress a defined twice"},
        {{"--pool", "bulk b"}, "pool bulk defined twice"},
        {{"--pool", "other nobody"}, "no egress named 'nobody'"},
        {{"--listen", "inet:127.0.0.1:10025 internet risk=bulk extra"}, "want \"SPEC [DOWNSTREAM]"},
        {{"--dns-option", "nocolon"}, "want \"NAME: VALUE\""},
        {{"--refused-destinations", "300.0.0.0/8"}, "refused-destinations"},
    };
    for (const auto& [extra, want] : bad) {
        auto a = base;
        a.insert(a.end(), extra.begin(), extra.end());
        EXPECT_FALSE(configure(a, code, said)) << want;
        EXPECT_EQ(code, 1) << want;
        EXPECT_NE(said.find(want), std::string::npos) << said;
    }
    // A risk class on an inbound downstream, and pools without an outbound downstream.
    EXPECT_FALSE(configure({"--downstream", "d destinations=127.0.0.1:25", "--listen", "inet:127.0.0.1:1 d risk=x"},
                           code, said));
    EXPECT_NE(said.find("risk= and xproxyto= are for a destinations=mx downstream"), std::string::npos) << said;
    EXPECT_FALSE(configure(
        {"--downstream", "d destinations=127.0.0.1:25", "--egress", "a address=192.0.2.1 helo=a.example"}, code, said));
    EXPECT_NE(said.find("need a destinations=mx downstream"), std::string::npos) << said;
    auto none = configure({"--downstream", "internet destinations=mx", "--refused-destinations", "none"}, code, said);
    ASSERT_TRUE(none) << said;
    EXPECT_TRUE(none->dns.refused.empty());
}

TEST(SubmissionConfig, ListenerModesAndWhatTheyNeed) {
    int code = 0;
    std::string said;
    const std::vector<std::string> base = {"--downstream",   "home destinations=127.0.0.1:25 encoding=xclient",
                                           "--tls-cert",     "/nonexistent/cert.pem",
                                           "--tls-key",      "/nonexistent/key.pem",
                                           "--directory",    "/nonexistent/directory",
                                           "--dovecot-auth", "inet:127.0.0.1:12345"};
    auto args = base;
    for (const char* l :
         {"inet:127.0.0.1:587 home mode=submission", "inet:127.0.0.1:465 home tls=implicit mode=submission",
          "inet:127.0.0.1:10025 home mode=relay"}) {
        args.push_back("--listen");
        args.push_back(l);
    }
    auto c = configure(args, code, said);
    ASSERT_TRUE(c) << said;
    ASSERT_EQ(c->listeners.size(), 3u);
    EXPECT_TRUE(c->listeners[0].submission);
    EXPECT_FALSE(c->listeners[0].implicit_tls);
    EXPECT_TRUE(c->listeners[1].submission);
    EXPECT_TRUE(c->listeners[1].implicit_tls);
    EXPECT_FALSE(c->listeners[2].submission);
    // Closed defaults for failed logins.
    EXPECT_EQ(c->submission.address_failures, 5u);
    EXPECT_EQ(c->submission.user_failures, 10u);
    EXPECT_EQ(c->submission.lockout, std::chrono::seconds(900));
    EXPECT_EQ(c->submission.table_size, 65536u);
    for (const char* target : {"inet:[::1]:12345", "inet:localhost:12345", "inet:127.0.0.2:1", "unix:/run/auth"}) {
        auto a = base;
        a.back() = target;
        a.push_back("--listen");
        a.push_back("inet:127.0.0.1:587 mode=submission");
        EXPECT_TRUE(configure(a, code, said)) << target << ": " << said;
    }

    const std::pair<std::vector<std::string>, const char*> bad[] = {
        {{"--downstream", "home destinations=127.0.0.1:25", "--listen", "inet:127.0.0.1:587 mode=submission",
          "--directory", "/d", "--dovecot-auth", "inet:127.0.0.1:1"},
         "mode=submission needs --tls-cert and --tls-key (AUTH is only offered over TLS)"},
        {{"--downstream", "home destinations=127.0.0.1:25", "--listen", "inet:127.0.0.1:465 tls=implicit"},
         "tls=implicit needs --tls-cert and --tls-key"},
        {{"--downstream", "home destinations=127.0.0.1:25", "--tls-cert", "/c", "--tls-key", "/k", "--listen",
          "inet:127.0.0.1:587 mode=submission", "--dovecot-auth", "inet:127.0.0.1:1"},
         "mode=submission needs --directory"},
        {{"--downstream", "home destinations=127.0.0.1:25", "--tls-cert", "/c", "--tls-key", "/k", "--listen",
          "inet:127.0.0.1:587 mode=submission", "--directory", "/d"},
         "mode=submission needs --dovecot-auth"},
        {{"--downstream", "home destinations=127.0.0.1:25", "--directory", "/d"},
         "--directory and --dovecot-auth are for a mode=submission listener"},
        {{"--downstream", "home destinations=127.0.0.1:25", "--tls-cert", "/c", "--tls-key", "/k", "--listen",
          "inet:127.0.0.1:587 mode=submission", "--directory", "/d", "--dovecot-auth", "inet:192.0.2.1:12345"},
         "Dovecot's auth protocol is not encrypted"},
        {{"--downstream", "out destinations=mx", "--tls-cert", "/c", "--tls-key", "/k", "--listen",
          "inet:127.0.0.1:587 mode=submission", "--directory", "/d", "--dovecot-auth", "inet:127.0.0.1:1"},
         "mode=submission needs a downstream with destinations="},
        {{"--downstream", "home destinations=127.0.0.1:25", "--listen", "inet:127.0.0.1:587 mode=other"},
         "want \"SPEC [DOWNSTREAM]"},
        {{"--downstream", "home destinations=127.0.0.1:25", "--listen", "inet:127.0.0.1:587 home risk=x"},
         "risk= and xproxyto= are for a destinations=mx downstream"},
    };
    for (const auto& [a, want] : bad) {
        EXPECT_FALSE(configure(a, code, said)) << want;
        EXPECT_EQ(code, 1) << want;
        EXPECT_NE(said.find(want), std::string::npos) << said;
    }
}
