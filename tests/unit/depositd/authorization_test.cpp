// authorization_test: who may deposit what (doc/deposit.md, "Authorization"), on a
// directory file: the identity itself, a directory user's aliases and login= addresses,
// hosted recipients only for outsiders, relaying for active hosted users, and the
// directory's states.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include <xproxy/policy/directory_file.hpp>

#include "authorization.hpp"

using namespace xproxy;
using namespace xproxy::depositd;

namespace {

const Directory& directory() {
    static const Directory d = [] {
        auto parsed = parse_directory(
            "domain example.com\n"
            "user alice@example.com alias=a.smith login=alice@idp.example\n"
            "user bob@example.com\n"
            "user held@example.com state=hold\n"
            "user gone@example.com state=disabled\n"
            "user sleepy@example.com state=inactive\n"
            "domain nosub.example services=smtp\n"
            "user carol@nosub.example\n"
            "domain off.example state=disabled\n"
            "user dan@off.example\n");
        EXPECT_TRUE(parsed) << parsed.error();
        return parsed ? std::move(*parsed) : Directory();
    }();
    return d;
}

struct Row {
    const char* name;
    const char* identity;
    const char* sender;
    const char* from;
    std::vector<std::string> recipients;
    int want_status;
    const char* want_reason;
};

TEST(Authorization, Rule) {
    const Row rows[] = {
        // an outsider (not in the directory) deposits as itself to hosted users
        {"outsider to hosted",
         "ext@other.example",
         "ext@other.example",
         "ext@other.example",
         {"bob@example.com"},
         200,
         ""},
        {"identity any case",
         "Ext@Other.Example",
         "ext@other.example",
         "EXT@other.example",
         {"bob@example.com"},
         200,
         ""},
        {"outsider other sender",
         "ext@other.example",
         "boss@other.example",
         "ext@other.example",
         {"bob@example.com"},
         403,
         "sender_not_allowed"},
        {"outsider other From",
         "ext@other.example",
         "ext@other.example",
         "boss@other.example",
         {"bob@example.com"},
         403,
         "sender_not_allowed"},
        {"outsider as hosted user",
         "ext@other.example",
         "bob@example.com",
         "bob@example.com",
         {"bob@example.com"},
         403,
         "sender_not_allowed"},
        {"outsider relays",
         "ext@other.example",
         "ext@other.example",
         "ext@other.example",
         {"x@elsewhere.example"},
         403,
         "recipient_not_hosted"},
        {"outsider second recipient",
         "ext@other.example",
         "ext@other.example",
         "ext@other.example",
         {"bob@example.com", "x@elsewhere.example"},
         403,
         "recipient_not_hosted"},
        {"unknown hosted recipient",
         "ext@other.example",
         "ext@other.example",
         "ext@other.example",
         {"nobody@example.com"},
         403,
         "recipient_refused"},
        {"disabled recipient",
         "ext@other.example",
         "ext@other.example",
         "ext@other.example",
         {"gone@example.com"},
         403,
         "recipient_refused"},
        {"inactive recipient: later",
         "ext@other.example",
         "ext@other.example",
         "ext@other.example",
         {"sleepy@example.com"},
         503,
         "policy_deferred"},
        {"held recipient accepted (held by the MTA)",
         "ext@other.example",
         "ext@other.example",
         "ext@other.example",
         {"held@example.com"},
         200,
         ""},
        {"null sender", "ext@other.example", "", "ext@other.example", {"bob@example.com"}, 403, "sender_not_allowed"},
        // a directory user by its login= name
        {"login sends as its user",
         "alice@idp.example",
         "alice@example.com",
         "a.smith@example.com",
         {"x@elsewhere.example"},
         200,
         ""},
        {"login may not send as another user",
         "alice@idp.example",
         "bob@example.com",
         "alice@example.com",
         {"bob@example.com"},
         403,
         "sender_not_allowed"},
        {"hosted user relays",
         "bob@example.com",
         "bob@example.com",
         "bob@example.com",
         {"x@elsewhere.example"},
         200,
         ""},
        {"hosted user, alias of another",
         "bob@example.com",
         "bob@example.com",
         "a.smith@example.com",
         {"x@elsewhere.example"},
         403,
         "sender_not_allowed"},
        {"held user may not send",
         "held@example.com",
         "held@example.com",
         "held@example.com",
         {"bob@example.com"},
         503,
         "policy_deferred"},
        {"disabled user may not send",
         "gone@example.com",
         "gone@example.com",
         "gone@example.com",
         {"bob@example.com"},
         403,
         "login_refused"},
        {"domain without submission",
         "carol@nosub.example",
         "carol@nosub.example",
         "carol@nosub.example",
         {"bob@example.com"},
         403,
         "login_refused"},
        {"disabled domain",
         "dan@off.example",
         "dan@off.example",
         "dan@off.example",
         {"bob@example.com"},
         403,
         "login_refused"},
        {"identity in a hosted domain but no such user",
         "ghost@example.com",
         "ghost@example.com",
         "ghost@example.com",
         {"bob@example.com"},
         403,
         "login_refused"},
    };
    for (const auto& r : rows) {
        DepositEnvelope env{r.identity, r.sender, r.from, r.recipients, {}};
        const Authorization a = authorize(env, directory());
        EXPECT_EQ(a.status, r.want_status) << r.name << ": " << a.reason << " " << a.detail;
        EXPECT_EQ(a.reason, r.want_reason) << r.name << ": " << a.detail;
    }
}

TEST(Authorization, OtherSenderFields) {
    const auto with = [](const char* identity, std::vector<std::pair<std::string, std::string>> others) {
        return authorize({identity, identity, identity, {"bob@example.com"}, std::move(others)}, directory());
    };
    EXPECT_TRUE(with("ext@other.example", {{"Sender", "ext@other.example"}}).allowed());
    EXPECT_TRUE(
        with("alice@idp.example", {{"Sender", "a.smith@example.com"}, {"Resent-From", "alice@example.com"}}).allowed());
    const std::pair<const char*, std::vector<std::pair<std::string, std::string>>> refused[] = {
        {"ext@other.example", {{"Sender", "alice@example.com"}}},
        {"ext@other.example", {{"Resent-From", "ext@other.example"}, {"Resent-From", "boss@other.example"}}},
        {"ext@other.example", {{"Resent-Sender", "bob@example.com"}}},
        {"alice@idp.example", {{"Sender", "bob@example.com"}}},
    };
    for (const auto& [identity, others] : refused) {
        const Authorization a = with(identity, others);
        EXPECT_EQ(a.status, 403) << identity << " " << others.back().second;
        EXPECT_EQ(a.reason, "sender_not_allowed");
        EXPECT_NE(a.detail.find(others.back().first), std::string::npos) << a.detail;
    }
}

TEST(Authorization, CanonicalIdentity) {
    EXPECT_EQ(canonical_identity("alice@example.com"), "alice@example.com");
    EXPECT_EQ(canonical_identity("Alice@Example.COM"), "alice@example.com");
    EXPECT_EQ(canonical_identity("a.b+tag_x@sub.example-1.org"), "a.b+tag_x@sub.example-1.org");
    EXPECT_EQ(canonical_identity("J\xc3\xb6rg@B\xc3\xbc"
                                 "cher.example"),
              "j\xc3\xb6rg@b\xc3\xbc"
              "cher.example");
    for (const char* bad : {"<alice@example.com>",
                            "@x.example:alice@example.com",
                            "\"alice\"@example.com",
                            "alice@example.com.",
                            "alice @example.com",
                            "alice@example.com ",
                            "alice",
                            "@example.com",
                            "alice@",
                            "a..b@example.com",
                            ".a@example.com",
                            "a.@example.com",
                            "a@b@example.com",
                            "alice@exa_mple.com",
                            "alice@[127.0.0.1]",
                            "ali\x01"
                            "ce@example.com",
                            "alice@example..com",
                            "ali\x7f@example.com",
                            "a,b@example.com",
                            ""})
        EXPECT_FALSE(canonical_identity(bad)) << bad;
    EXPECT_FALSE(canonical_identity(std::string(315, 'a') + "@x.example"));
    // The form is idempotent, and the rule's comparisons see one identity.
    EXPECT_EQ(canonical_identity(*canonical_identity("Ext@Other.Example")), "ext@other.example");
}

TEST(Authorization, RelayFlag) {
    EXPECT_TRUE(authorize({"bob@example.com", "bob@example.com", "bob@example.com", {"x@y.example"}, {}}, directory())
                    .may_relay);
    EXPECT_FALSE(
        authorize({"ext@other.example", "ext@other.example", "ext@other.example", {"bob@example.com"}, {}}, directory())
            .may_relay);
}

TEST(Authorization, DirectoryNotLoaded) {
    const Directory empty;
    const Authorization a = authorize(
        {"ext@other.example", "ext@other.example", "ext@other.example", {"bob@example.com"}, {}}, empty);
    EXPECT_EQ(a.status, 503);
    EXPECT_EQ(a.reason, "directory_unavailable");
}

}  // namespace
