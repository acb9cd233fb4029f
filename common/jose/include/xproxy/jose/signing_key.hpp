// signing_key.hpp: the private key a server signs its receipts with (Ed25519 -> EdDSA,
// EC P-256 -> ES256), with the key id it publishes.
//
// Promises: load() reads the PEM file with base's secret-file loader (file_loader.hpp: no
// symbolic link, a regular file of mode 0600 or tighter, at most 64 KiB, read into a
// SecretBytes that is wiped); an encrypted key is refused, never prompted for. The key id
// is 1 to 128 printable ASCII characters. sign() returns the JOSE encoding of the
// signature (64 bytes for both algorithms). Error messages name the file, never its
// bytes. Immutable after load, safe to use from several threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <openssl/evp.h>

#include <xproxy/base/result.hpp>
#include <xproxy/jose/public_key.hpp>

namespace xproxy::jose {

class SigningKey {
public:
    static Expected<SigningKey> load(const std::string& path, std::string kid);
    // The same from PEM bytes already in memory (the caller keeps them secret).
    static Expected<SigningKey> from_pem(std::string_view pem, std::string kid);

    Alg alg() const { return alg_; }
    const std::string& kid() const { return kid_; }
    // The public half, for publishing and for tests.
    PublicKey public_key() const;
    Expected<std::string> sign(std::string_view input) const;

private:
    SigningKey(std::shared_ptr<EVP_PKEY> key, Alg alg, std::string kid)
        : key_(std::move(key)), alg_(alg), kid_(std::move(kid)) {}
    std::shared_ptr<EVP_PKEY> key_;
    Alg alg_;
    std::string kid_;
};

// Whether `kid` is a key id this layer writes: 1 to 128 printable ASCII characters.
bool valid_kid(std::string_view kid);

}  // namespace xproxy::jose
