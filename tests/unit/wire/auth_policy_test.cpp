// wire_auth_policy_test: the Dovecot auth policy codec (xproxy/wire/auth_policy.hpp):
// requests as Dovecot 2.3 writes them decode to their members, everything else that is
// not one well-formed object is refused with a reason, unknown members of any type are
// skipped, and replies are the JSON Dovecot reads.
#include <gtest/gtest.h>

#include <string>

#include <xproxy/wire/auth_policy.hpp>

using namespace xproxy;
using namespace xproxy::dovecot;

TEST(AuthPolicyCommand, Table) {
    struct Row {
        const char* target;
        bool want_ok;
        PolicyCommand want;
        const char* want_error;
    };
    const Row rows[] = {
        {"/?command=allow", true, PolicyCommand::allow, ""},
        {"/?command=report", true, PolicyCommand::report, ""},
        {"/policy?site=a&command=report", true, PolicyCommand::report, ""},  // auth_policy_server_url ending in &
        {"/?command=allow&x=1", true, PolicyCommand::allow, ""},
        {"/", false, PolicyCommand::allow, "no command= in the request target"},
        {"/?x=allow", false, PolicyCommand::allow, "no command= in the request target"},
        {"/?command=deny", false, PolicyCommand::allow, "unknown command (want allow or report)"},
        {"/?command=ALLOW", false, PolicyCommand::allow, "unknown command (want allow or report)"},
        {"/?command=allow&command=report", false, PolicyCommand::allow, "command= appears twice in the request target"},
    };
    for (const auto& r : rows) {
        auto got = parse_policy_command(r.target);
        EXPECT_EQ(got.has_value(), r.want_ok) << r.target;
        if (got) EXPECT_EQ(*got, r.want) << r.target;
        else EXPECT_EQ(got.error(), r.want_error) << r.target;
    }
}

TEST(AuthPolicyRequest, DovecotAllowRequest) {
    // What Dovecot 2.3.19 sends for the attributes of doc/dovecot-auth-policy.md: sorted
    // keys, every value a string, then "tls".
    auto r = decode_auth_policy_request(
        R"({"login":"alice@example.com","protocol":"imap","remote":"192.0.2.7","session_id":"abc+1","tls":true})");
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->login, "alice@example.com");
    EXPECT_TRUE(r->has_login);
    EXPECT_EQ(r->protocol, "imap");
    EXPECT_TRUE(r->has_protocol);
    EXPECT_EQ(r->remote, "192.0.2.7");
    EXPECT_EQ(r->session_id, "abc+1");
    EXPECT_TRUE(r->tls);
    EXPECT_FALSE(r->success.has_value());
    EXPECT_FALSE(r->policy_reject.has_value());
}

TEST(AuthPolicyRequest, DovecotMasterUserLogin) {
    // Dovecot 2.3.19 for "alice@example.com*admin" with master=%{master_user} among the
    // attributes: login is the user opened; "master" is empty for every other login.
    auto r = decode_auth_policy_request(
        R"({"login":"alice@example.com","master":"admin","protocol":"imap","remote":"192.0.2.7","tls":false})");
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->login, "alice@example.com");
    EXPECT_EQ(r->master, "admin");
    r = decode_auth_policy_request(R"({"login":"alice@example.com","master":"","protocol":"imap","tls":false})");
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->master, "");
}

TEST(AuthPolicyRequest, DovecotReportRequestWithExtraMembers) {
    auto r = decode_auth_policy_request(
        R"({"device_id":"","login":"bob","pwhash":"a1b","attrs":{"login":"nested is not ours","n":[1,2,{"x":null}]},)"
        R"("protocol":"pop3","success":false,"policy_reject":true,"tls":false,"n":-1.5e3})");
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->login, "bob");  // the nested "login" is not the top-level one
    EXPECT_EQ(r->protocol, "pop3");
    ASSERT_TRUE(r->success.has_value());
    EXPECT_FALSE(*r->success);
    ASSERT_TRUE(r->policy_reject.has_value());
    EXPECT_TRUE(*r->policy_reject);
    EXPECT_FALSE(r->tls);
}

TEST(AuthPolicyRequest, EscapesDecode) {
    auto r = decode_auth_policy_request(R"({"login":"a\"b\\c\u0000\n\u00e9"})");
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->login, std::string("a\"b\\c\0\n\xc3\xa9", 9));
    EXPECT_FALSE(r->has_protocol);
}

TEST(AuthPolicyRequest, RefusedInputs) {
    struct Row {
        std::string json;
        const char* want_error;
    };
    const Row rows[] = {
        {"", "malformed JSON"},
        {"[]", "not a JSON object"},
        {"\"login\"", "not a JSON object"},
        {"{\"login\":\"a\"", "malformed JSON"},  // truncated
        {"{\"login\":\"a\"} {}", "malformed JSON"},
        {"{\"login\":\"a\",}", "malformed JSON"},
        {"{\"login\":\"\xff\"}", "malformed JSON"},  // not UTF-8
        {"{\"login\":1}", "a known member is not a string"},
        {"{\"login\":null}", "a known member is not a string"},
        {"{\"login\":{\"x\":\"y\"}}", "a known member is not a string or boolean"},
        {"{\"protocol\":[\"imap\"]}", "a known member is not a string or boolean"},
        {"{\"tls\":\"yes\"}", "a known member is not a boolean"},
        {"{\"master\":true}", "a known member is not a string"},
        {"{\"master\":\"a\",\"login\":\"b\",\"master\":\"c\"}", "a known member appears twice"},
        {"{\"master\":\"" + std::string(kMaxAuthPolicyField + 1, 'a') + "\"}", "a member is too long"},
        {"{\"login\":\"a\",\"login\":\"b\"}", "a known member appears twice"},
        {"{\"login\":\"" + std::string(kMaxAuthPolicyField + 1, 'a') + "\"}", "a member is too long"},
        {"{\"x\":" + std::string(kMaxAuthPolicyDepth, '[') + std::string(kMaxAuthPolicyDepth, ']') + "}",
         "JSON nested too deeply"},
    };
    for (const auto& r : rows) {
        auto got = decode_auth_policy_request(r.json);
        ASSERT_FALSE(got) << r.json;
        EXPECT_EQ(got.error(), r.want_error) << r.json;
    }
    // One level less than the limit is fine; a field of exactly the limit too.
    EXPECT_TRUE(decode_auth_policy_request("{\"x\":" + std::string(kMaxAuthPolicyDepth - 1, '[') +
                                           std::string(kMaxAuthPolicyDepth - 1, ']') + "}"));
    EXPECT_TRUE(decode_auth_policy_request("{\"login\":\"" + std::string(kMaxAuthPolicyField, 'a') + "\"}"));
}

TEST(AuthPolicyRequest, EveryStrictPrefixOfAValidRequestIsRefused) {
    const std::string valid = R"({"login":"alice","protocol":"imap","tls":false})";
    ASSERT_TRUE(decode_auth_policy_request(valid));
    for (std::size_t n = 0; n < valid.size(); ++n) EXPECT_FALSE(decode_auth_policy_request(valid.substr(0, n))) << n;
}

TEST(AuthPolicyReply, Encodes) {
    EXPECT_EQ(encode_auth_policy_reply(0, ""), R"({"msg":"","status":0})");
    EXPECT_EQ(encode_auth_policy_reply(-1, "Mail domain \"x\" suspended\n"),
              R"({"msg":"Mail domain \"x\" suspended\n","status":-1})");
    EXPECT_EQ(encode_auth_policy_reply(-1, "bad \xff byte"), "{\"msg\":\"bad \xef\xbf\xbd byte\",\"status\":-1}");
}
