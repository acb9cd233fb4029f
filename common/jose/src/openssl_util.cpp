// openssl_util.cpp: see openssl_util.hpp.
#include "openssl_util.hpp"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>

namespace xproxy::jose::detail {

void clear_openssl_errors() { ERR_clear_error(); }

int no_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*u*/) { return 0; }

std::optional<std::string> ecdsa_raw_to_der(std::string_view raw, std::size_t size) {
    if (raw.size() != 2 * size) return std::nullopt;
    Owned<ECDSA_SIG, ECDSA_SIG_free> sig(ECDSA_SIG_new());
    BIGNUM* r = BN_bin2bn(bytes(raw), static_cast<int>(size), nullptr);
    BIGNUM* s = BN_bin2bn(bytes(raw.substr(size)), static_cast<int>(size), nullptr);
    if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
        BN_free(r);
        BN_free(s);
        return std::nullopt;
    }
    unsigned char* der = nullptr;
    const int len = i2d_ECDSA_SIG(sig.get(), &der);
    if (len <= 0) return std::nullopt;
    std::string out(reinterpret_cast<const char*>(der), static_cast<std::size_t>(len));
    OPENSSL_free(der);
    return out;
}

std::optional<std::string> ecdsa_der_to_raw(std::string_view der, std::size_t size) {
    const unsigned char* p = bytes(der);
    Owned<ECDSA_SIG, ECDSA_SIG_free> sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
    if (!sig) return std::nullopt;
    std::string out(2 * size, '\0');
    auto* o = reinterpret_cast<unsigned char*>(out.data());
    if (BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), o, static_cast<int>(size)) < 0 ||
        BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), o + size, static_cast<int>(size)) < 0)
        return std::nullopt;
    return out;
}

}  // namespace xproxy::jose::detail
