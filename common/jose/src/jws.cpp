// jws.cpp: see jws.hpp.
#include <xproxy/jose/jws.hpp>

#include <optional>

#include <xproxy/base/escape.hpp>
#include <xproxy/jose/base64url.hpp>

#include "json_input.hpp"

namespace xproxy::jose {

namespace {

// bugprone-exception-escape: as VerifiedJws (jws.hpp)
// NOLINTNEXTLINE(bugprone-exception-escape)
struct Parsed {
    VerifiedJws jws;
    std::string_view signing_input;
    std::string signature;
};

// Everything but the key choice and the signature check.
Expected<Parsed> parse_compact(std::string_view token, std::size_t max_bytes, Refusal* why) {
    if (token.size() > max_bytes)
        return refuse(Refusal::malformed, "longer than " + std::to_string(max_bytes) + " bytes", why);
    const auto d1 = token.find('.');
    const auto d2 = d1 == std::string_view::npos ? d1 : token.find('.', d1 + 1);
    if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos)
        return refuse(Refusal::malformed, "not three parts separated by dots", why);
    auto header = base64url_decode(token.substr(0, d1));
    auto payload = base64url_decode(token.substr(d1 + 1, d2 - d1 - 1));
    auto signature = base64url_decode(token.substr(d2 + 1));
    if (!header || !payload || !signature) return refuse(Refusal::malformed, "a part is not base64url", why);
    auto h = detail::parse_json_object(*header, 4);
    if (!h) return refuse(Refusal::malformed, "header is not a JSON object", why);
    const std::string* alg_s = detail::string_member(*h, "alg");
    if (alg_s == nullptr) return refuse(Refusal::malformed, "header has no \"alg\" string", why);
    auto alg = alg_from_name(*alg_s);
    if (!alg) return refuse(Refusal::alg_not_allowed, "alg " + escape_value(*alg_s, 32), why);
    if (h->contains("crit")) return refuse(Refusal::malformed, "header has \"crit\" (no extension is understood)", why);
    for (const char* name : {"kid", "typ"})
        if (h->contains(name) && detail::string_member(*h, name) == nullptr)
            return refuse(Refusal::malformed, std::string("header \"") + name + "\" is not a string", why);
    Parsed p;
    const std::string* kid = detail::string_member(*h, "kid");
    p.jws.kid = kid != nullptr ? *kid : std::string();
    p.jws.alg = *alg;
    p.jws.header = std::move(*h);
    p.jws.payload = std::move(*payload);
    p.signing_input = token.substr(0, d2);
    p.signature = std::move(*signature);
    return p;
}

Expected<VerifiedJws> check(Parsed& p, const PublicKey& key, Refusal* why) {
    if (key.alg() != p.jws.alg)
        return refuse(
            Refusal::alg_not_allowed,
            "alg " + std::string(alg_name(p.jws.alg)) + " for a key bound to " + std::string(alg_name(key.alg())), why);
    if (!key.verify(p.signing_input, p.signature))
        return refuse(Refusal::bad_signature, "signature does not verify", why);
    return std::move(p.jws);
}

}  // namespace

Expected<VerifiedJws> verify_jws(std::string_view token, const Jwks& keys, std::size_t max_bytes, Refusal* why) {
    auto p = parse_compact(token, max_bytes, why);
    if (!p) return Failure{p.error()};
    const bool has_kid = p->jws.header.contains("kid");
    const Jwk* k = has_kid ? keys.find(p->jws.kid) : keys.only_key_for(p->jws.alg);
    if (k == nullptr) {
        if (has_kid) return refuse(Refusal::unknown_kid, "no key with kid " + escape_value(p->jws.kid, 64), why);
        return refuse(Refusal::unknown_kid, "no kid, and not exactly one " + std::string(alg_name(p->jws.alg)) + " key",
                      why);
    }
    return check(*p, k->key, why);
}

Expected<VerifiedJws> verify_jws(std::string_view token, const PublicKey& key, std::size_t max_bytes, Refusal* why) {
    auto p = parse_compact(token, max_bytes, why);
    if (!p) return Failure{p.error()};
    return check(*p, key, why);
}

Expected<std::string> sign_jws(const SigningKey& key, std::string_view typ, std::string_view payload) {
    nlohmann::json header = {{"alg", alg_name(key.alg())}, {"kid", key.kid()}, {"typ", typ}};
    std::string out;
    try {
        out = base64url_encode(header.dump());
    } catch (const nlohmann::json::exception&) {
        return Failure{"the type is not UTF-8"};
    }
    out += '.';
    out += base64url_encode(payload);
    auto sig = key.sign(out);
    if (!sig) return Failure{sig.error()};
    out += '.';
    out += base64url_encode(*sig);
    return out;
}

}  // namespace xproxy::jose
