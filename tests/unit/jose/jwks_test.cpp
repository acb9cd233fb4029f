// jwks_test: which keys of a JWK set become verification keys, bound to which algorithm,
// and which are skipped or make the set refused.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <xproxy/jose/base64url.hpp>
#include <xproxy/jose/jwks.hpp>

#include "jose_fixtures.hpp"

using namespace xproxy;
using namespace xproxy::jose;
using nlohmann::json;
using xproxy::test::fixture;

namespace {

json fixture_set() { return json::parse(fixture("jwks.json")); }
json key_named(const std::string& file, const std::string& kid) {
    const json set = json::parse(fixture(file));
    for (const auto& k : set["keys"])
        if (k["kid"] == kid) return k;
    ADD_FAILURE() << "no key " << kid;
    return {};
}
json set_of(const std::vector<json>& keys) {
    json set;
    set["keys"] = json::array();
    for (const auto& k : keys) set["keys"].push_back(k);
    return set;
}

}  // namespace

TEST(Jwks, EachKeyTypeIsBoundToItsAlgorithm) {
    auto set = Jwks::parse(fixture("jwks.json"));
    ASSERT_TRUE(set) << set.error();
    ASSERT_EQ(set->keys().size(), 3U);
    EXPECT_TRUE(set->skipped().empty());
    EXPECT_EQ(set->find("rsa")->key.alg(), Alg::rs256);
    EXPECT_EQ(set->find("ec")->key.alg(), Alg::es256);
    EXPECT_EQ(set->find("ed")->key.alg(), Alg::eddsa);
    EXPECT_EQ(set->find("nope"), nullptr);
    EXPECT_EQ(set->only_key_for(Alg::eddsa), set->find("ed"));
}

TEST(Jwks, WithoutAlgMemberTheTypeDecides) {
    auto s = fixture_set();
    for (auto& k : s["keys"]) k.erase("alg");
    auto set = Jwks::parse(s.dump());
    ASSERT_TRUE(set) << set.error();
    EXPECT_EQ(set->find("rsa")->key.alg(), Alg::rs256);
    EXPECT_EQ(set->find("ec")->key.alg(), Alg::es256);
    EXPECT_EQ(set->find("ed")->key.alg(), Alg::eddsa);
}

TEST(Jwks, SkipsKeysItCannotUse) {
    const json ed = key_named("jwks.json", "ed");
    auto variant = [&](const char* kid, auto change) {
        json k = ed;
        k["kid"] = kid;
        change(k);
        return k;
    };
    const json bad_point = [&] {
        json k = key_named("jwks.json", "ec");
        k["kid"] = "bad-point";
        auto y = *base64url_decode(k["y"].get<std::string>());
        y[31] = static_cast<char>(y[31] ^ 1);
        k["y"] = base64url_encode(y);
        return k;
    }();
    json rsa_hs = key_named("jwks.json", "rsa");
    rsa_hs["kid"] = "rsa-hs256";
    rsa_hs["alg"] = "HS256";
    json rsa_ps = key_named("jwks.json", "rsa");
    rsa_ps["kid"] = "rsa-ps256";
    rsa_ps["alg"] = "PS256";
    json small = key_named("jwks_extra.json", "rsa1024");
    json p384 = key_named("jwks_extra.json", "ec384");
    json ec_as_rs = key_named("jwks.json", "ec");
    ec_as_rs["kid"] = "ec-as-rs256";
    ec_as_rs["alg"] = "RS256";
    const json set = set_of({
        ed,
        variant("enc", [](json& k) { k["use"] = "enc"; }),
        variant("ops", [](json& k) { k["key_ops"] = json::array({"encrypt"}); }),
        variant("short", [](json& k) { k["x"] = "AAAA"; }),
        variant("padded", [](json& k) { k["x"] = k["x"].get<std::string>() + "="; }),
        variant("private", [](json& k) { k["d"] = k["x"]; }),
        variant("x448", [](json& k) { k["crv"] = "X25519"; }),
        variant("oct",
                [](json& k) {
                    k = json{{"kty", "oct"}, {"k", "c2VjcmV0"}, {"kid", "oct"}};
                }),
        bad_point,
        rsa_hs,
        rsa_ps,
        small,
        p384,
        ec_as_rs,
    });
    auto parsed = Jwks::parse(set.dump());
    ASSERT_TRUE(parsed) << parsed.error();
    ASSERT_EQ(parsed->keys().size(), 1U);
    EXPECT_EQ(parsed->keys()[0].kid, "ed");
    ASSERT_EQ(parsed->skipped().size(), 13U);
    const std::string want[] = {
        "\"use\" is not \"sig\"",
        "does not contain \"verify\"",
        "must be 32 bytes",
        "not base64url",
        "private key",
        "other than Ed25519",
        "oct",
        "not on the curve",
        "HS256",
        "PS256",
        "1024 bits",
        "other than P-256",
        "verifies ES256 only",
    };
    for (std::size_t i = 0; i < 13; ++i)
        EXPECT_NE(parsed->skipped()[i].find(want[i]), std::string::npos) << parsed->skipped()[i];
}

TEST(Jwks, RefusesTheSet) {
    const json ed = key_named("jwks.json", "ed");
    json ed2 = key_named("jwks.json", "ec");
    ed2["kid"] = "ed";
    json many = set_of({});
    for (std::size_t i = 0; i <= kMaxJwksKeys; ++i) many["keys"].push_back(ed);
    struct Row {
        std::string in;
        const char* want_error;
    } rows[] = {
        {set_of({ed, ed2}).dump(), "names kid \"ed\" twice"},
        {many.dump(), "has 65 keys"},
        {set_of({json{{"kty", "oct"}}}).dump(), "no usable key"},
        {"{\"keys\":[]}", "no usable key"},
        {"{\"keys\":{}}", "no \"keys\" array"},
        {"[]", "not a JSON object"},
        {"{\"keys\":[], \"keys\":[]}", "not a JSON object"},  // a member named twice
        {R"({"keys":[{"kty":"OKP","crv":"Ed25519","x":"a","x":"b"}]})", "not a JSON object"},
        {"{\"keys\":[" + ed.dump() + "]", "not a JSON object"},
        {std::string(kMaxJwksBytes + 1, ' '), "larger than 1 MiB"},
        {"{\"keys\":" + std::string(5000, '[') + std::string(5000, ']') + "}", "not a JSON object"},  // too deep
        {"\xff", "not a JSON object"},
    };
    for (const auto& r : rows) {
        auto set = Jwks::parse(r.in);
        ASSERT_FALSE(set) << r.in.substr(0, 80);
        EXPECT_NE(set.error().find(r.want_error), std::string::npos) << set.error();
    }
}

TEST(Jwks, KeysWithoutKid) {
    json ed = key_named("jwks.json", "ed");
    ed.erase("kid");
    json ec = key_named("jwks.json", "ec");
    ec.erase("kid");
    auto set = Jwks::parse(set_of({ed, ec, key_named("jwks.json", "rsa")}).dump());
    ASSERT_TRUE(set) << set.error();
    EXPECT_EQ(set->find(""), nullptr);  // an empty kid names no key
    ASSERT_NE(set->only_key_for(Alg::eddsa), nullptr);
    EXPECT_EQ(set->only_key_for(Alg::eddsa)->kid, "");
    auto two = Jwks::parse(set_of({ed, ed}).dump());  // no kid: not duplicates, but ambiguous
    ASSERT_TRUE(two) << two.error();
    EXPECT_EQ(two->only_key_for(Alg::eddsa), nullptr);
}

TEST(PublicKeyPem, TypesAndRefusals) {
    EXPECT_EQ(PublicKey::from_pem(fixture("rsa.pub"))->alg(), Alg::rs256);
    EXPECT_EQ(PublicKey::from_pem(fixture("ec.pub"))->alg(), Alg::es256);
    EXPECT_EQ(PublicKey::from_pem(fixture("ed.pub"))->alg(), Alg::eddsa);
    auto small = PublicKey::from_pem(fixture("rsa1024.pub"));
    ASSERT_FALSE(small);
    EXPECT_NE(small.error().find("1024 bits"), std::string::npos) << small.error();
    auto p384 = PublicKey::from_pem(fixture("ec384.pub"));
    ASSERT_FALSE(p384);
    EXPECT_NE(p384.error().find("P-256"), std::string::npos) << p384.error();
    EXPECT_FALSE(PublicKey::from_pem("not a key"));
    EXPECT_FALSE(PublicKey::from_pem(fixture("ed.key")));  // a private key is not a PUBLIC KEY
}
