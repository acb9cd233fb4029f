// proxy_tlv.cpp: the TLV area of a PROXY v2 header: validation on decode (every TLV fits
// exactly; CRC32C verified; UNIQUE_ID <= 128 bytes; SSL sub-TLVs well-formed; lengths of
// our custom TLVs; no duplicate CRC32C, HMAC, TIME, HELO, LOGIN or SESSION_ID), location
// of the CRC32C, HMAC and TIME values for the HMAC code, and the TLV writer of the encoder.
#include <string>

#include "proxy_internal.hpp"
#include <xproxy/wire/proxy_protocol.hpp>

namespace xproxy::pp::detail {

namespace {

constexpr std::size_t kSslFixed = 5;  // client (1) + verify (4)
constexpr std::size_t kUniqueIdMax = 128;

// One bit per TLV type that may appear at most once.
std::uint32_t once_bit(std::uint8_t type) {
    switch (type) {
        case PP2_TYPE_CRC32C: return 1u << 0;
        case PP2_TYPE_XPROXY_HELO: return 1u << 1;
        case PP2_TYPE_XPROXY_LOGIN: return 1u << 2;
        case PP2_TYPE_XPROXY_SESSION_ID: return 1u << 3;
        case PP2_TYPE_XPROXY_HMAC: return 1u << 4;
        case PP2_TYPE_XPROXY_TIME: return 1u << 5;
        default: return 0;
    }
}

bool sub_tlvs_well_formed(const std::uint8_t* p, std::size_t size) {
    std::size_t i = 0;
    while (i < size) {
        if (size - i < 3) return false;
        std::size_t len = load_be16(p + i + 1);
        if (size - i - 3 < len) return false;
        i += 3 + len;
    }
    return true;
}

}  // namespace

std::string_view validate_tlvs(const std::uint8_t* header, std::size_t total, std::size_t tlv_off) {
    std::uint32_t seen = 0;
    std::size_t crc_value = kNone;
    std::size_t i = tlv_off;
    while (i < total) {
        if (total - i < 3) return "truncated TLV";
        const std::uint8_t type = header[i];
        const std::size_t len = load_be16(header + i + 1);
        const std::size_t value = i + 3;
        if (total - value < len) return "TLV runs past the header";
        if (std::uint32_t bit = once_bit(type)) {
            if (seen & bit) return "duplicate TLV";
            seen |= bit;
        }
        switch (type) {
            case PP2_TYPE_CRC32C:
                if (len != 4) return "CRC32C TLV length is not 4";
                crc_value = value;
                break;
            case PP2_TYPE_UNIQUE_ID:
                if (len > kUniqueIdMax) return "UNIQUE_ID longer than 128 bytes";
                break;
            case PP2_TYPE_SSL:
                if (len < kSslFixed) return "SSL TLV shorter than 5 bytes";
                if (!sub_tlvs_well_formed(header + value + kSslFixed, len - kSslFixed)) return "malformed SSL sub-TLV";
                break;
            case PP2_TYPE_XPROXY_HMAC:
                if (len != kHmacValueLength) return "HMAC TLV length is not 33";
                break;
            case PP2_TYPE_XPROXY_TIME:
                if (len != kTimeValueLength) return "TIME TLV length is not 8";
                break;
            default: break;  // ALPN, AUTHORITY, NOOP, NETNS, HELO, LOGIN, SESSION_ID, others
        }
        i = value + len;
    }
    if (crc_value != kNone && header_crc(header, total, crc_value) != load_be32(header + crc_value))
        return "CRC32C mismatch";
    return {};
}

bool locate_tlvs(const std::uint8_t* header, std::size_t total, std::size_t tlv_off, TlvLayout& out) {
    out = TlvLayout{};
    std::size_t i = tlv_off;
    while (i < total) {
        if (total - i < 3) return false;
        const std::uint8_t type = header[i];
        const std::size_t len = load_be16(header + i + 1);
        const std::size_t value = i + 3;
        if (total - value < len) return false;
        if (type == PP2_TYPE_CRC32C && out.crc_value == kNone) {
            if (len != 4) return false;
            out.crc_value = value;
        } else if (type == PP2_TYPE_XPROXY_HMAC && out.hmac_value == kNone) {
            if (len != kHmacValueLength) return false;
            out.hmac_value = value;
        } else if (type == PP2_TYPE_XPROXY_TIME && out.time_value == kNone) {
            if (len != kTimeValueLength) return false;
            out.time_value = value;
        }
        i = value + len;
    }
    return true;
}

void append_tlv(std::string& out, std::uint8_t type, std::string_view value) {
    out += static_cast<char>(type);
    out += static_cast<char>(value.size() >> 8);
    out += static_cast<char>(value.size() & 0xFF);
    out += value;
}

}  // namespace xproxy::pp::detail
