// sasl_test: the PLAIN and LOGIN mechanisms, server side: table rows of exchanges (the
// client's lines and what each step must be), the limits of every field, cancel, the
// encodings of the initial response, names in any case and the advertised list.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <xproxy/base/base64.hpp>
#include <xproxy/base/invariant.hpp>
#include <xproxy/wire/sasl.hpp>

using namespace xproxy;
using sasl::Step;

namespace {

std::string b64(std::string_view s) { return base64_encode(s); }

struct Row {
    const char* what;
    const char* mech;
    std::optional<std::string> initial;  // AUTH's second word
    std::vector<std::string> lines;      // the client's lines after each challenge
    std::vector<std::string> want_challenges;
    Step::Kind want_kind;
    std::string want_authzid, want_authcid, want_secret;
    std::string want_reason;  // a substring; "" for done
};

std::vector<Row> rows() {
    using namespace std::string_literals;
    const std::string f255(255, 'u'), f256(256, 'u');
    return {
        {"plain initial", "PLAIN", b64("\0alice\0secret"s), {}, {}, Step::done, "", "alice", "secret", ""},
        {"plain with authzid",
         "plain",
         b64("admin\0alice\0secret"s),
         {},
         {},
         Step::done,
         "admin",
         "alice",
         "secret",
         ""},
        {"plain after a challenge", "Plain", std::nullopt, {b64("\0bob\0pw"s)}, {""}, Step::done, "", "bob", "pw", ""},
        {"plain utf-8 and 8-bit",
         "PLAIN",
         b64("\0j\xc3\xb6rg\0p\xe4ss"s),
         {},
         {},
         Step::done,
         "",
         "j\xc3\xb6rg",
         "p\xe4ss",
         ""},
        {"plain tab and space kept", "PLAIN", b64("\0a b\tc\0 p w "s), {}, {}, Step::done, "", "a b\tc", " p w ", ""},
        {"plain 255 bytes each",
         "PLAIN",
         b64(f255 + '\0' + f255 + '\0' + f255),
         {},
         {},
         Step::done,
         f255,
         f255,
         f255,
         ""},
        {"plain authzid 256",
         "PLAIN",
         b64(f256 + '\0' + "a\0p"s),
         {},
         {},
         Step::bad_credentials,
         "",
         "",
         "",
         "too long"},
        {"plain authcid 256",
         "PLAIN",
         b64("\0"s + f256 + "\0p"s),
         {},
         {},
         Step::bad_credentials,
         "",
         "",
         "",
         "too long"},
        {"plain password 256", "PLAIN", b64("\0a\0"s + f256), {}, {}, Step::bad_credentials, "", "", "", "too long"},
        {"plain one NUL", "PLAIN", b64("alice\0secret"s), {}, {}, Step::bad_credentials, "", "", "", "two NULs"},
        {"plain no NUL", "PLAIN", b64("alicesecret"), {}, {}, Step::bad_credentials, "", "", "", "two NULs"},
        {"plain three NULs", "PLAIN", b64("\0a\0b\0c"s), {}, {}, Step::bad_credentials, "", "", "", "more than two"},
        {"plain empty authcid",
         "PLAIN",
         b64("\0\0secret"s),
         {},
         {},
         Step::bad_credentials,
         "",
         "",
         "",
         "authcid is empty"},
        {"plain empty password",
         "PLAIN",
         b64("\0alice\0"s),
         {},
         {},
         Step::bad_credentials,
         "",
         "",
         "",
         "password is empty"},
        {"plain CR in authcid", "PLAIN", b64("\0al\rice\0pw"s), {}, {}, Step::bad_credentials, "", "", "", "CR or LF"},
        {"plain LF in password", "PLAIN", b64("\0alice\0p\nw"s), {}, {}, Step::bad_credentials, "", "", "", "CR or LF"},
        {"plain CR in authzid",
         "PLAIN",
         b64("a\rz\0alice\0pw"s),
         {},
         {},
         Step::bad_credentials,
         "",
         "",
         "",
         "CR or LF"},
        {"plain '=' is empty", "PLAIN", "=", {}, {}, Step::bad_credentials, "", "", "", "two NULs"},
        {"plain not base64", "PLAIN", "AGFsaWNlAHNlY3JldA", {}, {}, Step::bad_encoding, "", "", "", "not base64"},
        {"plain '*' initial", "PLAIN", "*", {}, {}, Step::bad_encoding, "", "", "", "not base64"},
        {"plain cancelled", "PLAIN", std::nullopt, {"*"}, {""}, Step::cancelled, "", "", "", "cancel"},
        {"plain '=' after a challenge",
         "PLAIN",
         std::nullopt,
         {"="},
         {""},
         Step::bad_encoding,
         "",
         "",
         "",
         "not base64"},
        {"plain space in base64",
         "PLAIN",
         std::nullopt,
         {" AGFsaWNlAHNlY3JldA=="},
         {""},
         Step::bad_encoding,
         "",
         "",
         "",
         "not base64"},
        {"plain too long to decode",
         "PLAIN",
         b64(std::string(770, 'x')),
         {},
         {},
         Step::bad_credentials,
         "",
         "",
         "",
         "too long"},
        {"login",
         "LOGIN",
         std::nullopt,
         {b64("alice"), b64("secret")},
         {"VXNlcm5hbWU6", "UGFzc3dvcmQ6"},
         Step::done,
         "",
         "alice",
         "secret",
         ""},
        {"login initial user",
         "login",
         b64("alice"),
         {b64("secret")},
         {"UGFzc3dvcmQ6"},
         Step::done,
         "",
         "alice",
         "secret",
         ""},
        {"login 255 bytes",
         "LOGIN",
         std::nullopt,
         {b64(f255), b64(f255)},
         {"VXNlcm5hbWU6", "UGFzc3dvcmQ6"},
         Step::done,
         "",
         f255,
         f255,
         ""},
        {"login user 256",
         "LOGIN",
         std::nullopt,
         {b64(f256)},
         {"VXNlcm5hbWU6"},
         Step::bad_credentials,
         "",
         "",
         "",
         "too long"},
        {"login password 256",
         "LOGIN",
         b64("a"),
         {b64(f256)},
         {"UGFzc3dvcmQ6"},
         Step::bad_credentials,
         "",
         "",
         "",
         "too long"},
        {"login empty user",
         "LOGIN",
         std::nullopt,
         {""},
         {"VXNlcm5hbWU6"},
         Step::bad_credentials,
         "",
         "",
         "",
         "user name is empty"},
        {"login '=' initial", "LOGIN", "=", {}, {}, Step::bad_credentials, "", "", "", "user name is empty"},
        {"login empty password",
         "LOGIN",
         b64("a"),
         {""},
         {"UGFzc3dvcmQ6"},
         Step::bad_credentials,
         "",
         "",
         "",
         "password is empty"},
        {"login NUL in user", "LOGIN", b64("a\0b"s), {}, {}, Step::bad_credentials, "", "", "", "NUL, CR or LF"},
        {"login CR in user",
         "LOGIN",
         std::nullopt,
         {b64("a\rb")},
         {"VXNlcm5hbWU6"},
         Step::bad_credentials,
         "",
         "",
         "",
         "NUL, CR or LF"},
        {"login LF in password",
         "LOGIN",
         b64("a"),
         {b64("p\nw")},
         {"UGFzc3dvcmQ6"},
         Step::bad_credentials,
         "",
         "",
         "",
         "NUL, CR or LF"},
        {"login NUL in password",
         "LOGIN",
         b64("a"),
         {b64("p\0w"s)},
         {"UGFzc3dvcmQ6"},
         Step::bad_credentials,
         "",
         "",
         "",
         "NUL, CR or LF"},
        {"login cancel at user", "LOGIN", std::nullopt, {"*"}, {"VXNlcm5hbWU6"}, Step::cancelled, "", "", "", "cancel"},
        {"login cancel at password", "LOGIN", b64("a"), {"*"}, {"UGFzc3dvcmQ6"}, Step::cancelled, "", "", "", "cancel"},
        {"login bad base64 password",
         "LOGIN",
         b64("a"),
         {"cGFzcw"},
         {"UGFzc3dvcmQ6"},
         Step::bad_encoding,
         "",
         "",
         "",
         "not base64"},
    };
}

TEST(Sasl, Exchanges) {
    for (const Row& r : rows()) {
        SCOPED_TRACE(r.what);
        auto m = sasl::make_mechanism(r.mech);
        ASSERT_NE(m, nullptr);
        EXPECT_EQ(m->kind(), sasl::Credentials::Kind::password);
        Step s = m->start(r.initial ? std::optional<std::string_view>(*r.initial) : std::nullopt);
        std::vector<std::string> challenges;
        std::size_t next = 0;
        while (s.kind == Step::challenge) {
            challenges.push_back(s.challenge_b64);
            ASSERT_LT(next, r.lines.size()) << "more challenges than the row has lines";
            s = m->next(r.lines[next++]);
        }
        EXPECT_EQ(next, r.lines.size());
        EXPECT_EQ(challenges, r.want_challenges);
        EXPECT_EQ(s.kind, r.want_kind);
        if (r.want_kind == Step::done) {
            EXPECT_EQ(s.credentials.authzid, r.want_authzid);
            EXPECT_EQ(s.credentials.authcid, r.want_authcid);
            EXPECT_EQ(s.credentials.secret.view(), r.want_secret);
            EXPECT_EQ(s.credentials.kind, sasl::Credentials::Kind::password);
            EXPECT_TRUE(s.reason.empty());
        } else {
            EXPECT_NE(s.reason.find(r.want_reason), std::string::npos) << s.reason;
            EXPECT_TRUE(s.credentials.authcid.empty());
            EXPECT_TRUE(s.credentials.secret.empty());
        }
        // No reason ever quotes what the client sent.
        for (const auto& line : r.lines)
            if (line.size() > 2) {
                EXPECT_EQ(s.reason.find(line), std::string::npos);
            }
        if (!r.want_secret.empty()) {
            EXPECT_EQ(s.reason.find(r.want_secret), std::string::npos);
        }
    }
}

TEST(Sasl, NamesInAnyCaseAndTheAdvertisedList) {
    for (const char* n : {"PLAIN", "plain", "pLaIn"}) {
        auto m = sasl::make_mechanism(n);
        ASSERT_NE(m, nullptr) << n;
        EXPECT_EQ(m->name(), "PLAIN");
    }
    for (const char* n : {"LOGIN", "login"}) {
        auto m = sasl::make_mechanism(n);
        ASSERT_NE(m, nullptr) << n;
        EXPECT_EQ(m->name(), "LOGIN");
    }
    for (const char* n : {"", "CRAM-MD5", "PLAIN ", "XOAUTH2", "OAUTHBEARER", "PLAI", "LOGINX"})
        EXPECT_EQ(sasl::make_mechanism(n), nullptr) << n;
    EXPECT_EQ(sasl::mechanism_names(), "PLAIN LOGIN");
    // every advertised name makes a mechanism of that name
    std::string_view names = sasl::mechanism_names();
    while (!names.empty()) {
        const std::size_t sp = names.find(' ');
        const std::string_view n = names.substr(0, sp);
        auto m = sasl::make_mechanism(n);
        ASSERT_NE(m, nullptr) << n;
        EXPECT_EQ(m->name(), n);
        names = sp == std::string_view::npos ? std::string_view() : names.substr(sp + 1);
    }
}

TEST(SaslDeath, NextAfterTheEndIsABug) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_DEATH(
        {
            auto m = sasl::make_mechanism("PLAIN");
            (void)m->start(std::string_view("AGEAYg=="));
            (void)m->next("AGEAYg==");
        },
        "");
    EXPECT_DEATH(
        {
            auto m = sasl::make_mechanism("LOGIN");
            (void)m->start(std::nullopt);
            (void)m->start(std::nullopt);
        },
        "");
}

}  // namespace
