// jwks.cpp: see jwks.hpp.
#include <xproxy/jose/jwks.hpp>

#include <algorithm>
#include <optional>
#include <set>

#include <xproxy/base/escape.hpp>
#include <xproxy/jose/base64url.hpp>

#include "json_input.hpp"

namespace xproxy::jose {

namespace {

using nlohmann::json;

// A member holding base64url: its bytes, or a Failure naming it.
Expected<std::string> b64_member(const json& k, const char* name) {
    const std::string* s = detail::string_member(k, name);
    if (s == nullptr) return Failure{std::string("no \"") + name + "\" string"};
    auto d = base64url_decode(*s);
    if (!d) return Failure{std::string("\"") + name + "\" is not base64url"};
    return std::move(*d);
}

// One entry of "keys" as a usable key, or why it is skipped.
Expected<PublicKey> key_of(const json& k) {
    if (!k.is_object()) return Failure{"not an object"};
    if (k.contains("use")) {
        const std::string* use = detail::string_member(k, "use");
        if (use == nullptr || *use != "sig") return Failure{"\"use\" is not \"sig\""};
    }
    if (k.contains("key_ops")) {
        const auto& ops = k["key_ops"];
        if (!ops.is_array() || std::find(ops.begin(), ops.end(), json("verify")) == ops.end())
            return Failure{"\"key_ops\" does not contain \"verify\""};
    }
    if (k.contains("d")) return Failure{"holds a private key"};
    const std::string* kty = detail::string_member(k, "kty");
    if (kty == nullptr) return Failure{"no \"kty\" string"};
    Alg alg{};
    std::optional<Expected<PublicKey>> key;
    if (*kty == "RSA") {
        alg = Alg::rs256;
        auto n = b64_member(k, "n");
        auto e = b64_member(k, "e");
        if (!n) return Failure{n.error()};
        if (!e) return Failure{e.error()};
        key.emplace(PublicKey::from_rsa(*n, *e));
    } else if (*kty == "EC") {
        const std::string* crv = detail::string_member(k, "crv");
        if (crv == nullptr || *crv != "P-256") return Failure{"EC curve other than P-256"};
        alg = Alg::es256;
        auto x = b64_member(k, "x");
        auto y = b64_member(k, "y");
        if (!x) return Failure{x.error()};
        if (!y) return Failure{y.error()};
        key.emplace(PublicKey::from_p256(*x, *y));
    } else if (*kty == "OKP") {
        const std::string* crv = detail::string_member(k, "crv");
        if (crv == nullptr || *crv != "Ed25519") return Failure{"OKP curve other than Ed25519"};
        alg = Alg::eddsa;
        auto x = b64_member(k, "x");
        if (!x) return Failure{x.error()};
        key.emplace(PublicKey::from_ed25519(*x));
    } else {
        return Failure{"key type " + escape(*kty, 32) + " not supported"};
    }
    if (k.contains("alg")) {
        const std::string* a = detail::string_member(k, "alg");
        if (a == nullptr) return Failure{"\"alg\" is not a string"};
        if (*a != alg_name(alg))
            return Failure{"\"alg\" " + escape(*a, 32) + " does not fit a key that verifies " +
                           std::string(alg_name(alg)) + " only"};
    }
    if (!*key) return Failure{key->error()};
    return std::move(**key);
}

}  // namespace

Expected<Jwks> Jwks::parse(std::string_view text) {
    if (text.size() > kMaxJwksBytes) return Failure{"JWK set larger than 1 MiB"};
    auto doc = detail::parse_json_object(text);
    if (!doc) return Failure{"JWK set is not a JSON object (strict JSON, no member named twice)"};
    auto it = doc->find("keys");
    if (it == doc->end() || !it->is_array()) return Failure{"JWK set has no \"keys\" array"};
    if (it->size() > kMaxJwksKeys)
        return Failure{"JWK set has " + std::to_string(it->size()) + " keys (at most " + std::to_string(kMaxJwksKeys) +
                       ")"};
    Jwks set;
    std::set<std::string> kids;
    std::size_t index = 0;
    for (const auto& k : *it) {
        ++index;
        std::string kid;
        bool kid_ok = true;
        if (k.is_object() && k.contains("kid")) {
            const std::string* s = detail::string_member(k, "kid");
            kid_ok = s != nullptr;
            if (s != nullptr) kid = *s;
        }
        auto key = kid_ok ? key_of(k) : Expected<PublicKey>(Failure{"\"kid\" is not a string"});
        if (!key) {
            set.skipped_.push_back("key " + std::to_string(index) + " (kid \"" + escape_value(kid, 64, false) +
                                   "\"): " + key.error());
            continue;
        }
        if (!kid.empty() && !kids.insert(kid).second)
            return Failure{"JWK set names kid \"" + escape_value(kid, 64, false) + "\" twice"};
        set.keys_.push_back(Jwk{std::move(kid), std::move(*key)});
    }
    if (set.keys_.empty()) return Failure{"JWK set has no usable key (RSA, EC P-256 or Ed25519 for signatures)"};
    return set;
}

const Jwk* Jwks::find(std::string_view kid) const {
    for (const auto& k : keys_)
        if (!k.kid.empty() && k.kid == kid) return &k;
    return nullptr;
}

const Jwk* Jwks::only_key_for(Alg alg) const {
    const Jwk* found = nullptr;
    for (const auto& k : keys_) {
        if (k.key.alg() != alg) continue;
        if (found != nullptr) return nullptr;
        found = &k;
    }
    return found;
}

}  // namespace xproxy::jose
