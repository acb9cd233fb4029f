// jwt.cpp: see jwt.hpp.
#include <xproxy/jose/jwt.hpp>

#include <algorithm>

#include <xproxy/base/escape.hpp>
#include <xproxy/base/text.hpp>
#include <xproxy/jose/jws.hpp>

#include "json_input.hpp"

namespace xproxy::jose {

namespace {

bool token_type(std::string_view typ) {
    if (typ.size() > 12 && iequals(typ.substr(0, 12), "application/")) typ.remove_prefix(12);
    return iequals(typ, "JWT") || iequals(typ, "at+jwt");
}

bool usable_identity(const std::string& s) {
    if (s.empty() || s.size() > 320) return false;
    return std::none_of(s.begin(), s.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7f;
    });
}

}  // namespace

Expected<JwtIdentity> validate_jwt(std::string_view token, const Jwks& keys, const JwtPolicy& policy, std::int64_t now,
                                   Refusal* why) {
    auto jws = verify_jws(token, keys, kMaxTokenBytes, why);
    if (!jws) return Failure{jws.error()};
    if (const std::string* typ = detail::string_member(jws->header, "typ"); typ != nullptr && !token_type(*typ))
        return refuse(Refusal::malformed, "typ " + escape_value(*typ, 64) + " is not a token", why);
    auto claims = detail::parse_json_object(jws->payload, 8);
    if (!claims) return refuse(Refusal::malformed, "payload is not a JSON object", why);

    const std::string* iss = detail::string_member(*claims, "iss");
    // an empty configured issuer or audience matches nothing (closed by default)
    if (iss == nullptr || policy.issuer.empty() || *iss != policy.issuer)
        return refuse(Refusal::wrong_issuer, iss == nullptr ? "no iss" : "iss " + escape_value(*iss, 128), why);

    bool audience_ok = false;
    if (auto it = claims->find("aud"); it != claims->end() && !policy.audience.empty()) {
        if (it->is_string()) {
            audience_ok = it->get_ref<const std::string&>() == policy.audience;
        } else if (it->is_array()) {
            audience_ok = std::any_of(it->begin(), it->end(), [&](const nlohmann::json& a) {
                return a.is_string() && a.get_ref<const std::string&>() == policy.audience;
            });
        }
    }
    if (!audience_ok)
        return refuse(Refusal::wrong_audience, "aud does not name " + escape_value(policy.audience, 128), why);

    auto it = claims->find("exp");
    if (it == claims->end()) return refuse(Refusal::malformed, "no exp", why);
    const auto exp = detail::numeric_date(*it);
    if (!exp) return refuse(Refusal::malformed, "exp is not a NumericDate", why);
    if (now > *exp + policy.skew_seconds) return refuse(Refusal::expired, "exp " + std::to_string(*exp), why);
    for (const char* name : {"nbf", "iat"}) {
        it = claims->find(name);
        if (it == claims->end()) continue;
        const auto t = detail::numeric_date(*it);
        if (!t) return refuse(Refusal::malformed, std::string(name) + " is not a NumericDate", why);
        if (now < *t - policy.skew_seconds)
            return refuse(Refusal::not_yet_valid, std::string(name) + " " + std::to_string(*t), why);
    }

    const std::string* id = detail::string_member(*claims, policy.identity_claim.c_str());
    if (id == nullptr || !usable_identity(*id))
        return refuse(Refusal::no_identity, "no usable " + escape_value(policy.identity_claim, 64) + " claim", why);
    if (policy.identity_claim == "email") {
        it = claims->find("email_verified");
        if (it == claims->end() || !it->is_boolean() || !it->get<bool>())
            return refuse(Refusal::unverified_email, "email_verified is not true", why);
    }

    JwtIdentity out;
    out.identity = *id;
    if (const std::string* sub = detail::string_member(*claims, "sub")) out.subject = *sub;
    out.issuer = *iss;
    out.kid = jws->kid;
    out.alg = jws->alg;
    out.expires = *exp;
    return out;
}

}  // namespace xproxy::jose
