// token_file_test.cpp: the token verifier with keys from a JWK Set file: tokens of the
// three algorithms accepted; expired, wrong audience or issuer, alg none and HS256 keyed
// with the public key refused; an unknown kid re-reads the file once per
// refresh_min_interval; a broken new file keeps the old keys; an unusable file fails
// start-up.
#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <gtest/gtest.h>

#include "jwks_source.hpp"
#include "token_test_support.hpp"
#include "token_verifier.hpp"

namespace xproxy::depositd {
namespace {

namespace asio = boost::asio;
using test::kNow;

const std::string kIssuer = "https://idp.example";

class TokenFile : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        rsa_ = new test::IdpKey(test::IdpKey::make("RS256", "rsa-1"));
        ec_ = new test::IdpKey(test::IdpKey::make("ES256", "ec-1"));
        ed_ = new test::IdpKey(test::IdpKey::make("EdDSA", "ed-1"));
        rotated_ = new test::IdpKey(test::IdpKey::make("ES256", "ec-2"));
    }
    static void TearDownTestSuite() {
        delete rsa_;
        delete ec_;
        delete ed_;
        delete rotated_;
    }

    TokenConfig config(std::chrono::seconds min_interval = std::chrono::seconds{60}) {
        TokenConfig c;
        c.policy.issuer = kIssuer;
        c.policy.audience = test::kAudience;
        c.jwks_file = jwks_path_;
        c.refresh_min_interval = min_interval;
        return c;
    }

    std::unique_ptr<TokenVerifier> make(TokenConfig c) {
        auto v = TokenVerifier::create(io_, std::move(c));
        EXPECT_TRUE(v) << v.error();
        return v ? std::move(*v) : nullptr;
    }

    static test::IdpKey* rsa_;
    static test::IdpKey* ec_;
    static test::IdpKey* ed_;
    static test::IdpKey* rotated_;
    test::TempDir dir_;
    std::string jwks_path_ = dir_.write("jwks.json", test::jwks_of({rsa_, ec_, ed_}));
    asio::io_context io_;
};

test::IdpKey* TokenFile::rsa_ = nullptr;
test::IdpKey* TokenFile::ec_ = nullptr;
test::IdpKey* TokenFile::ed_ = nullptr;
test::IdpKey* TokenFile::rotated_ = nullptr;

TEST_F(TokenFile, AcceptsEachAlgorithm) {
    auto v = make(config());
    ASSERT_TRUE(v);
    test::run_test(io_, [&]() -> asio::awaitable<void> {
        auto started = co_await v->start();
        EXPECT_TRUE(started) << started.error();
        for (const auto* key : {rsa_, ec_, ed_}) {
            auto token1 = test::mint(*key, test::good_claims(kIssuer));
            auto out = co_await v->verify(token1, kNow);
            EXPECT_TRUE(out.identity.has_value()) << key->alg << ": " << out.detail;
            EXPECT_FALSE(out.refusal.has_value());
            EXPECT_FALSE(out.unavailable);
            if (out.identity) {
                EXPECT_EQ(out.identity->identity, "alice@example.org");
                EXPECT_EQ(out.identity->kid, key->kid);
                EXPECT_EQ(std::string(jose::alg_name(out.identity->alg)), key->alg);
            }
        }
    });
    EXPECT_EQ(v->key_loads(), 1u);
    EXPECT_EQ(v->key_load_failures(), 0u);
}

TEST_F(TokenFile, RefusesBadTokensWithTheirReason) {
    auto v = make(config());
    ASSERT_TRUE(v);
    auto expired = test::good_claims(kIssuer);
    expired["exp"] = kNow - 61;  // past the 60 s skew
    auto wrong_aud = test::good_claims(kIssuer);
    wrong_aud["aud"] = "https://other.example";
    auto wrong_iss = test::good_claims("https://evil.example");
    struct Row {
        const char* name;
        std::string token;
        jose::Refusal want;
    };
    const std::vector<Row> rows = {
        {"expired", test::mint(*ec_, expired), jose::Refusal::expired},
        {"wrong audience", test::mint(*ec_, wrong_aud), jose::Refusal::wrong_audience},
        {"wrong issuer", test::mint(*rsa_, wrong_iss), jose::Refusal::wrong_issuer},
        {"alg none", test::mint_none(*rsa_, test::good_claims(kIssuer)), jose::Refusal::alg_not_allowed},
        {"HS256 keyed with the RSA public key", test::mint_hs256_with_public_key(*rsa_, test::good_claims(kIssuer)),
         jose::Refusal::alg_not_allowed},
        {"HS256 keyed with the EC public key", test::mint_hs256_with_public_key(*ec_, test::good_claims(kIssuer)),
         jose::Refusal::alg_not_allowed},
        {"ES256 key named by an RS256 token's kid",
         test::mint_with_header(*ec_, {{"alg", "ES256"}, {"kid", "rsa-1"}}, test::good_claims(kIssuer)),
         jose::Refusal::alg_not_allowed},
        {"signature of another key",
         test::mint_with_header(*rotated_, {{"alg", "ES256"}, {"kid", "ec-1"}}, test::good_claims(kIssuer)),
         jose::Refusal::bad_signature},
        {"not a token", "Bearer abc", jose::Refusal::malformed},
    };
    test::run_test(io_, [&]() -> asio::awaitable<void> {
        auto started = co_await v->start();
        EXPECT_TRUE(started) << started.error();
        for (const auto& row : rows) {
            auto out = co_await v->verify(row.token, kNow);
            EXPECT_FALSE(out.identity.has_value()) << row.name;
            EXPECT_FALSE(out.unavailable) << row.name;
            EXPECT_EQ(out.refusal, row.want) << row.name << ": " << out.detail;
            // The detail is for the log: one printable line without the token's parts.
            auto dot = row.token.rfind('.');
            if (dot != std::string::npos && row.token.size() - dot > 10) {
                EXPECT_EQ(out.detail.find(row.token.substr(dot + 1)), std::string::npos) << row.name;
            }
            EXPECT_EQ(out.detail.find(row.token.substr(0, 20)), std::string::npos) << row.name;
            for (char c : out.detail) EXPECT_TRUE(c >= 0x20 && c <= 0x7e) << row.name;
        }
    });
    EXPECT_EQ(v->key_loads(), 1u);  // none of these is a reason to re-read the keys
}

TEST_F(TokenFile, UnknownKidRereadsOncePerMinInterval) {
    auto v = make(config());
    ASSERT_TRUE(v);
    test::run_test(io_, [&]() -> asio::awaitable<void> {
        auto started = co_await v->start();
        EXPECT_TRUE(started) << started.error();
        EXPECT_EQ(v->key_loads(), 1u);
        // The provider rotates: a new key is published, then tokens are signed with it.
        dir_.write("jwks.json", test::jwks_of({ec_, rotated_}));
        auto token2 = test::mint(*rotated_, test::good_claims(kIssuer));
        auto out = co_await v->verify(token2, kNow);
        EXPECT_TRUE(out.identity.has_value()) << out.detail;
        EXPECT_EQ(v->key_loads(), 2u);
        // The RSA key is gone with the new file.
        auto token3 = test::mint(*rsa_, test::good_claims(kIssuer));
        out = co_await v->verify(token3, kNow);
        EXPECT_EQ(out.refusal, jose::Refusal::unknown_kid) << out.detail;
        EXPECT_EQ(v->key_loads(), 2u);  // within refresh_min_interval: not read again
        auto unknown = test::IdpKey::make("EdDSA", "never-published");
        for (int i = 0; i < 5; ++i) {
            auto token4 = test::mint(unknown, test::good_claims(kIssuer));
            out = co_await v->verify(token4, kNow);
            EXPECT_EQ(out.refusal, jose::Refusal::unknown_kid) << out.detail;
        }
        EXPECT_EQ(v->key_loads(), 2u);
        EXPECT_EQ(v->key_load_failures(), 0u);
    });
}

TEST_F(TokenFile, UnknownKidRereadsAgainAfterMinInterval) {
    auto v = make(config(std::chrono::seconds{1}));
    ASSERT_TRUE(v);
    auto unknown = test::IdpKey::make("EdDSA", "later");
    test::run_test(io_, [&]() -> asio::awaitable<void> {
        auto started = co_await v->start();
        EXPECT_TRUE(started) << started.error();
        auto token5 = test::mint(unknown, test::good_claims(kIssuer));
        auto out = co_await v->verify(token5, kNow);
        EXPECT_EQ(out.refusal, jose::Refusal::unknown_kid);
        EXPECT_EQ(v->key_loads(), 2u);
        dir_.write("jwks.json", test::jwks_of({ec_, &unknown}));
        auto token6 = test::mint(unknown, test::good_claims(kIssuer));
        out = co_await v->verify(token6, kNow);
        EXPECT_EQ(out.refusal, jose::Refusal::unknown_kid);  // too soon
        EXPECT_EQ(v->key_loads(), 2u);
        co_await test::sleep_for(std::chrono::milliseconds{1050});
        auto token7 = test::mint(unknown, test::good_claims(kIssuer));
        out = co_await v->verify(token7, kNow);
        EXPECT_TRUE(out.identity.has_value()) << out.detail;
        EXPECT_EQ(v->key_loads(), 3u);
    });
}

TEST_F(TokenFile, BrokenNewFileKeepsTheOldKeys) {
    auto v = make(config());
    ASSERT_TRUE(v);
    test::run_test(io_, [&]() -> asio::awaitable<void> {
        auto started = co_await v->start();
        EXPECT_TRUE(started) << started.error();
        dir_.write("jwks.json", "{\"keys\": [");  // cut short
        auto reloaded = co_await v->reload();
        EXPECT_FALSE(reloaded);
        EXPECT_NE(reloaded.error().find("jwks.json"), std::string::npos) << reloaded.error();
        EXPECT_NE(reloaded.error().find("keeping the 3 keys"), std::string::npos) << reloaded.error();
        auto token8 = test::mint(*ed_, test::good_claims(kIssuer));
        auto out = co_await v->verify(token8, kNow);
        EXPECT_TRUE(out.identity.has_value()) << out.detail;
        // A set without a usable key is no better: an HMAC key only.
        dir_.write("jwks.json", R"({"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"}]})");
        reloaded = co_await v->reload();
        EXPECT_FALSE(reloaded);
        auto token9 = test::mint(*rsa_, test::good_claims(kIssuer));
        out = co_await v->verify(token9, kNow);
        EXPECT_TRUE(out.identity.has_value()) << out.detail;
        EXPECT_EQ(v->key_load_failures(), 2u);
        // A good file again is taken on reload.
        dir_.write("jwks.json", test::jwks_of({rotated_}));
        reloaded = co_await v->reload();
        EXPECT_TRUE(reloaded) << reloaded.error();
        auto token10 = test::mint(*rotated_, test::good_claims(kIssuer));
        out = co_await v->verify(token10, kNow);
        EXPECT_TRUE(out.identity.has_value()) << out.detail;
        EXPECT_EQ(v->key_loads(), 2u);
    });
}

TEST_F(TokenFile, UnusableFileFailsStart) {
    dir_.write("jwks.json", R"({"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"tiny"}]})");
    auto v = make(config());
    ASSERT_TRUE(v);
    test::run_test(io_, [&]() -> asio::awaitable<void> {
        auto token11 = test::mint(*rsa_, test::good_claims(kIssuer));
        auto out = co_await v->verify(token11, kNow);
        EXPECT_TRUE(out.unavailable);  // before any set was loaded
        EXPECT_FALSE(out.refusal.has_value());
        auto started = co_await v->start();
        EXPECT_FALSE(started);
        EXPECT_NE(started.error().find(jwks_path_), std::string::npos) << started.error();
        auto token12 = test::mint(*rsa_, test::good_claims(kIssuer));
        out = co_await v->verify(token12, kNow);
        EXPECT_TRUE(out.unavailable);
    });
    EXPECT_EQ(v->key_loads(), 0u);
    EXPECT_EQ(v->key_load_failures(), 1u);
}

TEST_F(TokenFile, CreateChecksTheConfiguration) {
    auto missing = config();
    missing.jwks_file = dir_.path + "/nonexistent.json";
    auto v = TokenVerifier::create(io_, missing);
    ASSERT_FALSE(v);
    EXPECT_NE(v.error().find("nonexistent.json"), std::string::npos) << v.error();

    // Anyone who may write the key set may sign in as anyone.
    auto writable = config();
    writable.jwks_file = dir_.write("open.json", test::jwks_of({ec_}), 0666);
    v = TokenVerifier::create(io_, writable);
    ASSERT_FALSE(v);
    EXPECT_NE(v.error().find("open.json"), std::string::npos) << v.error();

    auto both = config();
    both.use_discovery = true;
    EXPECT_FALSE(TokenVerifier::create(io_, both));
    auto neither = config();
    neither.jwks_file.clear();
    EXPECT_FALSE(TokenVerifier::create(io_, neither));
    auto no_audience = config();
    no_audience.policy.audience.clear();
    EXPECT_FALSE(TokenVerifier::create(io_, no_audience));
    auto no_issuer = config();
    no_issuer.policy.issuer.clear();
    EXPECT_FALSE(TokenVerifier::create(io_, no_issuer));
    auto inverted = config();
    inverted.refresh_period = std::chrono::seconds{10};
    inverted.refresh_min_interval = std::chrono::seconds{20};
    EXPECT_FALSE(TokenVerifier::create(io_, inverted));
    auto http_discovery = config();
    http_discovery.jwks_file.clear();
    http_discovery.use_discovery = true;
    http_discovery.policy.issuer = "http://idp.example";
    EXPECT_FALSE(TokenVerifier::create(io_, http_discovery));
}

TEST(DiscoveryUrl, FollowsOpenIdConnectDiscoverySection4) {
    struct Row {
        const char* issuer;
        const char* want;  // "" = refused
    };
    const Row rows[] = {
        {"https://idp.example", "https://idp.example/.well-known/openid-configuration"},
        {"https://idp.example/", "https://idp.example/.well-known/openid-configuration"},
        {"https://idp.example/realms/mail", "https://idp.example/realms/mail/.well-known/openid-configuration"},
        {"https://idp.example/realms/mail/", "https://idp.example/realms/mail/.well-known/openid-configuration"},
        {"https://idp.example:8443/t/", "https://idp.example:8443/t/.well-known/openid-configuration"},
        {"http://idp.example", ""},
        {"https://idp.example/?tenant=1", ""},
        {"https://idp.example/#x", ""},
        {"idp.example", ""},
    };
    for (const auto& row : rows) {
        auto url = default_discovery_url(row.issuer);
        if (*row.want == '\0') {
            EXPECT_FALSE(url) << row.issuer;
        } else {
            EXPECT_TRUE(url) << row.issuer << ": " << url.error();
            if (url) {
                EXPECT_EQ(*url, row.want);
            }
        }
    }
}

}  // namespace
}  // namespace xproxy::depositd
