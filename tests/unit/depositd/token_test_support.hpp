// token_test_support.hpp: what the token verifier's tests make for themselves with
// OpenSSL: identity-provider keys (RSA, P-256, Ed25519) with their JWKs, tokens signed
// with them (any header, so that alg none and HS256 can be tried too), a temporary
// directory, and a self-signed certificate for 127.0.0.1. Tokens and key sets are made
// in each test; only the RSA key is the jose fixtures' (see rsa_fixture()).
#pragma once

#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include <xproxy/jose/base64url.hpp>
#include <xproxy/jose/signing_key.hpp>

namespace xproxy::test {

inline constexpr std::int64_t kNow = 1800000000;
inline const std::string kAudience = "https://deposit.example";

struct EvpDeleter {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using EvpKey = std::unique_ptr<EVP_PKEY, EvpDeleter>;

inline std::string bio_string(BIO* bio) {
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<std::size_t>(n));
}

inline std::string bn_bytes(EVP_PKEY* key, const char* name, int pad = 0) {
    BIGNUM* bn = nullptr;
    if (EVP_PKEY_get_bn_param(key, name, &bn) != 1) return {};
    std::string out(static_cast<std::size_t>(pad > 0 ? pad : BN_num_bytes(bn)), '\0');
    BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size()));
    BN_free(bn);
    return out;
}

// The 2048-bit RSA key of the jose fixtures: generating one costs up to a second of CPU in
// each test process, and any RSA key does here.
inline EvpKey rsa_fixture() {
    std::ifstream in(std::string(XPROXY_SOURCE_DIR) + "/tests/unit/jose/fixtures/rsa.key", std::ios::binary);
    std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    EvpKey key(PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr));
    BIO_free(bio);
    EXPECT_TRUE(key) << "tests/unit/jose/fixtures/rsa.key";
    return key;
}

// One identity-provider signing key (RSA: the fixture; P-256 and Ed25519: made here) and
// its public JWK.
struct IdpKey {
    std::string alg;  // RS256, ES256, EdDSA
    std::string kid;
    EvpKey key;

    static IdpKey make(const std::string& alg, const std::string& kid) {
        IdpKey k{alg, kid, nullptr};
        if (alg == "RS256") k.key = rsa_fixture();
        else if (alg == "ES256") k.key.reset(EVP_EC_gen("P-256"));
        else k.key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
        return k;
    }

    nlohmann::json jwk() const {
        nlohmann::json j;
        if (alg == "RS256") {
            j = {{"kty", "RSA"},
                 {"n", jose::base64url_encode(bn_bytes(key.get(), OSSL_PKEY_PARAM_RSA_N))},
                 {"e", jose::base64url_encode(bn_bytes(key.get(), OSSL_PKEY_PARAM_RSA_E))}};
        } else if (alg == "ES256") {
            j = {{"kty", "EC"},
                 {"crv", "P-256"},
                 {"x", jose::base64url_encode(bn_bytes(key.get(), OSSL_PKEY_PARAM_EC_PUB_X, 32))},
                 {"y", jose::base64url_encode(bn_bytes(key.get(), OSSL_PKEY_PARAM_EC_PUB_Y, 32))}};
        } else {
            std::string x(32, '\0');
            std::size_t n = x.size();
            EVP_PKEY_get_raw_public_key(key.get(), reinterpret_cast<unsigned char*>(x.data()), &n);
            j = {{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", jose::base64url_encode(x)}};
        }
        j["kid"] = kid;
        j["use"] = "sig";
        j["alg"] = alg;
        return j;
    }

    std::string public_pem() const {
        BIO* bio = BIO_new(BIO_s_mem());
        PEM_write_bio_PUBKEY(bio, key.get());
        std::string s = bio_string(bio);
        BIO_free(bio);
        return s;
    }

    std::string private_pem() const {
        BIO* bio = BIO_new(BIO_s_mem());
        PEM_write_bio_PrivateKey(bio, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
        std::string s = bio_string(bio);
        BIO_free(bio);
        return s;
    }

    // The JOSE signature of `input`.
    std::string sign(const std::string& input) const {
        if (alg != "RS256") {
            auto sk = jose::SigningKey::from_pem(private_pem(), kid.empty() ? std::string("k") : kid);
            EXPECT_TRUE(sk) << sk.error();
            if (!sk) return {};
            auto sig = sk->sign(input);
            return sig ? *sig : std::string();
        }
        EVP_MD_CTX* ctx = EVP_MD_CTX_new();
        std::size_t n = 0;
        EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key.get());
        EVP_DigestSign(ctx, nullptr, &n, reinterpret_cast<const unsigned char*>(input.data()), input.size());
        std::string sig(n, '\0');
        EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &n,
                       reinterpret_cast<const unsigned char*>(input.data()), input.size());
        EVP_MD_CTX_free(ctx);
        sig.resize(n);
        return sig;
    }
};

inline std::string jwks_of(const std::vector<const IdpKey*>& keys) {
    nlohmann::json set = {{"keys", nlohmann::json::array()}};
    for (const auto* k : keys) set["keys"].push_back(k->jwk());
    return set.dump();
}

// Claims valid at kNow for `issuer`, naming alice@example.org (verified).
inline nlohmann::json good_claims(const std::string& issuer) {
    return {{"iss", issuer},          {"aud", kAudience}, {"sub", "u-1"},     {"email", "alice@example.org"},
            {"email_verified", true}, {"iat", kNow - 5},  {"exp", kNow + 300}};
}

inline std::string mint_with_header(const IdpKey& key, const nlohmann::json& header, const nlohmann::json& claims) {
    std::string input = jose::base64url_encode(header.dump()) + "." + jose::base64url_encode(claims.dump());
    return input + "." + jose::base64url_encode(key.sign(input));
}

inline std::string mint(const IdpKey& key, const nlohmann::json& claims) {
    return mint_with_header(key, {{"alg", key.alg}, {"kid", key.kid}, {"typ", "JWT"}}, claims);
}

// HS256 keyed with the public key's PEM: the classic confusion attack.
inline std::string mint_hs256_with_public_key(const IdpKey& key, const nlohmann::json& claims) {
    nlohmann::json header = {{"alg", "HS256"}, {"kid", key.kid}, {"typ", "JWT"}};
    std::string input = jose::base64url_encode(header.dump()) + "." + jose::base64url_encode(claims.dump());
    std::string secret = key.public_pem();
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &n);
    return input + "." + jose::base64url_encode(std::string(reinterpret_cast<char*>(mac), n));
}

inline std::string mint_none(const IdpKey& key, const nlohmann::json& claims) {
    nlohmann::json header = {{"alg", "none"}, {"kid", key.kid}, {"typ", "JWT"}};
    return jose::base64url_encode(header.dump()) + "." + jose::base64url_encode(claims.dump()) + ".";
}

struct TempDir {
    std::string path;
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "xproxy-token-XXXXXX").string();
        path = mkdtemp(tmpl.data()) != nullptr ? tmpl : std::string();
    }
    ~TempDir() {
        std::error_code ec;
        if (!path.empty()) std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    // Writes `name` (replacing it atomically, as an administrator's tool would) with `mode`.
    std::string write(const std::string& name, const std::string& content, mode_t mode = 0644) const {
        std::string file = path + "/" + name;
        std::string tmp = file + ".new";
        {
            std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
            out << content;
        }
        chmod(tmp.c_str(), mode);
        std::rename(tmp.c_str(), file.c_str());
        return file;
    }
};

// A self-signed P-256 certificate for IP address 127.0.0.1; returns {cert PEM, key PEM}.
inline std::pair<std::string, std::string> make_loopback_certificate() {
    EvpKey key(EVP_EC_gen("P-256"));
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1,
                               0);
    X509_set_issuer_name(cert, name);
    X509_set_pubkey(cert, key.get());
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
    for (auto [nid, value] :
         {std::pair{NID_subject_alt_name, "IP:127.0.0.1"}, std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
        X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
        X509_add_ext(cert, ext, -1);
        X509_EXTENSION_free(ext);
    }
    X509_sign(cert, key.get(), EVP_sha256());
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, cert);
    std::string cert_pem = bio_string(bio);
    BIO_free(bio);
    X509_free(cert);
    bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    std::string key_pem = bio_string(bio);
    BIO_free(bio);
    return {cert_pem, key_pem};
}

// Runs `body` (a coroutine on `io`) to its end, then stops `io` (servers the test started
// may still have work queued). A test fails when the body throws.
template <class Body>
void run_test(boost::asio::io_context& io, Body body) {
    bool done = false;
    boost::asio::co_spawn(io, std::move(body), [&](const std::exception_ptr& e) {
        done = true;
        if (e) ADD_FAILURE() << "the test coroutine threw";
        io.stop();
    });
    io.run();
    EXPECT_TRUE(done);
}

inline boost::asio::awaitable<void> sleep_for(std::chrono::milliseconds ms) {
    boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, ms);
    co_await t.async_wait(boost::asio::use_awaitable);
}

}  // namespace xproxy::test
