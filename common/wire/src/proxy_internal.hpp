// proxy_internal.hpp: pieces shared by the PROXY v2 decoder, encoder and HMAC code inside
// libxproxy; not installed, not part of the API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <string_view>

#include <xproxy/wire/proxy_protocol.hpp>

namespace xproxy::pp::detail {

inline constexpr std::size_t kNone = static_cast<std::size_t>(-1);
inline constexpr std::size_t kHmacMacLength = 32;                    // HMAC-SHA256
inline constexpr std::size_t kHmacValueLength = 1 + kHmacMacLength;  // key id + MAC
inline constexpr std::size_t kTimeValueLength = 8;                   // big-endian unix seconds

inline std::uint16_t load_be16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }
inline std::uint32_t load_be32(const std::uint8_t* p) {
    return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}
inline std::uint64_t load_be64(const std::uint8_t* p) { return std::uint64_t{load_be32(p)} << 32 | load_be32(p + 4); }

// Header{} for decoders, field by field: assigning a value-initialised Header compiles to
// `rep stos`, whose start-up cost alone is a third of a v2 decode.
inline void reset_header(Header& h, int version) {
    h.version = version;
    h.command = Command::proxy;
    h.family = Family::unspec;
    h.transport = Transport::unspec;
    h.has_addresses = false;
    h.source = Endpoint{};
    h.destination = Endpoint{};
    h.unix_source = {};
    h.unix_destination = {};
    h.tlv_bytes = {};
}

// Sets an address from 4 or 16 network-order bytes (v4-mapped IPv6 normalised to IPv4).
// The IpAddress is constructed in place by guaranteed copy elision: copying the freshly
// returned temporary instead costs a store-forwarding stall (two per header), which was
// most of the time of a v2 decode. IpAddress is trivially destructible.
inline void set_v4(IpAddress& a, const std::uint8_t* b) {
    ::new (static_cast<void*>(&a)) IpAddress(IpAddress::v4_bytes(b));
}
inline void set_v6(IpAddress& a, const std::uint8_t* b) {
    static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    if (std::memcmp(b, kMapped, sizeof kMapped) == 0) {
        set_v4(a, b + 12);
    } else {
        ::new (static_cast<void*>(&a)) IpAddress(IpAddress::v6_bytes(b));
    }
}

// Offsets, from the start of the header, of the CRC32C value and of the 32 MAC bytes of
// the HMAC TLV (after its key id byte); kNone when absent.
struct TlvLayout {
    std::size_t crc_value = kNone;
    std::size_t hmac_value = kNone;  // the key id byte; the MAC follows it
    std::size_t time_value = kNone;  // the 8 bytes of the TIME TLV
};

// Validates the TLV area header[tlv_off..total) of a v2 header (see proxy_protocol.hpp
// for the rules) and checks the CRC32C when present. Returns an empty reason when valid.
std::string_view validate_tlvs(const std::uint8_t* header, std::size_t total, std::size_t tlv_off);

// Finds the CRC32C, HMAC and TIME TLVs (first of each) in header[tlv_off..total); false when the
// area is not well-formed or such a TLV has the wrong length.
bool locate_tlvs(const std::uint8_t* header, std::size_t total, std::size_t tlv_off, TlvLayout& out);

// CRC32C of header[0..total) with the 4 bytes at crc_value read as zero, without a copy
// (crc32c.cpp).
std::uint32_t header_crc(const std::uint8_t* header, std::size_t total, std::size_t crc_value);

// HMAC-SHA256 of header[0..total) with the MAC bytes (after the key id at
// layout.hmac_value) and the CRC32C value read as zero. False if OpenSSL fails.
bool header_hmac(const std::uint8_t* header, std::size_t total, const TlvLayout& layout, std::string_view key,
                 std::uint8_t mac[kHmacMacLength]);

// Appends type, 16-bit big-endian length and value.
void append_tlv(std::string& out, std::uint8_t type, std::string_view value);

}  // namespace xproxy::pp::detail
