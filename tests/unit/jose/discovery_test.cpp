// discovery_test: an OpenID Connect discovery document gives the JWK set's URL only for
// the configured issuer, and only an https:// one.
#include <gtest/gtest.h>

#include <string>

#include <xproxy/jose/discovery.hpp>

#include "jose_fixtures.hpp"

using namespace xproxy::jose;
using xproxy::test::fixture;

TEST(Discovery, IssuerAndJwksUri) {
    auto d = parse_discovery(fixture("discovery.json"), "https://idp.test");
    ASSERT_TRUE(d) << d.error();
    EXPECT_EQ(d->issuer, "https://idp.test");
    EXPECT_EQ(d->jwks_uri, "https://idp.test/jwks.json");
}

TEST(Discovery, Refusals) {
    struct Row {
        std::string doc;
        const char* want_error;
    } rows[] = {
        {fixture("discovery.json"), "is for issuer"},  // configured: https://idp.test/ (see below)
        {R"({"issuer":"https://idp.test/","jwks_uri":"https://idp.test/k"})", "no \"jwks_uri\""},
        {R"({"issuer":"https://idp.test/"})", "no \"jwks_uri\""},
        {R"({"jwks_uri":"https://idp.test/k"})", "no \"issuer\""},
        {R"({"issuer":"https://idp.test/","jwks_uri":"http://idp.test/k"})", "not an https:// URL"},
        {R"({"issuer":"https://idp.test/","jwks_uri":"https://idp.test/a b"})", "not an https:// URL"},
        {R"({"issuer":"https://idp.test/","jwks_uri":"https://"})", "not an https:// URL"},
        {R"({"issuer":"https://idp.test/","jwks_uri":7})", "no \"jwks_uri\""},
        {R"({"issuer":"https://idp.test/","issuer":"https://idp.test/","jwks_uri":"https://k"})", "not a JSON object"},
        {"[]", "not a JSON object"},
        {std::string(kMaxDiscoveryBytes + 1, ' '), "larger than"},
    };
    rows[1].doc = R"({"issuer":"https://idp.test/","jwks_uri":null})";
    for (const auto& r : rows) {
        auto d = parse_discovery(r.doc, "https://idp.test/");
        ASSERT_FALSE(d) << r.doc.substr(0, 80);
        EXPECT_NE(d.error().find(r.want_error), std::string::npos) << d.error();
    }
}
