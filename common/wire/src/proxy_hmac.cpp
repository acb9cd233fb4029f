// proxy_hmac.cpp: the xproxy HMAC TLV (0xE3) of a PROXY v2 header.
//
// Value: key id (1 byte) || HMAC-SHA256(key, H) (32 bytes), where H is the whole header
// (16 fixed bytes, addresses, every TLV) with the 32 MAC bytes and the 4 CRC32C value
// bytes, if a CRC32C TLV is present, read as zero. The key id byte is authenticated.
// Computed with OpenSSL's EVP_MAC, streamed so that no copy of the header is made;
// compared with CRYPTO_memcmp (constant time). The TIME TLV (0xE4) is covered like any
// other byte; verify_hmac() checks it against the receiver's clock once the MAC matched.
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "proxy_internal.hpp"
#include <xproxy/wire/proxy_protocol.hpp>

namespace xproxy::pp {

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
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
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

std::optional<std::int64_t> hmac_time(const Header& h) {
    std::optional<std::int64_t> time;
    for_each_tlv(h.tlv_bytes, [&](const TlvView& t) {
        if (!time && t.type == PP2_TYPE_XPROXY_TIME && t.value.size() == detail::kTimeValueLength) {
            const std::uint64_t v = detail::load_be64(t.value.data());
            time = v > static_cast<std::uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<std::int64_t>(v);
        }
    });
    return time;
}

const char* to_string(HmacVerdict v) {
    switch (v) {
        case HmacVerdict::ok: return "ok";
        case HmacVerdict::absent: return "absent";
        case HmacVerdict::invalid: return "invalid";
        case HmacVerdict::untimed: return "untimed";
        case HmacVerdict::expired: return "expired";
        case HmacVerdict::future: return "future";
    }
    return "invalid";
}

const char* describe(HmacVerdict v) {
    switch (v) {
        case HmacVerdict::ok: return "PROXY header HMAC verified";
        case HmacVerdict::absent: return "PROXY header without an HMAC";
        case HmacVerdict::invalid: return "PROXY header HMAC does not verify";
        case HmacVerdict::untimed: return "PROXY header HMAC without a signed time (replayable)";
        case HmacVerdict::expired: return "PROXY header signed too long ago (replay or clock skew)";
        case HmacVerdict::future: return "PROXY header signed in the future (clock skew)";
    }
    return "PROXY header HMAC does not verify";
}

HmacVerdict verify_hmac(const std::uint8_t* data, std::size_t header_len, const Header& h, const HmacCheck& check) {
    // The TLV area is always the tail of the header: find it in `data` itself, so that
    // exactly the bytes being authenticated are the ones parsed.
    if (h.version != 2 || h.tlv_bytes.empty()) return HmacVerdict::absent;
    if (header_len < kV2HeaderLength || header_len > kV2MaxLength ||
        h.tlv_bytes.size() > header_len - kV2HeaderLength ||
        kV2HeaderLength + detail::load_be16(data + 14) != header_len)
        return HmacVerdict::invalid;
    detail::TlvLayout layout;
    if (!detail::locate_tlvs(data, header_len, header_len - h.tlv_bytes.size(), layout)) return HmacVerdict::invalid;
    if (layout.hmac_value == detail::kNone) return HmacVerdict::absent;
    std::uint8_t want[detail::kHmacMacLength];
    if (!detail::header_hmac(data, header_len, layout, check.key, want)) return HmacVerdict::invalid;
    const bool authentic = CRYPTO_memcmp(want, data + layout.hmac_value + 1, detail::kHmacMacLength) == 0;
    OPENSSL_cleanse(want, sizeof want);
    if (!authentic) return HmacVerdict::invalid;

    // Freshness: only now that TIME is known to come from the key holder.
    if (layout.time_value == detail::kNone) return HmacVerdict::untimed;
    const std::uint64_t raw = detail::load_be64(data + layout.time_value);
    if (raw > static_cast<std::uint64_t>(kHmacMaxTime)) return HmacVerdict::future;
    const auto t = static_cast<std::int64_t>(raw);
    const std::int64_t window = check.window < 0 ? 0 : check.window > kHmacMaxTime ? kHmacMaxTime : check.window;
    // |t| and window are at most 10^13: neither expression can overflow.
    if (t - window > check.now) return HmacVerdict::future;
    if (t + window < check.now) return HmacVerdict::expired;
    return HmacVerdict::ok;
}

}  // namespace xproxy::pp
