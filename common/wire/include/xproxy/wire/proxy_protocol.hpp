// proxy_protocol.hpp: HAProxy PROXY protocol v1 and v2 (doc/proxy-protocol.txt),
// encode and incremental decode. doc/wire-formats.md describes the bytes we accept and emit.
//
// Decoders follow result.hpp: given the bytes received so far they return complete
// (consumed = exact header length; the caller must consume exactly that), need_more
// (every byte so far is a valid prefix) or invalid (reason) as soon as the prefix can no
// longer become a valid header. They never read past `size`, never allocate, never throw.
//
// v1: "PROXY TCP4|TCP6|UNKNOWN ...\r\n", at most 107 bytes, CRLF only, decimal ports and
//     IPv4 octets without leading zeros, single spaces. After UNKNOWN anything but CR/LF
//     may follow up to the CRLF.
// v2: 12-byte signature, version/command, family/protocol, length, addresses, TLVs.
//     LOCAL: family byte and everything after byte 16 ignored, length always skipped.
//     PROXY + UNSPEC: length skipped, TLVs not parsed. Accepted family/protocol bytes:
//     0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32. TLVs validated: each must fit exactly,
//     CRC32C checked when present, UNIQUE_ID <= 128 bytes, SSL sub-TLVs well-formed, our
//     custom 0xE0-0xE4; a second CRC32C, HMAC, TIME, HELO, LOGIN or SESSION_ID TLV is invalid.
// Addresses: a v4-mapped IPv6 address (TCP6 / INET6) is normalised to IPv4 in
// Header::source/destination (as IpAddress::parse does); `family` keeps what the wire said.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <xproxy/base/ip.hpp>
#include <xproxy/base/result.hpp>
#include <xproxy/base/source_info.hpp>
#include <xproxy/wire/crc32c.hpp>

namespace xproxy::pp {

inline constexpr std::size_t kV1MaxLength = 107;
inline constexpr std::size_t kV2HeaderLength = 16;  // signature + ver/cmd + fam + len
inline constexpr std::size_t kV2MaxLength = 16 + 65535;
inline constexpr std::uint8_t kV2Signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                  0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

// TLV types (proxy-protocol.txt section 2.2) and xproxy's custom range.
enum TlvType : std::uint8_t {
    PP2_TYPE_ALPN = 0x01,
    PP2_TYPE_AUTHORITY = 0x02,
    PP2_TYPE_CRC32C = 0x03,
    PP2_TYPE_NOOP = 0x04,
    PP2_TYPE_UNIQUE_ID = 0x05,
    PP2_TYPE_SSL = 0x20,
    PP2_SUBTYPE_SSL_VERSION = 0x21,
    PP2_SUBTYPE_SSL_CN = 0x22,
    PP2_SUBTYPE_SSL_CIPHER = 0x23,
    PP2_SUBTYPE_SSL_SIG_ALG = 0x24,
    PP2_SUBTYPE_SSL_KEY_ALG = 0x25,
    PP2_TYPE_NETNS = 0x30,
    // xproxy custom range (0xE0-0xEF is reserved for applications by the spec)
    PP2_TYPE_XPROXY_HELO = 0xE0,
    PP2_TYPE_XPROXY_LOGIN = 0xE1,
    PP2_TYPE_XPROXY_SESSION_ID = 0xE2,
    PP2_TYPE_XPROXY_HMAC = 0xE3,  // HMAC-SHA256 over the header, see proxy_hmac below
    PP2_TYPE_XPROXY_TIME = 0xE4,  // signing time for the HMAC's freshness, see below
};

// pp2_client bits of the SSL TLV
inline constexpr std::uint8_t PP2_CLIENT_SSL = 0x01;
inline constexpr std::uint8_t PP2_CLIENT_CERT_CONN = 0x02;
inline constexpr std::uint8_t PP2_CLIENT_CERT_SESS = 0x04;

enum class Command : std::uint8_t { local, proxy };
enum class Family : std::uint8_t { unspec, inet, inet6, unix_ };  // unix_ : AF_UNIX
enum class Transport : std::uint8_t { unspec, stream, dgram };

// A view of one TLV inside the decoded input buffer (valid while that buffer lives).
struct TlvView {
    std::uint8_t type = 0;
    std::span<const std::uint8_t> value;
};

// The decoded header. For v1 UNKNOWN and v2 LOCAL / UNSPEC, `has_addresses` is false and
// the receiver must use the real connection endpoints.
struct Header {
    int version = 0;  // 1 or 2
    Command command = Command::proxy;
    Family family = Family::unspec;
    Transport transport = Transport::unspec;
    bool has_addresses = false;
    Endpoint source;                                              // INET/INET6 only
    Endpoint destination;                                         // INET/INET6 only
    std::span<const std::uint8_t> unix_source, unix_destination;  // UNIX, 108 bytes each
    std::span<const std::uint8_t> tlv_bytes;                      // raw TLV area (v2 only), validated
};

// Decode a v1 header from data[0..size).
DecodeResult decode_v1(const std::uint8_t* data, std::size_t size, Header& out);
// Decode a v2 header from data[0..size). TLVs are validated (lengths, CRC32C if present,
// UNIQUE_ID length, SSL sub-TLVs); walk them with for_each_tlv.
DecodeResult decode_v2(const std::uint8_t* data, std::size_t size, Header& out);
// Either version, chosen by the first bytes: invalid as soon as the prefix matches
// neither signature (so the caller can tell "not a PROXY header" after one byte).
DecodeResult decode(const std::uint8_t* data, std::size_t size, Header& out);

// Calls fn(TlvView) for each top-level TLV in order; returns false if the area is
// malformed (decode_v2 already guarantees it is not).
template <class Fn>
bool for_each_tlv(std::span<const std::uint8_t> area, Fn&& fn) {
    std::size_t i = 0;
    while (i < area.size()) {
        if (area.size() - i < 3) return false;
        std::size_t len = (std::size_t{area[i + 1]} << 8) | area[i + 2];
        if (area.size() - i - 3 < len) return false;
        fn(TlvView{area[i], area.subspan(i + 3, len)});
        i += 3 + len;
    }
    return true;
}

// What to put into an encoded header.
struct EncodeOptions {
    bool local = false;                     // v2 LOCAL command (health checks)
    std::string alpn;                       // PP2_TYPE_ALPN
    std::string authority;                  // PP2_TYPE_AUTHORITY (SNI)
    std::string unique_id;                  // PP2_TYPE_UNIQUE_ID, <= 128 bytes
    bool ssl = false;                       // emit PP2_TYPE_SSL from SourceInfo::tls
    bool xproxy_tlvs = false;               // emit HELO/LOGIN/SESSION_ID custom TLVs from SourceInfo
    bool crc32c = false;                    // append PP2_TYPE_CRC32C
    std::string hmac_key;                   // non-empty: append PP2_TYPE_XPROXY_HMAC with this key
    std::uint8_t hmac_key_id = 0;           // key id stored in the HMAC TLV
    std::optional<std::int64_t> hmac_time;  // unix seconds for PP2_TYPE_XPROXY_TIME; required
                                            // with hmac_key (the time of sending: now)
    std::size_t pad_to = 0;                 // add a NOOP TLV so the header is at least this long
};

// v1 text header. Missing endpoints give "PROXY UNKNOWN\r\n"; mixed families are sent
// as TCP6 with the IPv4 side v4-mapped (the decoder normalises it back).
std::string encode_v1(const std::optional<Endpoint>& src, const std::optional<Endpoint>& dst);
// v2 binary header from src/dst (mixed families: IPv4 is mapped to IPv6) and the TLVs
// requested in opt. opt.local gives the 16-byte LOCAL header; a missing client or server
// gives PROXY + UNSPEC with no address and no TLV. TLV order: ALPN, AUTHORITY, UNIQUE_ID,
// SSL, HELO, LOGIN, SESSION_ID, NOOP (pad_to), TIME and HMAC, CRC32C. When both are
// requested the HMAC is computed first (CRC32C value still zero), then the CRC32C over the
// final bytes. Returns an empty string if the result would exceed 65535+16 bytes,
// unique_id is longer than 128 bytes, or hmac_key is set without an hmac_time in
// 0..kHmacMaxTime.
std::string encode_v2(const SourceInfo& info, const EncodeOptions& opt = {});

// Fill SourceInfo (client = source, server = destination, TLS from the SSL TLV, HELO,
// login and session id from the custom TLVs) from a decoded header. Every field a PROXY
// header can carry (client, server, tls, helo, login, session_id) is overwritten (cleared
// when absent); ptr_name, protocol and time are left as they are. TLS: version and cipher
// from the SSL sub-TLVs (version "unknown" when PP2_CLIENT_SSL is set without a version
// sub-TLV), peer_subject = "CN=" + the SSL_CN sub-TLV.
void to_source_info(const Header& h, SourceInfo& out);

// HMAC TLV (0xE3, length 33): value = key_id (1 byte) || HMAC-SHA256(key, the whole
// header with the 32 MAC bytes zeroed and the CRC32C value, if any, zeroed). The key id
// and every other byte are authenticated, the TIME TLV (0xE4, 8 bytes, big-endian unix
// seconds) included. Returns the key id found, or nullopt when there is no HMAC TLV.
std::optional<std::uint8_t> hmac_key_id(const Header& h);
// The TIME TLV's value, or nullopt when there is none (not authenticated by itself).
std::optional<std::int64_t> hmac_time(const Header& h);

inline constexpr std::int64_t kHmacWindow = 60;                  // default freshness window, seconds
inline constexpr std::int64_t kHmacMaxTime = 9'999'999'999'999;  // keeps time +- window in range

// What the receiver requires of an authenticated header.
struct HmacCheck {
    std::string_view key;               // the shared key (empty never verifies)
    std::int64_t now = 0;               // the receiver's clock, unix seconds
    std::int64_t window = kHmacWindow;  // accepted |now - TIME|, seconds (negative: 0)
};

enum class HmacVerdict : std::uint8_t {
    ok,
    absent,   // not a v2 header with an HMAC TLV
    invalid,  // the MAC does not verify with this key (or the bytes are not what was decoded)
    untimed,  // authentic, but without a TIME TLV: replayable for ever, never accepted
    expired,  // authentic, but TIME is more than `window` before now
    future,   // authentic, but TIME is more than `window` after now
};
const char* to_string(HmacVerdict v);  // "ok", "absent", "invalid", "untimed", "expired", "future"
const char* describe(HmacVerdict v);   // a sentence for logs ("PROXY header ...")

// Verifies the header (the `consumed` bytes decode_v2 accepted, at data): the HMAC TLV
// with check.key (constant-time comparison), then the presence of a TIME TLV, then
// |check.now - TIME| <= check.window; the first failure decides.
HmacVerdict verify_hmac(const std::uint8_t* data, std::size_t header_len, const Header& h, const HmacCheck& check);

}  // namespace xproxy::pp
