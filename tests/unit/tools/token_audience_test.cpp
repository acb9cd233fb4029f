// tools_token_audience_test: the deposit client's binding of a token to its endpoint
// (tools/deposit/token_audience.hpp): "aud" read from a JWT's payload as a string or an
// array; an audience names an endpoint only by its https origin (host in any case, port
// 443 implied); other services, other ports, other schemes and look-alike hosts do not;
// tokens that are no JWT, or have no usable "aud", are refused without quoting the token.
#include <gtest/gtest.h>

#include <string>

#include "token_audience.hpp"
#include <xproxy/jose/base64url.hpp>

namespace {

using namespace xproxy;
using namespace xproxy::deposit;

std::string jwt_with(const std::string& payload) {
    return jose::base64url_encode(R"({"alg":"ES256","kid":"k"})") + "." + jose::base64url_encode(payload) + ".c2ln";
}

http::HttpsUrl endpoint(const std::string& url) {
    auto u = http::parse_https_url(url);
    EXPECT_TRUE(u) << url;
    return u ? *u : http::HttpsUrl{};
}

}  // namespace

TEST(TokenAudience, ReadsAStringOrAnArray) {
    auto one = token_audiences(jwt_with(R"({"iss":"https://idp","aud":"https://mx.example.org"})"));
    ASSERT_TRUE(one) << one.error();
    EXPECT_EQ(*one, (std::vector<std::string>{"https://mx.example.org"}));
    auto many = token_audiences(jwt_with(R"({"aud":["https://a.example","https://b.example:8443"]})"));
    ASSERT_TRUE(many) << many.error();
    EXPECT_EQ(*many, (std::vector<std::string>{"https://a.example", "https://b.example:8443"}));
}

TEST(TokenAudience, RefusesTokensWithoutAUsableAudience) {
    const std::string secret = "opaque-secret-token";
    const std::string refused[] = {
        secret,                                       // not a JWT
        "a.b",                                        // two parts
        "a.b.c.d",                                    // four parts
        "eyJ9.%%%.c2ln",                              // payload not base64url
        jwt_with("[\"https://mx.example.org\"]"),     // not an object
        jwt_with(R"({"iss":"https://idp"})"),         // no aud
        jwt_with(R"({"aud":[]})"),                    // empty array
        jwt_with(R"({"aud":["https://a.test",1]})"),  // a non-string member
        jwt_with(R"({"aud":null})"),
        jwt_with(R"({"aud":"https://a.test")"),  // truncated JSON
        std::string(20000, 'a') + ".b.c",        // too long
    };
    for (const auto& token : refused) {
        auto r = token_audiences(token);
        EXPECT_FALSE(r) << token.substr(0, 80);
        if (!r) {
            EXPECT_FALSE(r.error().empty());
            EXPECT_EQ(r.error().find(secret), std::string::npos);
        }
    }
}

TEST(TokenAudience, NamesTheEndpointByItsOrigin) {
    const auto ep = endpoint("https://mx.example.org/v1/deposit");
    EXPECT_TRUE(audience_names_endpoint("https://mx.example.org", ep));
    EXPECT_TRUE(audience_names_endpoint("https://mx.example.org/", ep));
    EXPECT_TRUE(audience_names_endpoint("https://MX.Example.ORG", ep));
    EXPECT_TRUE(audience_names_endpoint("HTTPS://mx.example.org:443", ep));
    EXPECT_TRUE(audience_names_endpoint("https://mx.example.org./v1/deposit", ep));
    EXPECT_EQ(endpoint_audience(ep), "https://mx.example.org");

    const auto on_port = endpoint("https://MX.example.org:8443/v1/deposit");
    EXPECT_TRUE(audience_names_endpoint("https://mx.example.org:8443", on_port));
    EXPECT_FALSE(audience_names_endpoint("https://mx.example.org", on_port));
    EXPECT_EQ(endpoint_audience(on_port), "https://mx.example.org:8443");

    const auto v6 = endpoint("https://[::1]:9443/v1/deposit");
    EXPECT_TRUE(audience_names_endpoint("https://[::1]:9443", v6));
    EXPECT_EQ(endpoint_audience(v6), "https://[::1]:9443");
}

TEST(TokenAudience, OtherServersAndLookAlikesAreNotNamed) {
    const auto ep = endpoint("https://mx.example.org/v1/deposit");
    const char* others[] = {
        "xproxy-deposit",                       // a bare name: no server in it
        "mx.example.org",                       // no scheme
        "http://mx.example.org",                // not https
        "https://mx.example.org:8443",          // another port
        "https://evil.example",                 // another server
        "https://mx.example.org.evil.example",  // a look-alike suffix
        "https://example.org",                  // the parent domain
        "https://a.mx.example.org",             // a name below it
        "https://mx.example.org@evil.example",  // user info
        "https://evil.example/https://mx.example.org",
        "",
    };
    for (const char* a : others) EXPECT_FALSE(audience_names_endpoint(a, ep)) << a;
}
