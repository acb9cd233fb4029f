// public_key.hpp: a verification key bound to the one JOSE algorithm it may verify, and
// that verification (OpenSSL 3 EVP).
//
// Promises: a PublicKey exists only for RSA of 2048 to 8192 bits with an odd public
// exponent (RS256: RSASSA-PKCS1-v1_5 with SHA-256), an EC P-256 point that is on the
// curve (ES256: ECDSA with SHA-256, JOSE's raw 64-byte r||s signature), or an Ed25519
// key (EdDSA, RFC 8037). Its algorithm is fixed when it is made: verify() checks a
// signature with that algorithm only, so a token cannot choose how its key is used
// (no HS256 keyed with an RSA public key, no alg none). Immutable, cheap to copy (the
// EVP_PKEY is shared), safe to use from several threads. Never throws on bad input.
#pragma once

#include <memory>
#include <optional>
#include <string_view>

#include <openssl/evp.h>

#include <xproxy/base/result.hpp>

namespace xproxy::jose {

enum class Alg { rs256, es256, eddsa };

// "RS256", "ES256", "EdDSA"
std::string_view alg_name(Alg a);
// The algorithm an "alg" value names, if it is one of the three (exact, case-sensitive).
std::optional<Alg> alg_from_name(std::string_view name);

inline constexpr int kMinRsaBits = 2048;
inline constexpr int kMaxRsaBits = 8192;

class PublicKey {
public:
    // From the unsigned big-endian octets of a JWK's members (already base64url-decoded).
    static Expected<PublicKey> from_rsa(std::string_view n, std::string_view e);
    static Expected<PublicKey> from_p256(std::string_view x, std::string_view y);
    static Expected<PublicKey> from_ed25519(std::string_view x);
    // A PEM "PUBLIC KEY" (SubjectPublicKeyInfo) of one of the three types; the algorithm
    // follows from the type.
    static Expected<PublicKey> from_pem(std::string_view pem);
    // Takes ownership of `key` (of one of the three types); for SigningKey.
    static Expected<PublicKey> from_evp(EVP_PKEY* key);

    Alg alg() const { return alg_; }
    // Whether `signature` (in its JOSE encoding) signs `input` with this key's algorithm.
    bool verify(std::string_view input, std::string_view signature) const;
    // The SubjectPublicKeyInfo PEM (for tools and tests).
    std::string to_pem() const;

private:
    PublicKey(std::shared_ptr<EVP_PKEY> key, Alg alg) : key_(std::move(key)), alg_(alg) {}
    std::shared_ptr<EVP_PKEY> key_;
    Alg alg_;
};

}  // namespace xproxy::jose
