// jwt_test: tokens minted by PyJWT (fixtures/mint.py) against the fixture JWK set: the
// three algorithms accepted, and every refusal with its own reason, in particular the
// attacks on JWT libraries (alg none, HS256 keyed with the RSA public key, a key used
// with another algorithm, a tampered payload or signature).
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include <xproxy/jose/base64url.hpp>
#include <xproxy/jose/jws.hpp>
#include <xproxy/jose/jwt.hpp>

#include "jose_fixtures.hpp"

using namespace xproxy;
using namespace xproxy::jose;
using xproxy::test::fixture;
using xproxy::test::kIssued;
using xproxy::test::kNow;

namespace {

const Jwks& fixture_keys() {
    static const Jwks keys = *Jwks::parse(fixture("jwks.json"));
    return keys;
}

JwtPolicy policy() {
    JwtPolicy p;
    p.issuer = "https://idp.test";
    p.audience = "xproxy";
    return p;
}

// The token with its part `part` (0 header, 1 payload, 2 signature) replaced by `bytes`.
std::string with_part(const std::string& token, int part, const std::string& bytes) {
    const auto d1 = token.find('.');
    const auto d2 = token.find('.', d1 + 1);
    std::string parts[3] = {token.substr(0, d1), token.substr(d1 + 1, d2 - d1 - 1), token.substr(d2 + 1)};
    parts[part] = base64url_encode(bytes);
    return parts[0] + "." + parts[1] + "." + parts[2];
}
std::string part(const std::string& token, int n) {
    const auto d1 = token.find('.');
    const auto d2 = token.find('.', d1 + 1);
    const std::string s = n == 0   ? token.substr(0, d1)
                          : n == 1 ? token.substr(d1 + 1, d2 - d1 - 1)
                                   : token.substr(d2 + 1);
    return *base64url_decode(s);
}

}  // namespace

TEST(Jwt, ValidTokensOfEachAlgorithm) {
    struct Row {
        const char* file;
        Alg want_alg;
        const char* want_kid;
    } rows[] = {
        {"rs256.jwt", Alg::rs256, "rsa"},  // aud is an array holding "xproxy"
        {"es256.jwt", Alg::es256, "ec"},  {"eddsa.jwt", Alg::eddsa, "ed"},
        {"no_kid.jwt", Alg::eddsa, "ed"},  // the set's only EdDSA key
        {"typ_at.jwt", Alg::es256, "ec"},  // RFC 9068 access token
    };
    for (const auto& r : rows) {
        Refusal why = Refusal::malformed;
        auto id = validate_jwt(fixture(r.file), fixture_keys(), policy(), kNow, &why);
        ASSERT_TRUE(id) << r.file << ": " << id.error();
        EXPECT_EQ(id->identity, "alice@example.test");
        EXPECT_EQ(id->subject, "u-1001");
        EXPECT_EQ(id->issuer, "https://idp.test");
        EXPECT_EQ(id->alg, r.want_alg) << r.file;
        EXPECT_EQ(id->kid, std::string(r.file) == "no_kid.jwt" ? "" : r.want_kid);
        EXPECT_EQ(id->expires, kIssued + 3600);
    }
}

TEST(Jwt, RefusalsHaveTheirReasons) {
    const std::string rs = fixture("rs256.jwt");
    const std::string es = fixture("es256.jwt");
    std::string tampered_payload = part(rs, 1);
    tampered_payload.replace(tampered_payload.find("alice"), 5, "mallo");
    std::string tampered_sig = part(es, 2);
    tampered_sig[10] = static_cast<char>(tampered_sig[10] ^ 0x01);
    struct Row {
        std::string name;
        std::string token;
        Refusal want;
        const char* want_error;
    } rows[] = {
        {"expired", fixture("expired.jwt"), Refusal::expired, "expired: exp"},
        {"nbf in the future", fixture("nbf_future.jwt"), Refusal::not_yet_valid, "nbf"},
        {"wrong audience", fixture("wrong_aud.jwt"), Refusal::wrong_audience, "aud does not name"},
        {"wrong issuer", fixture("wrong_iss.jwt"), Refusal::wrong_issuer, "https://evil.test"},
        {"unknown kid", fixture("unknown_kid.jwt"), Refusal::unknown_kid, "rotated"},
        {"alg none", fixture("none.jwt"), Refusal::alg_not_allowed, "none"},
        {"HS256 keyed with the RSA public PEM", fixture("hs256_pubkey.jwt"), Refusal::alg_not_allowed, "HS256"},
        {"EC signature under the RSA key's kid", fixture("alg_mismatch.jwt"), Refusal::alg_not_allowed,
         "ES256 for a key bound to RS256"},
        {"ES256 with a DER signature", fixture("es256_der.jwt"), Refusal::bad_signature, "signature"},
        {"tampered payload", with_part(rs, 1, tampered_payload), Refusal::bad_signature, "signature"},
        {"tampered signature", with_part(es, 2, tampered_sig), Refusal::bad_signature, "signature"},
        {"signature of another token",
         rs.substr(0, rs.rfind('.')) + fixture("expired.jwt").substr(fixture("expired.jwt").rfind('.')),
         Refusal::bad_signature, "signature"},
        {"email_verified false", fixture("email_unverified.jwt"), Refusal::unverified_email, "email_verified"},
        {"email_verified missing", fixture("email_verified_missing.jwt"), Refusal::unverified_email, "email_verified"},
        {"email_verified \"true\"", fixture("email_verified_string.jwt"), Refusal::unverified_email, "email_verified"},
        {"no email", fixture("no_email.jwt"), Refusal::no_identity, "email"},
        {"no exp", fixture("no_exp.jwt"), Refusal::malformed, "no exp"},
        {"crit", fixture("crit.jwt"), Refusal::malformed, "crit"},
        {"RSA key too small (not in the set)", fixture("rsa1024.jwt"), Refusal::unknown_kid, "rsa1024"},
        {"oversized", rs + std::string(kMaxTokenBytes, 'A'), Refusal::malformed, "longer than 16384 bytes"},
        {"garbage", "garbage", Refusal::malformed, "three parts"},
        {"empty", "", Refusal::malformed, "three parts"},
        {"four parts", rs + ".x", Refusal::malformed, "three parts"},
        {"padded signature", rs + "==", Refusal::malformed, "base64url"},
        {"header not JSON", with_part(rs, 0, "{\"alg\":"), Refusal::malformed, "header"},
        {"header alg twice", with_part(rs, 0, R"({"alg":"none","alg":"RS256","kid":"rsa"})"), Refusal::malformed,
         "header"},
        {"kid not a string", with_part(rs, 0, R"({"alg":"RS256","kid":7})"), Refusal::malformed, "kid"},
        {"alg lowercase", with_part(rs, 0, R"({"alg":"rs256","kid":"rsa"})"), Refusal::alg_not_allowed, "rs256"},
    };
    for (const auto& r : rows) {
        Refusal why = Refusal::no_identity;
        if (r.want == Refusal::no_identity) why = Refusal::malformed;
        auto id = validate_jwt(r.token, fixture_keys(), policy(), kNow, &why);
        ASSERT_FALSE(id) << r.name;
        EXPECT_EQ(reason_name(why), reason_name(r.want)) << r.name << ": " << id.error();
        EXPECT_EQ(id.error().rfind(std::string(reason_name(r.want)) + ": ", 0), 0U) << r.name << ": " << id.error();
        EXPECT_NE(id.error().find(r.want_error), std::string::npos) << r.name << ": " << id.error();
    }
}

TEST(Jwt, ClockSkew) {
    const std::string expired = fixture("expired.jwt");  // exp = kIssued - 3600
    const std::string nbf = fixture("nbf_future.jwt");   // nbf = kIssued + 3600
    auto at = [&](const std::string& t, std::int64_t now, std::int64_t skew) {
        JwtPolicy p = policy();
        p.skew_seconds = skew;
        return bool(validate_jwt(t, fixture_keys(), p, now));
    };
    EXPECT_TRUE(at(expired, kIssued - 3600 + 60, 60));
    EXPECT_FALSE(at(expired, kIssued - 3600 + 61, 60));
    EXPECT_TRUE(at(expired, kIssued - 3600, 0));
    EXPECT_FALSE(at(expired, kIssued - 3600 + 1, 0));
    EXPECT_FALSE(at(nbf, kIssued + 3600 - 61, 60));
    EXPECT_TRUE(at(nbf, kIssued + 3600 - 60, 60));
    // iat in the future (issued by a clock ahead of ours by more than the skew)
    Refusal why = Refusal::malformed;
    EXPECT_FALSE(validate_jwt(fixture("es256.jwt"), fixture_keys(), policy(), kIssued - 61, &why));
    EXPECT_EQ(why, Refusal::not_yet_valid);
}

TEST(Jwt, PolicyChoices) {
    JwtPolicy p = policy();
    p.identity_claim = "sub";  // email_verified matters only for the email claim
    auto id = validate_jwt(fixture("email_unverified.jwt"), fixture_keys(), p, kNow);
    ASSERT_TRUE(id) << id.error();
    EXPECT_EQ(id->identity, "u-1001");
    p = policy();
    p.audience = "other";  // the first element of rs256.jwt's aud array
    EXPECT_TRUE(validate_jwt(fixture("rs256.jwt"), fixture_keys(), p, kNow));
    p.audience = "xproxy2";
    EXPECT_FALSE(validate_jwt(fixture("rs256.jwt"), fixture_keys(), p, kNow));
    p = policy();
    p.issuer = "https://idp.test/";  // exact: a trailing slash is another issuer
    EXPECT_FALSE(validate_jwt(fixture("eddsa.jwt"), fixture_keys(), p, kNow));
    // an empty issuer or audience in the configuration matches nothing, not everything
    Refusal why = Refusal::malformed;
    p = policy();
    p.issuer.clear();
    EXPECT_FALSE(validate_jwt(fixture("eddsa.jwt"), fixture_keys(), p, kNow, &why));
    EXPECT_EQ(why, Refusal::wrong_issuer);
    p = policy();
    p.audience.clear();
    EXPECT_FALSE(validate_jwt(fixture("eddsa.jwt"), fixture_keys(), p, kNow, &why));
    EXPECT_EQ(why, Refusal::wrong_audience);
}

TEST(Jwt, TokenWithoutKidNeedsExactlyOneKeyForItsAlg) {
    auto s = nlohmann::json::parse(fixture("jwks.json"));
    auto second = s["keys"][2];  // the Ed25519 key under another kid
    second["kid"] = "ed2";
    s["keys"].push_back(second);
    auto two = Jwks::parse(s.dump());
    ASSERT_TRUE(two) << two.error();
    Refusal why = Refusal::malformed;
    EXPECT_FALSE(validate_jwt(fixture("no_kid.jwt"), *two, policy(), kNow, &why));
    EXPECT_EQ(why, Refusal::unknown_kid);
    EXPECT_TRUE(validate_jwt(fixture("eddsa.jwt"), *two, policy(), kNow));
}
