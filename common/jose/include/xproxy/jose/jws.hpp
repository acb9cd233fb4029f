// jws.hpp: JWS Compact Serialization (RFC 7515 section 7.1): verify with a JWK set or one
// public key, sign with a SigningKey.
//
// Promises (doc/jose.md): a token longer than max_bytes is refused before it is decoded;
// it has exactly three base64url parts (canonical, base64url.hpp); the protected header
// is a JSON object (strict, no member named twice) with a string "alg" of RS256, ES256 or
// EdDSA (anything else, "none" and HS* included: alg_not_allowed), "kid" and "typ"
// strings when present, and no "crit" (this layer understands no extension, so any is
// refused). Keys or URLs in the header ("jwk", "jku", "x5c", "x5u") are never used. The
// key is chosen by "kid" (absent: the set's only key for that algorithm); the header's
// "alg" must be the key's bound algorithm. Only then is the signature checked. Never
// throws on bad input.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include <xproxy/base/result.hpp>
#include <xproxy/jose/jwks.hpp>
#include <xproxy/jose/public_key.hpp>
#include <xproxy/jose/refusal.hpp>
#include <xproxy/jose/signing_key.hpp>

namespace xproxy::jose {

inline constexpr std::size_t kMaxTokenBytes = std::size_t{16} << 10;

// The implicit moves are noexcept (nlohmann::json's move constructor is declared noexcept);
// bugprone-exception-escape cannot see through its invariant check.
// NOLINTNEXTLINE(bugprone-exception-escape)
struct VerifiedJws {
    nlohmann::json header;  // the protected header, a JSON object
    std::string payload;    // the decoded payload bytes (not parsed)
    std::string kid;        // the header's kid ("" when it has none)
    Alg alg = Alg::rs256;
};

Expected<VerifiedJws> verify_jws(std::string_view token, const Jwks& keys, std::size_t max_bytes = kMaxTokenBytes,
                                 Refusal* why = nullptr);
// With one key: any kid (or none) is accepted; "alg" must be the key's algorithm.
Expected<VerifiedJws> verify_jws(std::string_view token, const PublicKey& key, std::size_t max_bytes = kMaxTokenBytes,
                                 Refusal* why = nullptr);

// HEADER.PAYLOAD.SIGNATURE with the header {"alg":...,"kid":...,"typ":typ}.
Expected<std::string> sign_jws(const SigningKey& key, std::string_view typ, std::string_view payload);

}  // namespace xproxy::jose
