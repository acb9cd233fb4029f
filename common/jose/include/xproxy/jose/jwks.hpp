// jwks.hpp: an identity provider's JWK Set (RFC 7517 section 5) as the verification keys
// the deposit daemon may use, each bound to one algorithm.
//
// Promises (doc/jose.md, "Keys"):
// - A set is refused when it is larger than kMaxJwksBytes, is not a JSON object with a
//   "keys" array (strict JSON, no member named twice), holds more than kMaxJwksKeys
//   entries, names one "kid" twice among its usable keys (which key would be meant is
//   ambiguous), or leaves no usable key.
// - A key is usable when it is RSA (2048-8192 bits), EC P-256 (the point on the curve) or
//   OKP Ed25519, with "use" absent or "sig", "key_ops" absent or containing "verify",
//   and "alg" absent or the one algorithm its type allows (RS256, ES256, EdDSA). Any other
//   key (encryption keys, other curves, PS256, small RSA, a bad point, a malformed member)
//   is skipped, and skipped() says which and why, for the log: a provider may publish
//   keys for others alongside the ones we need.
// - A usable key verifies only with its algorithm (public_key.hpp).
// Never throws on bad input.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <xproxy/base/result.hpp>
#include <xproxy/jose/public_key.hpp>

namespace xproxy::jose {

inline constexpr std::size_t kMaxJwksBytes = std::size_t{1} << 20;
inline constexpr std::size_t kMaxJwksKeys = 64;

struct Jwk {
    std::string kid;  // may be empty: such a key matches only a token without kid
    PublicKey key;
};

class Jwks {
public:
    static Expected<Jwks> parse(std::string_view json);

    const std::vector<Jwk>& keys() const { return keys_; }
    // "key 3 (kid \"x\"): why", one line per skipped key, untrusted parts escaped.
    const std::vector<std::string>& skipped() const { return skipped_; }

    // The key named `kid`, or nullptr.
    const Jwk* find(std::string_view kid) const;
    // The key for a token without kid: the set's only key bound to `alg`, or nullptr when
    // it has none or several.
    const Jwk* only_key_for(Alg alg) const;

private:
    std::vector<Jwk> keys_;
    std::vector<std::string> skipped_;
};

}  // namespace xproxy::jose
