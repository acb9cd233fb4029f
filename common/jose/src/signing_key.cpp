// signing_key.cpp: see signing_key.hpp.
#include <xproxy/jose/signing_key.hpp>

#include <openssl/bio.h>
#include <openssl/pem.h>

#include <xproxy/base/file_loader.hpp>
#include <xproxy/base/invariant.hpp>

#include "openssl_util.hpp"

namespace xproxy::jose {

using detail::Owned;

bool valid_kid(std::string_view kid) {
    if (kid.empty() || kid.size() > 128) return false;
    for (char c : kid)
        if (c < 0x20 || c > 0x7e) return false;
    return true;
}

Expected<SigningKey> SigningKey::load(const std::string& path, std::string kid) {
    constexpr FileRules rules{std::size_t{64} << 10, kSecretOwnerOnly, false, false};
    auto pem = load_secret_file(path, rules);
    if (!pem) return Failure{pem.error()};
    auto key = from_pem(pem->view(), std::move(kid));
    if (!key) return Failure{path + ": " + key.error()};
    return key;
}

Expected<SigningKey> SigningKey::from_pem(std::string_view pem, std::string kid) {
    if (!valid_kid(kid)) return Failure{"the key id must be 1 to 128 printable ASCII characters"};
    Owned<BIO, BIO_free> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    EVP_PKEY* raw = bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, detail::no_passphrase, nullptr) : nullptr;
    if (raw == nullptr) {
        detail::clear_openssl_errors();
        return Failure{"not an unencrypted PEM private key"};
    }
    std::shared_ptr<EVP_PKEY> key(raw, EVP_PKEY_free);
    // the algorithm follows from the type, as for a public key; RSA is not a receipt key
    EVP_PKEY_up_ref(raw);
    auto pub = PublicKey::from_evp(raw);
    if (!pub) return Failure{pub.error()};
    if (pub->alg() == Alg::rs256) return Failure{"RSA keys do not sign receipts (Ed25519 or EC P-256 only)"};
    return SigningKey(std::move(key), pub->alg(), std::move(kid));
}

PublicKey SigningKey::public_key() const {
    // the public half as PEM and back: one path for every PublicKey
    Owned<BIO, BIO_free> bio(BIO_new(BIO_s_mem()));
    if (bio && PEM_write_bio_PUBKEY(bio.get(), key_.get()) == 1) {
        char* data = nullptr;
        const long len = BIO_get_mem_data(bio.get(), &data);
        auto pub = PublicKey::from_pem(std::string_view(data, static_cast<std::size_t>(len)));
        if (pub) return std::move(*pub);
    }
    XPROXY_UNREACHABLE();
}

Expected<std::string> SigningKey::sign(std::string_view input) const {
    Owned<EVP_MD_CTX, EVP_MD_CTX_free> ctx(EVP_MD_CTX_new());
    const EVP_MD* md = alg_ == Alg::eddsa ? nullptr : EVP_sha256();
    std::string sig(static_cast<std::size_t>(EVP_PKEY_get_size(key_.get())), '\0');  // the largest signature
    std::size_t len = sig.size();
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, md, nullptr, key_.get()) != 1 ||
        EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, detail::bytes(input),
                       input.size()) != 1) {
        detail::clear_openssl_errors();
        return Failure{"cannot sign"};
    }
    sig.resize(len);
    if (alg_ == Alg::eddsa) return sig;
    auto raw = detail::ecdsa_der_to_raw(sig, 32);
    if (!raw) return Failure{"cannot sign"};
    return std::move(*raw);
}

}  // namespace xproxy::jose
