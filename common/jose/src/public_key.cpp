// public_key.cpp: see public_key.hpp.
#include <xproxy/jose/public_key.hpp>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include <string>

#include "openssl_util.hpp"

namespace xproxy::jose {

using detail::Owned;

std::string_view alg_name(Alg a) {
    switch (a) {
        case Alg::rs256: return "RS256";
        case Alg::es256: return "ES256";
        case Alg::eddsa: return "EdDSA";
    }
    return "?";
}

std::optional<Alg> alg_from_name(std::string_view name) {
    if (name == "RS256") return Alg::rs256;
    if (name == "ES256") return Alg::es256;
    if (name == "EdDSA") return Alg::eddsa;
    return std::nullopt;
}

namespace {

std::shared_ptr<EVP_PKEY> share(EVP_PKEY* k) { return {k, EVP_PKEY_free}; }

// The key made from `params` by OpenSSL's `type` ("RSA", "EC"), checked as a public key.
Expected<std::shared_ptr<EVP_PKEY>> from_params(const char* type, OSSL_PARAM_BLD* bld) {
    Owned<OSSL_PARAM, OSSL_PARAM_free> params(OSSL_PARAM_BLD_to_param(bld));
    Owned<EVP_PKEY_CTX, EVP_PKEY_CTX_free> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
    EVP_PKEY* raw = nullptr;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1 || raw == nullptr) {
        detail::clear_openssl_errors();
        return Failure{"not a valid public key"};
    }
    auto key = share(raw);
    Owned<EVP_PKEY_CTX, EVP_PKEY_CTX_free> check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
    if (!check || EVP_PKEY_public_check(check.get()) != 1) {
        detail::clear_openssl_errors();
        return Failure{"not a valid public key"};
    }
    return key;
}

Expected<void> check_rsa(EVP_PKEY* k) {
    const int bits = EVP_PKEY_get_bits(k);
    if (bits < kMinRsaBits) return Failure{"RSA key of " + std::to_string(bits) + " bits (at least 2048 needed)"};
    if (bits > kMaxRsaBits) return Failure{"RSA key of " + std::to_string(bits) + " bits (at most 8192 accepted)"};
    BIGNUM* e = nullptr;
    if (EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e) != 1) return Failure{"RSA key without exponent"};
    Owned<BIGNUM, BN_free> exp(e);
    if (!BN_is_odd(exp.get()) || BN_num_bits(exp.get()) < 2 || BN_num_bits(exp.get()) > 32)
        return Failure{"RSA key with an unusual public exponent"};
    return {};
}

}  // namespace

Expected<PublicKey> PublicKey::from_rsa(std::string_view n, std::string_view e) {
    if (n.empty() || e.empty() || e.size() > 4) return Failure{"RSA key with a malformed modulus or exponent"};
    Owned<BIGNUM, BN_free> bn_n(BN_bin2bn(detail::bytes(n), static_cast<int>(n.size()), nullptr));
    Owned<BIGNUM, BN_free> bn_e(BN_bin2bn(detail::bytes(e), static_cast<int>(e.size()), nullptr));
    Owned<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free> bld(OSSL_PARAM_BLD_new());
    if (!bn_n || !bn_e || !bld || BN_num_bits(bn_n.get()) > kMaxRsaBits ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
        detail::clear_openssl_errors();
        if (bn_n && BN_num_bits(bn_n.get()) > kMaxRsaBits) return Failure{"RSA key longer than 8192 bits"};
        return Failure{"RSA key with a malformed modulus or exponent"};
    }
    if (BN_num_bits(bn_n.get()) < kMinRsaBits)
        return Failure{"RSA key of " + std::to_string(BN_num_bits(bn_n.get())) + " bits (at least 2048 needed)"};
    auto key = from_params("RSA", bld.get());
    if (!key) return Failure{"RSA " + key.error()};
    if (auto ok = check_rsa(key->get()); !ok) return Failure{ok.error()};
    return PublicKey(std::move(*key), Alg::rs256);
}

Expected<PublicKey> PublicKey::from_p256(std::string_view x, std::string_view y) {
    if (x.size() != 32 || y.size() != 32) return Failure{"P-256 coordinates must be 32 bytes each"};
    std::string point;
    point.reserve(65);
    point.push_back('\x04');  // uncompressed (SEC 1 section 2.3.3)
    point.append(x);
    point.append(y);
    Owned<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free> bld(OSSL_PARAM_BLD_new());
    char group[] = "prime256v1";
    if (!bld || OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) != 1) {
        detail::clear_openssl_errors();
        return Failure{"P-256 key cannot be built"};
    }
    auto key = from_params("EC", bld.get());
    if (!key) return Failure{"P-256 point is not on the curve"};
    return PublicKey(std::move(*key), Alg::es256);
}

Expected<PublicKey> PublicKey::from_ed25519(std::string_view x) {
    if (x.size() != 32) return Failure{"Ed25519 key must be 32 bytes"};
    EVP_PKEY* k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, detail::bytes(x), x.size());
    if (k == nullptr) {
        detail::clear_openssl_errors();
        return Failure{"not a valid Ed25519 key"};
    }
    return PublicKey(share(k), Alg::eddsa);
}

Expected<PublicKey> PublicKey::from_evp(EVP_PKEY* key) {
    auto owned = share(key);
    if (!key) return Failure{"no key"};
    if (EVP_PKEY_is_a(key, "RSA")) {
        if (auto ok = check_rsa(key); !ok) return Failure{ok.error()};
        return PublicKey(std::move(owned), Alg::rs256);
    }
    if (EVP_PKEY_is_a(key, "ED25519")) return PublicKey(std::move(owned), Alg::eddsa);
    if (EVP_PKEY_is_a(key, "EC")) {
        char group[64] = {};
        std::size_t len = 0;
        if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) != 1 ||
            std::string_view(group, len) != "prime256v1") {
            detail::clear_openssl_errors();
            return Failure{"EC key on a curve other than P-256"};
        }
        return PublicKey(std::move(owned), Alg::es256);
    }
    return Failure{"key type not supported (RSA, EC P-256 or Ed25519 only)"};
}

Expected<PublicKey> PublicKey::from_pem(std::string_view pem) {
    Owned<BIO, BIO_free> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    EVP_PKEY* k = bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, detail::no_passphrase, nullptr) : nullptr;
    if (k == nullptr) {
        detail::clear_openssl_errors();
        return Failure{"not a PEM public key"};
    }
    auto key = from_evp(k);
    if (!key) return Failure{key.error()};
    if (key->alg() == Alg::es256) {  // a point read from PEM is checked like one from a JWK
        Owned<EVP_PKEY_CTX, EVP_PKEY_CTX_free> check(EVP_PKEY_CTX_new_from_pkey(nullptr, k, nullptr));
        if (!check || EVP_PKEY_public_check(check.get()) != 1) {
            detail::clear_openssl_errors();
            return Failure{"P-256 point is not on the curve"};
        }
    }
    return key;
}

bool PublicKey::verify(std::string_view input, std::string_view signature) const {
    std::string der;  // ES256: the raw r||s as the DER ECDSA-Sig-Value OpenSSL verifies
    std::string_view sig = signature;
    const EVP_MD* md = EVP_sha256();
    switch (alg_) {
        case Alg::rs256:
            if (signature.size() != static_cast<std::size_t>(EVP_PKEY_get_size(key_.get()))) return false;
            break;
        case Alg::es256: {
            auto d = detail::ecdsa_raw_to_der(signature, 32);
            if (!d) return false;
            der = std::move(*d);
            sig = der;
            break;
        }
        case Alg::eddsa:
            if (signature.size() != 64) return false;
            md = nullptr;  // one-shot, no digest of ours
            break;
    }
    Owned<EVP_MD_CTX, EVP_MD_CTX_free> ctx(EVP_MD_CTX_new());
    const bool ok = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key_.get()) == 1 &&
                    EVP_DigestVerify(ctx.get(), detail::bytes(sig), sig.size(), detail::bytes(input), input.size()) ==
                        1;
    if (!ok) detail::clear_openssl_errors();
    return ok;
}

std::string PublicKey::to_pem() const {
    Owned<BIO, BIO_free> bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PUBKEY(bio.get(), key_.get()) != 1) return {};
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio.get(), &data);
    return len > 0 ? std::string(data, static_cast<std::size_t>(len)) : std::string();
}

}  // namespace xproxy::jose
