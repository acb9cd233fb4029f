// policy_engine_test: decide() for each policy alone, together and switched off, with the
// exact reply codes of doc/directory.md, and the Postfix/milter renderings of a decision.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <xproxy/policy/directory_file.hpp>
#include <xproxy/policy/policy_engine.hpp>

#include "expected_value.hpp"

using namespace xproxy;

namespace {

constexpr const char* kAliceFp =
    "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";
constexpr const char* kBobFp = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
constexpr const char* kStrangerFp = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

const Directory& directory() {
    static const Directory d = [] {
        std::string error;
        auto parsed = xproxy::test::value_or_error(
            parse_directory(std::string("domain example.com services=smtp,submission\n"
                                        "user alice@example.com alias=a.smith,sales login=alice cert=") +
                            kAliceFp +
                            "\n"
                            "user bob@example.com cert=" +
                            kBobFp +
                            "\n"
                            "user carol@example.com state=inactive\n"
                            "user dave@example.com state=deleted\n"
                            "domain paused.example state=inactive\n"
                            "user eve@paused.example\n"
                            "domain gone.example state=deleted\n"
                            "user frank@gone.example\n"
                            "domain inbound-only.example services=smtp\n"
                            "user gina@inbound-only.example\n"
                            "domain outbound-only.example services=submission\n"
                            "user hank@outbound-only.example\n"
                            "domain secure.example require_tls=yes\n"
                            "user ivy@secure.example login=ivy\n"),
            error);
        if (!parsed) ADD_FAILURE() << error;
        return parsed ? std::move(*parsed) : Directory();
    }();
    return d;
}

RiskMap risk_map() {
    std::string error;
    auto m = xproxy::test::value_or_error(RiskMap::parse("class good\n"
                                                         "class bulk transport=smtp-bulk:\n"
                                                         "class high transport=smtp-high:\n"
                                                         "network 192.0.2.0/24 class=good\n"
                                                         "network 203.0.113.0/24 class=high\n"
                                                         "sender-domain newsletter.example class=bulk\n"),
                                          error);
    if (!m) ADD_FAILURE() << error;
    return m ? std::move(*m) : RiskMap();
}

PolicyConfig config(bool inject, bool vdomains, bool deposit, bool risk) {
    PolicyConfig c;
    c.inject = inject;
    c.vdomains = vdomains;
    c.deposit = deposit;
    c.risk = risk;
    c.trusted_upstreams = *CidrSet::parse("10.0.0.0/8, ::1");
    c.risk_map = risk_map();
    return c;
}

struct Case {
    const char* name;
    ProtocolState state;
    const char* client;  // "" = unknown
    const char* sender;
    const char* recipient;
    const char* sasl;
    bool tls;
    const char* cert;
    ServiceKind service;
    ActionKind want_action;
    unsigned want_code;
    const char* want_status;
    const char* want_reason;
};

constexpr auto SMTP = ServiceKind::smtp;
constexpr auto SUB = ServiceKind::submission;
constexpr auto MAIL = ProtocolState::mail;
constexpr auto RCPT = ProtocolState::rcpt;
constexpr auto DATA = ProtocolState::data;
constexpr auto DUNNO = ActionKind::dunno;
constexpr auto REJECT = ActionKind::reject;
constexpr auto DEFER = ActionKind::defer;
constexpr auto FILTER = ActionKind::filter;
constexpr auto INJECT = ActionKind::inject;

PolicyInput input(const Case& c) {
    PolicyInput in;
    in.state = c.state;
    if (*c.client) in.client_address = IpAddress::parse(c.client);
    in.sender = c.sender;
    in.recipient = c.recipient;
    in.sasl_username = c.sasl;
    in.tls_active = c.tls;
    in.client_cert_fingerprint = c.cert;
    in.service = c.service;
    return in;
}

void run(const std::vector<Case>& cases, const PolicyConfig& cfg) {
    for (const Case& c : cases) {
        const PolicyDecision d = decide(input(c), cfg, directory());
        EXPECT_EQ(to_string(d.kind), to_string(c.want_action)) << c.name;
        EXPECT_EQ(d.code, c.want_code) << c.name;
        EXPECT_EQ(d.status, c.want_status) << c.name;
        EXPECT_EQ(d.reason, c.want_reason) << c.name;
    }
}

}  // namespace

TEST(PolicyEngine, VirtualDomainRecipients) {
    const PolicyConfig cfg = config(false, true, false, false);
    // clang-format off
    run({
        {"not hosted",               RCPT, "198.51.100.1", "x@remote.example", "bob@remote.example",        "", false, "", SMTP, DUNNO,  0,   "",      ""},
        {"active user",              RCPT, "198.51.100.1", "x@remote.example", "bob@example.com",           "", false, "", SMTP, DUNNO,  0,   "",      ""},
        {"active user, any case",    RCPT, "198.51.100.1", "x@remote.example", "BOB@Example.COM",           "", false, "", SMTP, DUNNO,  0,   "",      ""},
        {"bracketed",                RCPT, "198.51.100.1", "x@remote.example", "<bob@example.com>",         "", false, "", SMTP, DUNNO,  0,   "",      ""},
        {"alias",                    RCPT, "198.51.100.1", "x@remote.example", "sales@example.com",         "", false, "", SMTP, DUNNO,  0,   "",      ""},
        {"unknown local part",       RCPT, "198.51.100.1", "x@remote.example", "nobody@example.com",        "", false, "", SMTP, REJECT, 550, "5.1.1", "user_unknown"},
        {"extension without delim",  RCPT, "198.51.100.1", "x@remote.example", "alice+news@example.com",    "", false, "", SMTP, REJECT, 550, "5.1.1", "user_unknown"},
        {"postmaster always",        RCPT, "198.51.100.1", "x@remote.example", "PostMaster@example.com",    "", false, "", SMTP, DUNNO,  0,   "",      ""},
        {"user inactive",            RCPT, "198.51.100.1", "x@remote.example", "carol@example.com",         "", false, "", SMTP, DEFER,  450, "4.2.1", "user_inactive"},
        {"user deleted",             RCPT, "198.51.100.1", "x@remote.example", "dave@example.com",          "", false, "", SMTP, REJECT, 550, "5.1.6", "user_deleted"},
        {"domain inactive",          RCPT, "198.51.100.1", "x@remote.example", "eve@paused.example",        "", false, "", SMTP, DEFER,  450, "4.2.1", "domain_inactive"},
        {"domain inactive, unknown", RCPT, "198.51.100.1", "x@remote.example", "zed@paused.example",        "", false, "", SMTP, DEFER,  450, "4.2.1", "domain_inactive"},
        {"postmaster, inactive",     RCPT, "198.51.100.1", "x@remote.example", "postmaster@paused.example", "", false, "", SMTP, DEFER,  450, "4.2.1", "domain_inactive"},
        {"domain deleted",           RCPT, "198.51.100.1", "x@remote.example", "frank@gone.example",        "", false, "", SMTP, REJECT, 550, "5.1.2", "domain_deleted"},
        {"domain deleted, unknown",  RCPT, "198.51.100.1", "x@remote.example", "zed@gone.example",          "", false, "", SMTP, REJECT, 550, "5.1.2", "domain_deleted"},
        {"domain without smtp",      RCPT, "198.51.100.1", "x@remote.example", "hank@outbound-only.example","", false, "", SMTP, REJECT, 550, "5.7.1", "smtp_disabled"},
        {"without smtp, submission", RCPT, "198.51.100.1", "alice@example.com","hank@outbound-only.example","alice@example.com", true, "", SUB, REJECT, 550, "5.7.1", "smtp_disabled"},
        {"no domain part",           RCPT, "198.51.100.1", "x@remote.example", "postmaster",                "", false, "", SMTP, DUNNO,  0,   "",      ""},
        {"empty recipient",          RCPT, "198.51.100.1", "x@remote.example", "",                          "", false, "", SMTP, DUNNO,  0,   "",      ""},
        {"recipient at MAIL",        MAIL, "198.51.100.1", "x@remote.example", "nobody@example.com",        "", false, "", SMTP, DUNNO,  0,   "",      ""},
        {"recipient at DATA",        DATA, "198.51.100.1", "x@remote.example", "nobody@example.com",        "", false, "", SMTP, DUNNO,  0,   "",      ""},
    }, cfg);
    // clang-format on
}

TEST(PolicyEngine, RecipientDelimiter) {
    PolicyConfig cfg = config(false, true, false, false);
    cfg.recipient_delimiter = "+-";
    // clang-format off
    run({
        {"plus",           RCPT, "", "", "alice+news@example.com", "", false, "", SMTP, DUNNO,  0,   "",      ""},
        {"minus",          RCPT, "", "", "alice-news@example.com", "", false, "", SMTP, DUNNO,  0,   "",      ""},
        {"alias + ext",    RCPT, "", "", "sales+q3@example.com",   "", false, "", SMTP, DUNNO,  0,   "",      ""},
        {"unknown base",   RCPT, "", "", "zed+news@example.com",   "", false, "", SMTP, REJECT, 550, "5.1.1", "user_unknown"},
        {"leading delim",  RCPT, "", "", "+alice@example.com",     "", false, "", SMTP, REJECT, 550, "5.1.1", "user_unknown"},
        {"base inactive",  RCPT, "", "", "carol+x@example.com",    "", false, "", SMTP, DEFER,  450, "4.2.1", "user_inactive"},
    }, cfg);
    // clang-format on
}

TEST(PolicyEngine, AuthenticatedDeposit) {
    const PolicyConfig cfg = config(false, false, true, false);
    // clang-format off
    run({
        {"null sender",             MAIL, "198.51.100.1", "",                     "", "",                  false, "",          SMTP, DUNNO,  0,   "",      ""},
        {"null sender <>",          MAIL, "198.51.100.1", "<>",                   "", "",                  false, "",          SMTP, DUNNO,  0,   "",      ""},
        {"sender not hosted",       MAIL, "198.51.100.1", "x@remote.example",     "", "",                  false, "",          SMTP, DUNNO,  0,   "",      ""},
        {"sasl = sender",           MAIL, "198.51.100.1", "alice@example.com",    "", "alice@example.com", true,  "",          SUB,  DUNNO,  0,   "",      ""},
        {"sasl = sender, any case", MAIL, "198.51.100.1", "Alice@Example.com",    "", "ALICE@EXAMPLE.COM", true,  "",          SUB,  DUNNO,  0,   "",      ""},
        {"sasl login= name",        MAIL, "198.51.100.1", "alice@example.com",    "", "alice",             true,  "",          SUB,  DUNNO,  0,   "",      ""},
        {"sender is an alias",      MAIL, "198.51.100.1", "a.smith@example.com",  "", "alice@example.com", true,  "",          SUB,  DUNNO,  0,   "",      ""},
        {"sasl login not bare",     MAIL, "198.51.100.1", "bob@example.com",      "", "bob",               true,  "",          SUB,  REJECT, 550, "5.7.1", "sender_not_owned"},
        {"sasl other user",         MAIL, "198.51.100.1", "alice@example.com",    "", "bob@example.com",   true,  "",          SUB,  REJECT, 550, "5.7.1", "sender_not_owned"},
        {"sasl, unknown sender",    MAIL, "198.51.100.1", "nobody@example.com",   "", "alice@example.com", true,  "",          SUB,  REJECT, 550, "5.7.1", "sender_not_owned"},
        {"not authenticated",       MAIL, "198.51.100.1", "alice@example.com",    "", "",                  false, "",          SMTP, REJECT, 550, "5.7.1", "auth_required"},
        {"bracketed, no auth",      MAIL, "198.51.100.1", "<alice@example.com>",  "", "",                  false, "",          SMTP, REJECT, 550, "5.7.1", "auth_required"},
        {"cert of sender",          MAIL, "198.51.100.1", "alice@example.com",    "", "",                  true,  kAliceFp,    SMTP, DUNNO,  0,   "",      ""},
        {"cert, sender alias",      MAIL, "198.51.100.1", "sales@example.com",    "", "",                  true,  kAliceFp,    SMTP, DUNNO,  0,   "",      ""},
        {"cert without TLS",        MAIL, "198.51.100.1", "alice@example.com",    "", "",                  false, kAliceFp,    SMTP, REJECT, 550, "5.7.1", "auth_required"},
        {"cert of another user",    MAIL, "198.51.100.1", "alice@example.com",    "", "",                  true,  kBobFp,      SMTP, REJECT, 550, "5.7.1", "sender_not_owned"},
        {"unmapped cert",           MAIL, "198.51.100.1", "alice@example.com",    "", "",                  true,  kStrangerFp, SMTP, REJECT, 550, "5.7.1", "auth_required"},
        {"wrong sasl, right cert",  MAIL, "198.51.100.1", "alice@example.com",    "", "bob@example.com",   true,  kAliceFp,    SMTP, DUNNO,  0,   "",      ""},
        {"domain requires TLS",     MAIL, "198.51.100.1", "ivy@secure.example",   "", "ivy",               false, "",          SUB,  REJECT, 550, "5.7.1", "tls_required"},
        {"TLS, no auth",            MAIL, "198.51.100.1", "ivy@secure.example",   "", "",                  true,  "",          SMTP, REJECT, 550, "5.7.1", "auth_required"},
        {"TLS and login",           MAIL, "198.51.100.1", "ivy@secure.example",   "", "ivy",               true,  "",          SUB,  DUNNO,  0,   "",      ""},
        {"checked again at RCPT",   RCPT, "198.51.100.1", "alice@example.com",    "bob@remote.example", "", false, "",         SMTP, REJECT, 550, "5.7.1", "auth_required"},
        {"trusted upstream",        MAIL, "10.1.2.3",     "alice@example.com",    "", "",                  false, "",          SMTP, DUNNO,  0,   "",      ""},
        {"trusted upstream v6",     RCPT, "::1",          "alice@example.com",    "bob@remote.example", "", false, "",         SMTP, DUNNO,  0,   "",      ""},
        {"not at DATA",             DATA, "198.51.100.1", "alice@example.com",    "", "",                  false, "",          SMTP, DUNNO,  0,   "",      ""},
        {"not at CONNECT",          ProtocolState::connect, "198.51.100.1", "alice@example.com", "", "",   false, "",          SMTP, DUNNO,  0,   "",      ""},
        // Deposit checks identity only: the states and services are vdomains' business.
        {"inactive domain, auth",   MAIL, "198.51.100.1", "eve@paused.example",   "", "eve@paused.example", true, "",          SUB,  DUNNO,  0,   "",      ""},
    }, cfg);
    // clang-format on
}

TEST(PolicyEngine, SubmissionRules) {
    const PolicyConfig cfg = config(false, true, false, false);
    // clang-format off
    run({
        {"own address",            MAIL, "198.51.100.1", "alice@example.com",          "", "alice@example.com",    true,  "", SUB,  DUNNO,  0,   "",      ""},
        {"domain without submission", MAIL, "198.51.100.1", "gina@inbound-only.example", "", "gina@inbound-only.example", true, "", SUB, REJECT, 550, "5.7.1", "submission_disabled"},
        {"auth on port 25 counts", MAIL, "198.51.100.1", "gina@inbound-only.example",  "", "gina@inbound-only.example", true, "", SMTP, REJECT, 550, "5.7.1", "submission_disabled"},
        {"cert counts as auth",    MAIL, "198.51.100.1", "gina@inbound-only.example",  "", "",                     true,  kAliceFp, SMTP, REJECT, 550, "5.7.1", "submission_disabled"},
        {"sender domain inactive", MAIL, "198.51.100.1", "eve@paused.example",         "", "eve@paused.example",   true,  "", SUB,  DEFER,  450, "4.7.1", "sender_domain_inactive"},
        {"sender domain deleted",  MAIL, "198.51.100.1", "frank@gone.example",         "", "frank@gone.example",   true,  "", SUB,  REJECT, 550, "5.7.1", "sender_domain_deleted"},
        {"sender account inactive",MAIL, "198.51.100.1", "carol@example.com",          "", "carol@example.com",    true,  "", SUB,  DEFER,  450, "4.7.1", "sender_inactive"},
        {"sender account deleted", MAIL, "198.51.100.1", "dave@example.com",           "", "dave@example.com",     true,  "", SUB,  REJECT, 550, "5.7.1", "sender_deleted"},
        {"sender unknown",         MAIL, "198.51.100.1", "nobody@example.com",         "", "alice@example.com",    true,  "", SUB,  REJECT, 550, "5.1.0", "sender_unknown"},
        {"unauth submission",      MAIL, "198.51.100.1", "nobody@example.com",         "", "",                     true,  "", SUB,  REJECT, 550, "5.1.0", "sender_unknown"},
        {"unauth smtp: no rules",  MAIL, "198.51.100.1", "gina@inbound-only.example",  "", "",                     false, "", SMTP, DUNNO,  0,   "",      ""},
        {"unmapped cert: no rules",MAIL, "198.51.100.1", "gina@inbound-only.example",  "", "",                     true,  kStrangerFp, SMTP, DUNNO, 0, "",   ""},
        {"remote sender",          MAIL, "198.51.100.1", "alice@remote.example",       "", "alice@example.com",    true,  "", SUB,  DUNNO,  0,   "",      ""},
        {"null sender",            MAIL, "198.51.100.1", "",                           "", "alice@example.com",    true,  "", SUB,  DUNNO,  0,   "",      ""},
        {"at RCPT too",            RCPT, "198.51.100.1", "gina@inbound-only.example",  "bob@example.com", "gina@inbound-only.example", true, "", SUB, REJECT, 550, "5.7.1", "submission_disabled"},
        // The vdomains policy alone does not check who the sender is.
        {"someone else's address", MAIL, "198.51.100.1", "bob@example.com",            "", "alice@example.com",    true,  "", SUB,  DUNNO,  0,   "",      ""},
    }, cfg);
    // clang-format on
    PolicyInput in;
    in.state = MAIL;
    in.sender = "nobody@example.com";
    in.sasl_username = "alice";
    EXPECT_EQ(decide(in, cfg, directory()).postfix_action(),
              "550 5.1.0 Sender address <nobody@example.com> unknown in virtual domain");
}

TEST(PolicyEngine, RiskRouting) {
    const PolicyConfig cfg = config(false, false, false, true);
    // clang-format off
    run({
        {"high network at RCPT",  RCPT, "203.0.113.7",  "x@remote.example",     "bob@example.com", "", false, "", SMTP, FILTER, 0, "", "risk_network"},
        {"high network at MAIL",  MAIL, "203.0.113.7",  "x@remote.example",     "",                "", false, "", SMTP, FILTER, 0, "", "risk_network"},
        {"bulk sender domain",    RCPT, "198.51.100.1", "n@newsletter.example", "bob@example.com", "", false, "", SMTP, FILTER, 0, "", "risk_sender_domain"},
        {"subdomain",             RCPT, "198.51.100.1", "n@eu.newsletter.example", "bob@example.com", "", false, "", SMTP, FILTER, 0, "", "risk_sender_domain"},
        {"later class wins",      RCPT, "203.0.113.7",  "n@newsletter.example", "bob@example.com", "", false, "", SMTP, FILTER, 0, "", "risk_network"},
        {"good class routes none",RCPT, "192.0.2.9",    "x@remote.example",     "bob@example.com", "", false, "", SMTP, DUNNO,  0, "", ""},
        {"good net, bulk sender", RCPT, "192.0.2.9",    "n@newsletter.example", "bob@example.com", "", false, "", SMTP, FILTER, 0, "", "risk_sender_domain"},
        {"unlisted",              RCPT, "198.51.100.1", "x@remote.example",     "bob@example.com", "", false, "", SMTP, DUNNO,  0, "", ""},
        {"unknown client",        RCPT, "",             "",                     "bob@example.com", "", false, "", SMTP, DUNNO,  0, "", ""},
        {"not at DATA",           DATA, "203.0.113.7",  "x@remote.example",     "",                "", false, "", SMTP, DUNNO,  0, "", ""},
        {"not at CONNECT",        ProtocolState::connect, "203.0.113.7", "",    "",                "", false, "", SMTP, DUNNO,  0, "", ""},
        {"not at END-OF-MESSAGE", ProtocolState::end_of_message, "203.0.113.7", "x@remote.example", "", "", false, "", SMTP, DUNNO, 0, "", ""},
    }, cfg);
    // clang-format on
    PolicyInput in;
    in.state = RCPT;
    in.client_address = IpAddress::parse("203.0.113.7");
    const PolicyDecision d = decide(in, cfg, directory());
    EXPECT_EQ(d.transport, "smtp-high:");
    EXPECT_EQ(d.postfix_action(), "FILTER smtp-high:");
    EXPECT_EQ(d.text, "risk class high from client network 203.0.113.0/24");
}

TEST(PolicyEngine, Inject) {
    const PolicyConfig cfg = config(true, false, false, false);
    // clang-format off
    run({
        {"outside client",       DATA, "198.51.100.1", "x@remote.example", "", "", false, "", SMTP, INJECT, 0, "", "inject"},
        {"unknown client",       DATA, "",             "",                 "", "", false, "", SMTP, INJECT, 0, "", "inject"},
        {"trusted upstream",     DATA, "10.9.8.7",     "x@remote.example", "", "", false, "", SMTP, DUNNO,  0, "", ""},
        {"trusted v4-mapped",    DATA, "::ffff:10.9.8.7", "x@remote.example", "", "", false, "", SMTP, DUNNO, 0, "", ""},
        {"only at DATA: RCPT",   RCPT, "198.51.100.1", "x@remote.example", "bob@example.com", "", false, "", SMTP, DUNNO, 0, "", ""},
        {"only at DATA: EOM",    ProtocolState::end_of_message, "198.51.100.1", "", "", "", false, "", SMTP, DUNNO, 0, "", ""},
    }, cfg);
    // clang-format on
    PolicyInput in;
    in.state = DATA;
    in.client_address = IpAddress::parse("10.9.8.7");
    in.trusted_upstream = false;  // the caller's word overrides the CIDR list
    EXPECT_EQ(decide(in, cfg, directory()).kind, INJECT);
    in.client_address = IpAddress::parse("198.51.100.1");
    in.trusted_upstream = true;
    EXPECT_EQ(decide(in, cfg, directory()).kind, DUNNO);
    in.trusted_upstream.reset();
    const PolicyDecision d = decide(in, cfg, directory());
    EXPECT_EQ(d.postfix_action("X-Original-Source: v=1; ip=198.51.100.1"),
              "PREPEND X-Original-Source: v=1; ip=198.51.100.1");
    EXPECT_EQ(d.postfix_action(), "DUNNO");  // nothing to prepend
}

TEST(PolicyEngine, OrderWhenSeveralPoliciesAnswer) {
    const PolicyConfig cfg = config(true, true, true, true);
    // clang-format off
    run({
        // deposit first, even though the recipient is unknown and the client risky
        {"deposit before vdomains", RCPT, "203.0.113.7",  "alice@example.com", "nobody@example.com", "", false, "", SMTP, REJECT, 550, "5.7.1", "auth_required"},
        // vdomains sender side before recipient side
        {"sender side first",       RCPT, "198.51.100.1", "carol@example.com", "nobody@example.com", "carol@example.com", true, "", SUB, DEFER, 450, "4.7.1", "sender_inactive"},
        // a rejected recipient is not routed
        {"reject beats filter",     RCPT, "203.0.113.7",  "x@remote.example",  "nobody@example.com", "", false, "", SMTP, REJECT, 550, "5.1.1", "user_unknown"},
        {"defer beats filter",      RCPT, "203.0.113.7",  "x@remote.example",  "carol@example.com",  "", false, "", SMTP, DEFER,  450, "4.2.1", "user_inactive"},
        {"accepted, then filter",   RCPT, "203.0.113.7",  "x@remote.example",  "bob@example.com",    "", false, "", SMTP, FILTER, 0,   "",      "risk_network"},
        {"all pass",                RCPT, "198.51.100.1", "alice@example.com", "bob@example.com",    "alice", true, "", SUB, DUNNO, 0, "",      ""},
        {"inject at DATA",          DATA, "203.0.113.7",  "x@remote.example",  "",                   "", false, "", SMTP, INJECT, 0,   "",      "inject"},
    }, cfg);
    // clang-format on
}

TEST(PolicyEngine, AllPoliciesOffIsAlwaysDunno) {
    const PolicyConfig off = config(false, false, false, false);
    EXPECT_FALSE(off.any());
    const char* senders[] = {"", "alice@example.com", "x@newsletter.example", "frank@gone.example"};
    const char* rcpts[] = {"", "nobody@example.com", "eve@paused.example", "hank@outbound-only.example"};
    const char* clients[] = {"", "203.0.113.7", "10.0.0.1"};
    for (auto st : {ProtocolState::unknown, ProtocolState::connect, ProtocolState::helo, MAIL, RCPT, DATA,
                    ProtocolState::end_of_message, ProtocolState::vrfy, ProtocolState::etrn})
        for (const char* s : senders)
            for (const char* r : rcpts)
                for (const char* c : clients)
                    for (auto svc : {SMTP, SUB}) {
                        PolicyInput in;
                        in.state = st;
                        if (*c) in.client_address = IpAddress::parse(c);
                        in.sender = s;
                        in.recipient = r;
                        in.service = svc;
                        const PolicyDecision d = decide(in, off, directory());
                        EXPECT_EQ(d.kind, DUNNO) << to_string(st) << " " << s << " " << r << " " << c;
                        EXPECT_EQ(d.postfix_action(), "DUNNO");
                    }
}

TEST(PolicyEngine, ReplyRenderings) {
    const PolicyConfig cfg = config(false, true, true, false);
    struct Row {
        const char* sender;
        const char* recipient;
        const char* sasl;
        const char* want_action;
        const char* want_smtp_text;
    };
    // clang-format off
    const Row rows[] = {
        {"x@remote.example", "nobody@example.com", "",
         "550 5.1.1 User unknown in virtual domain",
         "<nobody@example.com>: Recipient address rejected: User unknown in virtual domain"},
        {"x@remote.example", "eve@paused.example", "",
         "450 4.2.1 Mail domain temporarily suspended, try again later",
         "<eve@paused.example>: Recipient address rejected: Mail domain temporarily suspended, try again later"},
        {"x@remote.example", "frank@gone.example", "",
         "550 5.1.2 Mail domain no longer exists",
         "<frank@gone.example>: Recipient address rejected: Mail domain no longer exists"},
        {"x@remote.example", "dave@example.com", "",
         "550 5.1.6 Mailbox no longer exists",
         "<dave@example.com>: Recipient address rejected: Mailbox no longer exists"},
        {"x@remote.example", "carol@example.com", "",
         "450 4.2.1 Mailbox temporarily disabled, try again later",
         "<carol@example.com>: Recipient address rejected: Mailbox temporarily disabled, try again later"},
        {"x@remote.example", "hank@outbound-only.example", "",
         "550 5.7.1 Mail domain does not receive mail",
         "<hank@outbound-only.example>: Recipient address rejected: Mail domain does not receive mail"},
        {"alice@example.com", "x@remote.example", "",
         "550 5.7.1 Authentication required to send as <alice@example.com>",
         "<alice@example.com>: Sender address rejected: Authentication required to send as <alice@example.com>"},
        {"alice@example.com", "x@remote.example", "bob@example.com",
         "550 5.7.1 Sender address <alice@example.com> is not owned by user bob@example.com",
         "<alice@example.com>: Sender address rejected: Sender address <alice@example.com> is not owned by user bob@example.com"},
        {"ivy@secure.example", "x@remote.example", "ivy",
         "550 5.7.1 TLS required to send as <ivy@secure.example>",
         "<ivy@secure.example>: Sender address rejected: TLS required to send as <ivy@secure.example>"},
        {"gina@inbound-only.example", "x@remote.example", "gina@inbound-only.example",
         "550 5.7.1 Submission is not enabled for domain inbound-only.example",
         "<gina@inbound-only.example>: Sender address rejected: Submission is not enabled for domain inbound-only.example"},
        {"eve@paused.example", "x@remote.example", "eve@paused.example",
         "450 4.7.1 Sender domain paused.example is temporarily suspended",
         "<eve@paused.example>: Sender address rejected: Sender domain paused.example is temporarily suspended"},
        {"carol@example.com", "x@remote.example", "carol@example.com",
         "450 4.7.1 Sender account <carol@example.com> is temporarily disabled",
         "<carol@example.com>: Sender address rejected: Sender account <carol@example.com> is temporarily disabled"},
        {"dave@example.com", "x@remote.example", "dave@example.com",
         "550 5.7.1 Sender account <dave@example.com> no longer exists",
         "<dave@example.com>: Sender address rejected: Sender account <dave@example.com> no longer exists"},
        {"frank@gone.example", "x@remote.example", "frank@gone.example",
         "550 5.7.1 Sender domain gone.example no longer exists",
         "<frank@gone.example>: Sender address rejected: Sender domain gone.example no longer exists"},
        {"x@remote.example", "bob@example.com", "", "DUNNO", ""},
    };
    // clang-format on
    for (const auto& r : rows) {
        PolicyInput in;
        in.state = RCPT;
        in.client_address = IpAddress::parse("198.51.100.1");
        in.sender = r.sender;
        in.recipient = r.recipient;
        in.sasl_username = r.sasl;
        in.tls_active = std::string_view(r.sender) != "ivy@secure.example";
        const PolicyDecision d = decide(in, cfg, directory());
        EXPECT_EQ(d.postfix_action(), r.want_action) << r.recipient;
        EXPECT_EQ(d.smtp_text(), r.want_smtp_text) << r.recipient;
    }
}

TEST(PolicyEngine, EchoedAddressesAreSanitised) {
    const PolicyConfig cfg = config(false, true, true, false);
    PolicyInput in;
    in.state = RCPT;
    in.sender = "x@remote.example";
    const std::string evil = "no\r\nbody\x7f@example.com";
    in.recipient = evil;
    PolicyDecision d = decide(in, cfg, directory());
    ASSERT_EQ(d.kind, REJECT);
    EXPECT_EQ(d.address, "no??body?@example.com");
    EXPECT_EQ(d.smtp_text().find_first_of("\r\n"), std::string::npos);

    const std::string long_sender = std::string(300, 'a') + "\n@example.com";
    in.sender = long_sender;
    in.sasl_username = "bob\r\n@example.com";
    d = decide(in, cfg, directory());
    ASSERT_EQ(d.reason, "sender_not_owned");
    EXPECT_EQ(d.postfix_action().find_first_of("\r\n"), std::string::npos);
    EXPECT_LE(d.address.size(), 259u);
    EXPECT_NE(d.postfix_action().find("by user bob??@example.com"), std::string::npos) << d.postfix_action();
}

TEST(PolicyEngine, ProtocolStateNames) {
    struct Row {
        const char* in;
        ProtocolState want;
    };
    const Row rows[] = {
        {"CONNECT", ProtocolState::connect},
        {"EHLO", ProtocolState::helo},
        {"HELO", ProtocolState::helo},
        {"MAIL", MAIL},
        {"rcpt", RCPT},
        {"DATA", DATA},
        {"END-OF-MESSAGE", ProtocolState::end_of_message},
        {"VRFY", ProtocolState::vrfy},
        {"ETRN", ProtocolState::etrn},
        {"BDAT", ProtocolState::unknown},
        {"", ProtocolState::unknown},
    };
    for (const auto& r : rows) EXPECT_EQ(parse_protocol_state(r.in), r.want) << r.in;
    EXPECT_EQ(to_string(ProtocolState::end_of_message), "END-OF-MESSAGE");
}

TEST(PolicyEngine, EnablePolicies) {
    struct Row {
        std::vector<std::string> names;
        bool want_ok;
        bool want_inject, want_vdomains, want_deposit, want_risk;
    };
    const Row rows[] = {
        {{}, true, false, false, false, false},
        {{"inject"}, true, true, false, false, false},
        {{"vdomains,deposit"}, true, false, true, true, false},
        {{"risk", "inject deposit"}, true, true, false, true, true},
        {{"vdomains, risk,"}, true, false, true, false, true},
        {{"vdomain"}, false, false, false, false, false},
    };
    for (const auto& r : rows) {
        PolicyConfig c;
        const auto on = c.enable(r.names);
        EXPECT_EQ(on.has_value(), r.want_ok);
        if (!r.want_ok) {
            EXPECT_EQ(on.error(), "unknown policy 'vdomain' (want inject, vdomains, deposit or risk)");
            continue;
        }
        EXPECT_EQ(c.inject, r.want_inject);
        EXPECT_EQ(c.vdomains, r.want_vdomains);
        EXPECT_EQ(c.deposit, r.want_deposit);
        EXPECT_EQ(c.risk, r.want_risk);
    }
}
