// sasl_test: the PLAIN and LOGIN mechanisms, server side: table rows of exchanges (the
// client's lines and what each step must be), the limits of every field, cancel, the
// encodings of the initial response, names in any case and the advertised list.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <xproxy/base/base64.hpp>
#include <xproxy/base/invariant.hpp>
#include <xproxy/wire/sasl.hpp>

using namespace xproxy;
using sasl::Step;

namespace {

std::string b64(std::string_view s) { return base64_encode(s); }

const std::string kUser = "VXNlcm5hbWU6", kPass = "UGFzc3dvcmQ6";  // "Username:", "Password:"

// One exchange: AUTH <mech> [initial], then the client's lines after each challenge.
struct Exchange {
    const char* mech;
    std::optional<std::string> initial;
    std::vector<std::string> lines;
};

struct Ran {
    std::vector<std::string> challenges;
    Step last;
};

Ran run(const Exchange& e) {
    Ran out;
    auto m = sasl::make_mechanism(e.mech);
    EXPECT_NE(m, nullptr);
    if (!m) return out;
    EXPECT_EQ(m->kind(), sasl::Credentials::Kind::password);
    out.last = m->start(e.initial ? std::optional<std::string_view>(*e.initial) : std::nullopt);
    std::size_t next = 0;
    while (out.last.kind == Step::challenge) {
        out.challenges.push_back(out.last.challenge_b64);
        if (next == e.lines.size()) {
            ADD_FAILURE() << "more challenges than the exchange has lines";
            break;
        }
        out.last = m->next(e.lines[next++]);
    }
    EXPECT_EQ(next, e.lines.size()) << "lines left after the end";
    return out;
}

using namespace std::string_literals;
const std::string f255(255, 'u'), f256(256, 'u');

struct DoneRow {
    const char* what;
    Exchange in;
    std::vector<std::string> want_challenges;
    std::string want_authzid, want_authcid, want_secret;
};

const std::vector<DoneRow>& done_rows() {
    static const std::vector<DoneRow> rows = {
        {"plain initial", {"PLAIN", b64("\0alice\0secret"s), {}}, {}, "", "alice", "secret"},
        {"plain authzid", {"plain", b64("admin\0alice\0secret"s), {}}, {}, "admin", "alice", "secret"},
        {"plain after a challenge", {"Plain", std::nullopt, {b64("\0bob\0pw"s)}}, {""}, "", "bob", "pw"},
        {"plain 8-bit", {"PLAIN", b64("\0j\xc3\xb6rg\0p\xe4ss"s), {}}, {}, "", "j\xc3\xb6rg", "p\xe4ss"},
        {"plain tab, space", {"PLAIN", b64("\0a b\tc\0 p w "s), {}}, {}, "", "a b\tc", " p w "},
        {"plain 255 bytes", {"PLAIN", b64(f255 + '\0' + f255 + '\0' + f255), {}}, {}, f255, f255, f255},
        {"login", {"LOGIN", std::nullopt, {b64("alice"), b64("secret")}}, {kUser, kPass}, "", "alice", "secret"},
        {"login initial user", {"login", b64("alice"), {b64("secret")}}, {kPass}, "", "alice", "secret"},
        {"login 255 bytes", {"LOGIN", std::nullopt, {b64(f255), b64(f255)}}, {kUser, kPass}, "", f255, f255},
    };
    return rows;
}

struct RefusedRow {
    const char* what;
    Exchange in;
    Step::Kind want_kind;
    const char* want_reason;  // a piece of it
};

const std::vector<RefusedRow>& refused_rows() {
    static const std::vector<RefusedRow> rows = {
        {"plain authzid 256", {"PLAIN", b64(f256 + '\0' + "a\0p"s), {}}, Step::bad_credentials, "too long"},
        {"plain authcid 256", {"PLAIN", b64("\0"s + f256 + "\0p"s), {}}, Step::bad_credentials, "too long"},
        {"plain password 256", {"PLAIN", b64("\0a\0"s + f256), {}}, Step::bad_credentials, "too long"},
        {"plain one NUL", {"PLAIN", b64("alice\0secret"s), {}}, Step::bad_credentials, "two NULs"},
        {"plain no NUL", {"PLAIN", b64("alicesecret"), {}}, Step::bad_credentials, "two NULs"},
        {"plain three NULs", {"PLAIN", b64("\0a\0b\0c"s), {}}, Step::bad_credentials, "more than two"},
        {"plain empty authcid", {"PLAIN", b64("\0\0secret"s), {}}, Step::bad_credentials, "authcid is empty"},
        {"plain empty password", {"PLAIN", b64("\0alice\0"s), {}}, Step::bad_credentials, "password is empty"},
        {"plain CR in authcid", {"PLAIN", b64("\0al\rice\0pw"s), {}}, Step::bad_credentials, "CR or LF"},
        {"plain LF in password", {"PLAIN", b64("\0alice\0p\nw"s), {}}, Step::bad_credentials, "CR or LF"},
        {"plain CR in authzid", {"PLAIN", b64("a\rz\0alice\0pw"s), {}}, Step::bad_credentials, "CR or LF"},
        {"plain '=' is empty", {"PLAIN", "=", {}}, Step::bad_credentials, "two NULs"},
        {"plain no padding", {"PLAIN", "AGFsaWNlAHNlY3JldA", {}}, Step::bad_encoding, "not base64"},
        {"plain '*' initial", {"PLAIN", "*", {}}, Step::bad_encoding, "not base64"},
        {"plain cancelled", {"PLAIN", std::nullopt, {"*"}}, Step::cancelled, "cancel"},
        {"plain '=' later", {"PLAIN", std::nullopt, {"="}}, Step::bad_encoding, "not base64"},
        {"plain space", {"PLAIN", std::nullopt, {" AGFsaWNlAHNlY3JldA=="}}, Step::bad_encoding, "not base64"},
        {"plain too long", {"PLAIN", b64(std::string(770, 'x')), {}}, Step::bad_credentials, "too long"},
        {"login user 256", {"LOGIN", std::nullopt, {b64(f256)}}, Step::bad_credentials, "too long"},
        {"login password 256", {"LOGIN", b64("a"), {b64(f256)}}, Step::bad_credentials, "too long"},
        {"login empty user", {"LOGIN", std::nullopt, {""}}, Step::bad_credentials, "user name is empty"},
        {"login '=' initial", {"LOGIN", "=", {}}, Step::bad_credentials, "user name is empty"},
        {"login empty password", {"LOGIN", b64("a"), {""}}, Step::bad_credentials, "password is empty"},
        {"login NUL in user", {"LOGIN", b64("a\0b"s), {}}, Step::bad_credentials, "NUL, CR or LF"},
        {"login CR in user", {"LOGIN", std::nullopt, {b64("a\rb")}}, Step::bad_credentials, "NUL, CR or LF"},
        {"login LF in password", {"LOGIN", b64("a"), {b64("p\nw")}}, Step::bad_credentials, "NUL, CR or LF"},
        {"login NUL in password", {"LOGIN", b64("a"), {b64("p\0w"s)}}, Step::bad_credentials, "NUL, CR or LF"},
        {"login cancel at user", {"LOGIN", std::nullopt, {"*"}}, Step::cancelled, "cancel"},
        {"login cancel at password", {"LOGIN", b64("a"), {"*"}}, Step::cancelled, "cancel"},
        {"login bad password", {"LOGIN", b64("a"), {"cGFzcw"}}, Step::bad_encoding, "not base64"},
    };
    return rows;
}

TEST(Sasl, Done) {
    for (const auto& r : done_rows()) {
        SCOPED_TRACE(r.what);
        const Ran ran = run(r.in);
        EXPECT_EQ(ran.challenges, r.want_challenges);
        ASSERT_EQ(ran.last.kind, Step::done) << ran.last.reason;
        EXPECT_EQ(ran.last.credentials.authzid, r.want_authzid);
        EXPECT_EQ(ran.last.credentials.authcid, r.want_authcid);
        EXPECT_EQ(ran.last.credentials.secret.view(), r.want_secret);
        EXPECT_EQ(ran.last.credentials.kind, sasl::Credentials::Kind::password);
        EXPECT_TRUE(ran.last.reason.empty());
    }
}

TEST(Sasl, Refused) {
    for (const auto& r : refused_rows()) {
        SCOPED_TRACE(r.what);
        const Ran ran = run(r.in);
        EXPECT_EQ(ran.last.kind, r.want_kind);
        EXPECT_NE(ran.last.reason.find(r.want_reason), std::string::npos) << ran.last.reason;
        EXPECT_TRUE(ran.last.credentials.authcid.empty());
        EXPECT_TRUE(ran.last.credentials.secret.empty());
        for (const auto& line : r.in.lines) {  // no reason quotes what the client sent
            if (line.size() > 2) {
                EXPECT_EQ(ran.last.reason.find(line), std::string::npos);
            }
        }
    }
}

TEST(Sasl, NamesInAnyCaseAndTheAdvertisedList) {
    const std::pair<const char*, const char*> spellings[] = {
        {"PLAIN", "PLAIN"}, {"plain", "PLAIN"}, {"pLaIn", "PLAIN"}, {"LOGIN", "LOGIN"}, {"login", "LOGIN"}};
    for (const auto& [asked, want] : spellings) {
        auto m = sasl::make_mechanism(asked);
        ASSERT_NE(m, nullptr) << asked;
        EXPECT_EQ(m->name(), want);
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
