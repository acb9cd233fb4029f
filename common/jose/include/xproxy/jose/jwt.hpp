// jwt.hpp: an identity provider's access or ID token (RFC 7519, RFC 9068) as the identity
// of the client that presents it, verified offline against the provider's JWK set.
//
// Promises (doc/jose.md, "Tokens"): pure (the time is given; no clock, no I/O); the
// signature is verified (jws.hpp) before any claim is read; then, in this order:
//   typ     absent, "JWT" or "at+jwt" (with or without "application/", any case); other
//           types (a deposit receipt, say) are malformed here
//   iss     a string equal to the configured issuer, byte for byte   -> wrong_issuer
//   aud     a string equal to the configured audience, or an array holding it
//                                                                    -> wrong_audience
//   exp     required, a NumericDate; now > exp + skew                -> expired
//   nbf     optional; now < nbf - skew                               -> not_yet_valid
//   iat     optional; now < iat - skew                               -> not_yet_valid
//   identity the configured claim, a non-empty string of at most 320 bytes without
//           control characters                                       -> no_identity
//           when the claim is "email": email_verified must be the JSON boolean true
//           (the string "true" is refused)                           -> unverified_email
// Each refusal has one Refusal reason (refusal.hpp). Never throws on bad input.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <xproxy/base/result.hpp>
#include <xproxy/jose/jwks.hpp>
#include <xproxy/jose/refusal.hpp>

namespace xproxy::jose {

struct JwtPolicy {
    std::string issuer;                    // "iss", exact; empty: every token is wrong_issuer
    std::string audience;                  // one of "aud"; empty: every token is wrong_audience
    std::int64_t skew_seconds = 60;        // tolerated clock difference
    std::string identity_claim = "email";  // the claim that names the client
};

struct JwtIdentity {
    std::string identity;  // the value of the identity claim
    std::string subject;   // "sub" ("" when absent)
    std::string issuer;
    std::string kid;  // of the key that verified the token ("" when the token has none)
    Alg alg = Alg::rs256;
    std::int64_t expires = 0;
};

Expected<JwtIdentity> validate_jwt(std::string_view token, const Jwks& keys, const JwtPolicy& policy, std::int64_t now,
                                   Refusal* why = nullptr);

}  // namespace xproxy::jose
