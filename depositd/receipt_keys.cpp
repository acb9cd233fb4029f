// receipt_keys.cpp: the receipt key's public JWK Set; see receipt_keys.hpp.
#include "receipt_keys.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include <xproxy/jose/base64url.hpp>

namespace xproxy::depositd {

namespace {

using PkeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

PkeyPtr read_public(const std::string& pem) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
    return PkeyPtr(bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr, &EVP_PKEY_free);
}

std::optional<std::string> coordinate(EVP_PKEY* key, const char* name) {
    BIGNUM* bn = nullptr;
    if (EVP_PKEY_get_bn_param(key, name, &bn) != 1) return std::nullopt;
    std::string out(32, '\0');
    const int n = BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), 32);
    BN_free(bn);
    if (n != 32) return std::nullopt;
    return jose::base64url_encode(out);
}

}  // namespace

Expected<std::string> receipt_jwk_set(const jose::SigningKey& key) {
    PkeyPtr pub = read_public(key.public_key().to_pem());
    if (!pub) return Failure{"the receipt key's public half cannot be exported"};
    nlohmann::json jwk;
    if (key.alg() == jose::Alg::eddsa) {
        std::string raw(32, '\0');
        std::size_t len = raw.size();
        if (EVP_PKEY_get_raw_public_key(pub.get(), reinterpret_cast<unsigned char*>(raw.data()), &len) != 1 ||
            len != 32)
            return Failure{"the receipt key's public half cannot be exported"};
        jwk = {{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", jose::base64url_encode(raw)}};
    } else if (key.alg() == jose::Alg::es256) {
        auto x = coordinate(pub.get(), OSSL_PKEY_PARAM_EC_PUB_X);
        auto y = coordinate(pub.get(), OSSL_PKEY_PARAM_EC_PUB_Y);
        if (!x || !y) return Failure{"the receipt key's public half cannot be exported"};
        jwk = {{"kty", "EC"}, {"crv", "P-256"}, {"x", *x}, {"y", *y}};
    } else {
        return Failure{"a receipt key must be Ed25519 or P-256"};
    }
    jwk["kid"] = key.kid();
    jwk["alg"] = std::string(jose::alg_name(key.alg()));
    jwk["use"] = "sig";
    return nlohmann::json{{"keys", nlohmann::json::array({jwk})}}.dump();
}

}  // namespace xproxy::depositd
