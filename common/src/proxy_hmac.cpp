// proxy_hmac.cpp: the xproxy HMAC TLV (0xE3) of a PROXY v2 header.
//
// Value: key id (1 byte) || HMAC-SHA256(key, H) (32 bytes), where H is the whole header
// (16 fixed bytes, addresses, every TLV) with the 32 MAC bytes and the 4 CRC32C value
// bytes, if a CRC32C TLV is present, read as zero. The key id byte is authenticated.
// Computed with OpenSSL's EVP_MAC, streamed so that no copy of the header is made;
// compared with CRYPTO_memcmp (constant time).
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "proxy_internal.hpp"
#include "xproxy/proxy_protocol.hpp"

namespace xproxy::proxy {

namespace detail {

namespace {

struct MacCtxFree {
    void operator()(EVP_MAC_CTX* c) const { EVP_MAC_CTX_free(c); }
};

EVP_MAC* hmac_algorithm() {
    static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);  // kept for the process
    return mac;
}

// A byte range of the header that is read as zero.
struct Hole {
    std::size_t at = kNone;
    std::size_t len = 0;
};

}  // namespace

bool header_hmac(const std::uint8_t* header, std::size_t total, const TlvLayout& layout, std::string_view key,
                 std::uint8_t mac[kHmacMacLength]) {
    static constexpr std::uint8_t kZero[kHmacMacLength] = {};
    if (layout.hmac_value == kNone || key.empty() || hmac_algorithm() == nullptr) return false;
    std::unique_ptr<EVP_MAC_CTX, MacCtxFree> ctx(EVP_MAC_CTX_new(hmac_algorithm()));
    if (!ctx) return false;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
    if (EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char*>(key.data()), key.size(), params) != 1)
        return false;

    Hole holes[2] = {{layout.hmac_value + 1, kHmacMacLength}, {layout.crc_value, 4}};
    if (holes[1].at < holes[0].at) std::swap(holes[0], holes[1]);
    std::size_t pos = 0;
    for (const Hole& h : holes) {
        if (h.at == kNone) continue;
        if (EVP_MAC_update(ctx.get(), header + pos, h.at - pos) != 1) return false;
        if (EVP_MAC_update(ctx.get(), kZero, h.len) != 1) return false;
        pos = h.at + h.len;
    }
    if (EVP_MAC_update(ctx.get(), header + pos, total - pos) != 1) return false;
    std::size_t out_len = 0;
    return EVP_MAC_final(ctx.get(), mac, &out_len, kHmacMacLength) == 1 && out_len == kHmacMacLength;
}

}  // namespace detail

std::optional<std::uint8_t> hmac_key_id(const Header& h) {
    std::optional<std::uint8_t> id;
    for_each_tlv(h.tlv_bytes, [&](const TlvView& t) {
        if (!id && t.type == PP2_TYPE_XPROXY_HMAC && t.value.size() == detail::kHmacValueLength) id = t.value[0];
    });
    return id;
}

bool verify_hmac(const std::uint8_t* data, std::size_t header_len, const Header& h, std::string_view key) {
    // The TLV area is always the tail of the header: find it in `data` itself, so that
    // exactly the bytes being authenticated are the ones parsed.
    if (h.version != 2 || header_len < kV2HeaderLength || header_len > kV2MaxLength ||
        h.tlv_bytes.size() > header_len - kV2HeaderLength ||
        kV2HeaderLength + detail::load_be16(data + 14) != header_len)
        return false;
    detail::TlvLayout layout;
    if (!detail::locate_tlvs(data, header_len, header_len - h.tlv_bytes.size(), layout)) return false;
    if (layout.hmac_value == detail::kNone) return false;
    std::uint8_t want[detail::kHmacMacLength];
    if (!detail::header_hmac(data, header_len, layout, key, want)) return false;
    bool ok = CRYPTO_memcmp(want, data + layout.hmac_value + 1, detail::kHmacMacLength) == 0;
    OPENSSL_cleanse(want, sizeof want);
    return ok;
}

}  // namespace xproxy::proxy
