// proxy_v2_test: the PROXY protocol v2 binary header: commented byte fixtures (HAProxy's
// own header, our custom TLVs with HMAC and CRC32C, the SSL TLV), valid and invalid rows
// with the prefix length at which an invalid header is first rejected, every strict
// prefix, trailing data, round trips, HMAC and CRC32C tamper loops, CRC32C vectors on
// both implementations, to_source_info, and no heap allocation while decoding.
#include <gtest/gtest.h>
#include <openssl/hmac.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <random>
#include <string>
#include <vector>

#include <xproxy/wire/proxy_protocol.hpp>

// Counts heap allocations, to show that decoding makes none. (GCC cannot see that the
// replaced new and delete below belong together, hence the pragma.)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
static std::atomic<long> g_allocations{0};
void* operator new(std::size_t n) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

using namespace xproxy;
using namespace xproxy::pp;

namespace {

const std::uint8_t* u8(const std::string& s) { return reinterpret_cast<const std::uint8_t*>(s.data()); }

std::string bytes(const std::uint8_t* p, std::size_t n) { return std::string(reinterpret_cast<const char*>(p), n); }

// "0d0a 0d0a" -> bytes; spaces ignored.
std::string hex(std::string_view h) {
    std::string out;
    int hi = -1;
    for (char c : h) {
        if (c == ' ') continue;
        int v = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : c - 'A' + 10;
        if (hi < 0) {
            hi = v;
        } else {
            out += static_cast<char>(hi << 4 | v);
            hi = -1;
        }
    }
    return out;
}

DecodeResult run(const std::string& s, Header& h) { return decode_v2(u8(s), s.size(), h); }

std::size_t first_invalid(const std::string& s) {
    Header h;
    for (std::size_t k = 1; k <= s.size(); ++k)
        if (decode_v2(u8(s), k, h).invalid()) return k;
    return 0;
}

const std::string kSig = hex("0d0a0d0a000d0a515549540a");

// A v2 header: signature, ver/cmd, fam, length (of body unless given), body.
std::string v2(std::uint8_t vc, std::uint8_t fam, const std::string& body, int len = -1) {
    std::size_t n = len < 0 ? body.size() : static_cast<std::size_t>(len);
    return kSig + static_cast<char>(vc) + static_cast<char>(fam) + static_cast<char>(n >> 8) +
           static_cast<char>(n & 0xFF) + body;
}

std::string tlv(std::uint8_t type, const std::string& value) {
    return static_cast<char>(type) +
           std::string{static_cast<char>(value.size() >> 8), static_cast<char>(value.size() & 0xFF)} + value;
}

// Appends a CRC32C TLV to a complete header and fills in its length and checksum.
std::string with_crc(std::string h) {
    h += tlv(PP2_TYPE_CRC32C, std::string(4, '\0'));
    std::size_t body = h.size() - 16;
    h[14] = static_cast<char>(body >> 8);
    h[15] = static_cast<char>(body & 0xFF);
    std::uint32_t c = crc32c(u8(h), h.size());
    for (int i = 0; i < 4; ++i) h[h.size() - 4 + static_cast<std::size_t>(i)] = static_cast<char>(c >> (24 - 8 * i));
    return h;
}

const std::string kInet = hex("c0000201 c6336402 9c40 0019");  // 192.0.2.1:40000 -> 198.51.100.2:25
const std::string kInet6 = hex("20010db8000000000000000000000001 20010db8000000000000000000000002 9c40 0019");
const std::string kMapped = hex("00000000000000000000ffffc0000201 20010db8000000000000000000000002 9c40 0019");
const std::string kUnix = "/run/a" + std::string(102, '\0') + "/run/b" + std::string(102, '\0');

// HAProxy's header as captured on the wire (send-proxy-v2, client bound to 127.0.0.5).
const std::uint8_t kHaproxyCapture[] = {
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,  // signature "\r\n\r\n\0\r\nQUIT\n"
    0x21,                                                                    // version 2 | PROXY
    0x11,                                                                    // AF_INET | STREAM
    0x00, 0x0C,                                                              // 12 address bytes follow
    0x7F, 0x00, 0x00, 0x05,                                                  // source 127.0.0.5
    0x7F, 0x00, 0x00, 0x01,                                                  // destination 127.0.0.1
    0xA0, 0xAA,                                                              // source port 41130
    0x09, 0xDD,                                                              // destination port 2525
};

// Our custom TLVs, authenticated (key "k3y-material", key id 7) and checksummed. MAC and
// CRC were computed independently of libxproxy (Python hmac/hashlib and a bitwise CRC32C).
const std::uint8_t kCustomFixture[] = {
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,            // signature
    0x21,                                                                              // version 2 | PROXY
    0x11,                                                                              // AF_INET | STREAM
    0x00, 0x57,                                                                        // 87 bytes follow
    0xCB, 0x00, 0x71, 0x07,                                                            // source 203.0.113.7
    0xC6, 0x33, 0x64, 0x19,                                                            // destination 198.51.100.25
    0xC8, 0x22,                                                                        // source port 51234
    0x00, 0x19,                                                                        // destination port 25
    0xE0, 0x00, 0x0E,                                                                  // HELO, 14 bytes
    'm',  'x',  '.',  'e',  'x',  'a',  'm',  'p',  'l',  'e',  '.',  'n',  'e', 't',  //   "mx.example.net"
    0xE1, 0x00, 0x05,                                                                  // LOGIN, 5 bytes
    'a',  'l',  'i',  'c',  'e',                                                       //   "alice"
    0xE2, 0x00, 0x04,                                                                  // SESSION_ID, 4 bytes
    '4',  'X',  'y',  'Z',                                                             //   "4XyZ"
    0xE3, 0x00, 0x21,                                                                  // HMAC, 33 bytes
    0x07,                                                                              //   key id 7
    0xC1, 0xC6, 0x1E, 0x17, 0xA8, 0xD7, 0xF7, 0x2F,                                    //   HMAC-SHA256 over the
    0x21, 0x5A, 0x35, 0xEA, 0x81, 0x13, 0x2B, 0x37,                                    //   header with these 32
    0x6E, 0x5D, 0x54, 0xF3, 0x3D, 0x56, 0x79, 0x01,                                    //   bytes and the CRC32C
    0x4A, 0xE6, 0xFF, 0xCD, 0x71, 0xC3, 0xCD, 0xC0,                                    //   value zeroed
    0x03, 0x00, 0x04,                                                                  // CRC32C, 4 bytes
    0xD6, 0x30, 0x3E, 0x2A,                                                            //   over the final header
};
constexpr std::string_view kFixtureKey = "k3y-material";

// The same with a signing time, as encode_v2 writes it now (computed the same way).
// kCustomFixture, without TIME, is what earlier senders wrote: authentic but untimed.
constexpr std::int64_t kFixtureTime = 1790000000;
const std::uint8_t kTimedFixture[] = {
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,            // signature
    0x21,                                                                              // version 2 | PROXY
    0x11,                                                                              // AF_INET | STREAM
    0x00, 0x62,                                                                        // 98 bytes follow
    0xCB, 0x00, 0x71, 0x07,                                                            // source 203.0.113.7
    0xC6, 0x33, 0x64, 0x19,                                                            // destination 198.51.100.25
    0xC8, 0x22,                                                                        // source port 51234
    0x00, 0x19,                                                                        // destination port 25
    0xE0, 0x00, 0x0E,                                                                  // HELO, 14 bytes
    'm',  'x',  '.',  'e',  'x',  'a',  'm',  'p',  'l',  'e',  '.',  'n',  'e', 't',  //   "mx.example.net"
    0xE1, 0x00, 0x05,                                                                  // LOGIN, 5 bytes
    'a',  'l',  'i',  'c',  'e',                                                       //   "alice"
    0xE2, 0x00, 0x04,                                                                  // SESSION_ID, 4 bytes
    '4',  'X',  'y',  'Z',                                                             //   "4XyZ"
    0xE4, 0x00, 0x08,                                                                  // TIME, 8 bytes
    0x00, 0x00, 0x00, 0x00, 0x6A, 0xB1, 0x3B, 0x80,                                    //   1790000000, big-endian
    0xE3, 0x00, 0x21,                                                                  // HMAC, 33 bytes
    0x07,                                                                              //   key id 7
    0x36, 0x70, 0x12, 0xEF, 0xA6, 0x4B, 0x5B, 0x0A,                                    //   HMAC-SHA256 over the
    0xC0, 0x5A, 0x34, 0x12, 0x9E, 0x60, 0xCB, 0x09,                                    //   header with these 32
    0x62, 0xD9, 0x07, 0x9C, 0x7F, 0xA4, 0x7E, 0x52,                                    //   bytes and the CRC32C
    0xB0, 0xD2, 0x5E, 0x45, 0xBE, 0x4F, 0x2A, 0x16,                                    //   value zeroed
    0x03, 0x00, 0x04,                                                                  // CRC32C, 4 bytes
    0xB9, 0xBD, 0xFE, 0x5E,                                                            //   over the final header
};

// ALPN, AUTHORITY, UNIQUE_ID and the SSL TLV over IPv6, checksummed.
const std::uint8_t kSslFixture[] = {
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,            // signature
    0x21,                                                                              // version 2 | PROXY
    0x21,                                                                              // AF_INET6 | STREAM
    0x00, 0x86,                                                                        // 134 bytes follow
    0x20, 0x01, 0x0D, 0xB8, 0x00, 0x00, 0x00, 0x00,                                    // source
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07,                                    //   2001:db8::7
    0x20, 0x01, 0x0D, 0xB8, 0x00, 0x00, 0x00, 0x00,                                    // destination
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x25,                                    //   2001:db8::25
    0x9C, 0x40,                                                                        // source port 40000
    0x01, 0xD1,                                                                        // destination port 465
    0x01, 0x00, 0x04, 's',  'm',  't',  'p',                                           // ALPN "smtp"
    0x02, 0x00, 0x0E,                                                                  // AUTHORITY, 14 bytes
    'm',  'x',  '.',  'e',  'x',  'a',  'm',  'p',  'l',  'e',  '.',  'n',  'e', 't',  //   "mx.example.net"
    0x05, 0x00, 0x04, 'i',  'd',  '-',  '1',                                           // UNIQUE_ID "id-1"
    0x20, 0x00, 0x39,                                                                  // SSL, 57 bytes
    0x03,                                                                              //   client: SSL | CERT_CONN
    0x00, 0x00, 0x00, 0x01,                                                            //   verify: not verified
    0x21, 0x00, 0x07, 'T',  'L',  'S',  'v',  '1',  '.',  '3',                         //   VERSION "TLSv1.3"
    0x23, 0x00, 0x16,                                                                  //   CIPHER, 22 bytes
    'T',  'L',  'S',  '_',  'A',  'E',  'S',  '_',  '1',  '2',  '8',  '_',             //     "TLS_AES_128_
    'G',  'C',  'M',  '_',  'S',  'H',  'A',  '2',  '5',  '6',                         //      GCM_SHA256"
    0x22, 0x00, 0x0E,                                                                  //   CN, 14 bytes
    'c',  'l',  'i',  'e',  'n',  't',  '.',  'e',  'x',  'a',  'm',  'p',  'l', 'e',  //     "client.example"
    0x03, 0x00, 0x04,                                                                  // CRC32C, 4 bytes
    0x65, 0x0C, 0x17, 0xE6,                                                            //   checksum
};

const std::string kCapture = bytes(kHaproxyCapture, sizeof kHaproxyCapture);
const std::string kCustom = bytes(kCustomFixture, sizeof kCustomFixture);
const std::string kSsl = bytes(kSslFixture, sizeof kSslFixture);
const std::string kTimed = bytes(kTimedFixture, sizeof kTimedFixture);

struct ValidRow {
    const char* name;
    std::string in;
    Command want_command;
    Family want_family;
    Transport want_transport;
    bool want_addresses;
    const char* want_src;  // Endpoint::to_string(), when want_addresses
    const char* want_dst;
    std::size_t want_tlvs;
};

const std::vector<ValidRow>& valid_rows() {
    static const std::vector<ValidRow> rows = {
        {"HAProxy capture", kCapture, Command::proxy, Family::inet, Transport::stream, true, "127.0.0.5:41130",
         "127.0.0.1:2525", 0},
        {"INET UDP", v2(0x21, 0x12, kInet), Command::proxy, Family::inet, Transport::dgram, true, "192.0.2.1:40000",
         "198.51.100.2:25", 0},
        {"INET6 TCP", v2(0x21, 0x21, kInet6), Command::proxy, Family::inet6, Transport::stream, true,
         "[2001:db8::1]:40000", "[2001:db8::2]:25", 0},
        {"INET6 UDP", v2(0x21, 0x22, kInet6), Command::proxy, Family::inet6, Transport::dgram, true,
         "[2001:db8::1]:40000", "[2001:db8::2]:25", 0},
        {"INET6 v4-mapped source is normalised", v2(0x21, 0x21, kMapped), Command::proxy, Family::inet6,
         Transport::stream, true, "192.0.2.1:40000", "[2001:db8::2]:25", 0},
        {"UNIX stream", v2(0x21, 0x31, kUnix), Command::proxy, Family::unix_, Transport::stream, false, "", "", 0},
        {"UNIX dgram with a TLV", v2(0x21, 0x32, kUnix + tlv(PP2_TYPE_ALPN, "x")), Command::proxy, Family::unix_,
         Transport::dgram, false, "", "", 1},
        {"PROXY UNSPEC, empty", v2(0x21, 0x00, ""), Command::proxy, Family::unspec, Transport::unspec, false, "", "",
         0},
        {"PROXY UNSPEC skips its bytes unparsed", v2(0x21, 0x00, hex("01ffff 02")), Command::proxy, Family::unspec,
         Transport::unspec, false, "", "", 0},
        {"LOCAL, empty", v2(0x20, 0x00, ""), Command::local, Family::unspec, Transport::unspec, false, "", "", 0},
        {"LOCAL skips addresses and garbage", v2(0x20, 0x11, kInet + hex("ffffff")), Command::local, Family::unspec,
         Transport::unspec, false, "", "", 0},
        {"LOCAL ignores the family byte", v2(0x20, 0xFF, hex("00")), Command::local, Family::unspec, Transport::unspec,
         false, "", "", 0},
        {"INET with NOOP, NETNS, unknown and repeated custom TLVs",
         v2(0x21, 0x11,
            kInet + tlv(PP2_TYPE_NOOP, "") + tlv(PP2_TYPE_NETNS, "ns1") + tlv(0xF0, "exp") + tlv(0xE9, "a") +
                tlv(0xE9, "b")),
         Command::proxy, Family::inet, Transport::stream, true, "192.0.2.1:40000", "198.51.100.2:25", 5},
        {"address block longer than the family (TLV area empty)", v2(0x21, 0x11, kInet, 12), Command::proxy,
         Family::inet, Transport::stream, true, "192.0.2.1:40000", "198.51.100.2:25", 0},
        {"UNIQUE_ID of 128 bytes", v2(0x21, 0x11, kInet + tlv(PP2_TYPE_UNIQUE_ID, std::string(128, 'u'))),
         Command::proxy, Family::inet, Transport::stream, true, "192.0.2.1:40000", "198.51.100.2:25", 1},
        {"SSL without sub-TLVs", v2(0x21, 0x11, kInet + tlv(PP2_TYPE_SSL, hex("00 00000000"))), Command::proxy,
         Family::inet, Transport::stream, true, "192.0.2.1:40000", "198.51.100.2:25", 1},
        {"CRC32C", with_crc(v2(0x21, 0x11, kInet + tlv(PP2_TYPE_ALPN, "smtp"))), Command::proxy, Family::inet,
         Transport::stream, true, "192.0.2.1:40000", "198.51.100.2:25", 2},
        {"custom TLVs, HMAC and CRC32C fixture", kCustom, Command::proxy, Family::inet, Transport::stream, true,
         "203.0.113.7:51234", "198.51.100.25:25", 5},
        {"custom TLVs, TIME, HMAC and CRC32C fixture", kTimed, Command::proxy, Family::inet, Transport::stream, true,
         "203.0.113.7:51234", "198.51.100.25:25", 6},
        {"SSL fixture", kSsl, Command::proxy, Family::inet6, Transport::stream, true, "[2001:db8::7]:40000",
         "[2001:db8::25]:465", 5},
    };
    return rows;
}

struct InvalidRow {
    const char* name;
    std::string in;
    const char* want_reason;
    std::size_t want_at;  // shortest prefix already invalid (0: only the whole header)
};

const std::vector<InvalidRow>& invalid_rows() {
    const std::string crc_ok = with_crc(v2(0x21, 0x11, kInet));
    std::string crc_bad = crc_ok;
    crc_bad.back() = static_cast<char>(crc_bad.back() ^ 1);
    const std::string hmac33(33, 'h');
    static const std::vector<InvalidRow> rows = {
        {"first byte", "\x0E" + kCapture.substr(1), "bad v2 signature", 1},
        {"signature byte 5 is not NUL", hex("0d0a0d0a01") + kCapture.substr(5), "bad v2 signature", 5},
        {"signature last byte", kCapture.substr(0, 11) + "\x0B" + kCapture.substr(12), "bad v2 signature", 12},
        {"version 1", v2(0x11, 0x11, kInet), "v2 version is not 2", 13},
        {"version 3", v2(0x31, 0x11, kInet), "v2 version is not 2", 13},
        {"command 2", v2(0x22, 0x11, kInet), "unknown v2 command", 13},
        {"command 15", v2(0x2F, 0x11, kInet), "unknown v2 command", 13},
        {"family 4", v2(0x21, 0x41, kInet), "unknown v2 address family or protocol", 14},
        {"transport 3", v2(0x21, 0x13, kInet), "unknown v2 address family or protocol", 14},
        {"INET with UNSPEC transport", v2(0x21, 0x10, kInet), "unknown v2 address family or protocol", 14},
        {"UNSPEC with STREAM transport", v2(0x21, 0x01, ""), "unknown v2 address family or protocol", 14},
        {"INET block of 11 bytes", v2(0x21, 0x11, kInet.substr(0, 11)),
         "v2 address block shorter than the family needs", 16},
        {"INET block of 0 bytes", v2(0x21, 0x11, ""), "v2 address block shorter than the family needs", 16},
        {"INET6 block of 35 bytes", v2(0x21, 0x21, kInet6.substr(0, 35)),
         "v2 address block shorter than the family needs", 16},
        {"UNIX block of 215 bytes", v2(0x21, 0x31, kUnix.substr(0, 215)),
         "v2 address block shorter than the family needs", 16},
        {"TLV header cut", v2(0x21, 0x11, kInet + hex("0100")), "truncated TLV", 0},
        {"TLV value runs past the header", v2(0x21, 0x11, kInet + hex("010005 616263")), "TLV runs past the header", 0},
        {"TLV after a valid one cut", v2(0x21, 0x11, kInet + tlv(1, "a") + hex("02")), "truncated TLV", 0},
        {"CRC32C mismatch", crc_bad, "CRC32C mismatch", 0},
        {"CRC32C of 3 bytes", v2(0x21, 0x11, kInet + tlv(PP2_TYPE_CRC32C, "abc")), "CRC32C TLV length is not 4", 0},
        {"two CRC32C", with_crc(v2(0x21, 0x11, kInet + tlv(PP2_TYPE_CRC32C, std::string(4, '\0')))), "duplicate TLV",
         0},
        {"UNIQUE_ID of 129 bytes", v2(0x21, 0x11, kInet + tlv(PP2_TYPE_UNIQUE_ID, std::string(129, 'u'))),
         "UNIQUE_ID longer than 128 bytes", 0},
        {"SSL of 4 bytes", v2(0x21, 0x11, kInet + tlv(PP2_TYPE_SSL, hex("01 000000"))), "SSL TLV shorter than 5 bytes",
         0},
        {"SSL sub-TLV runs past the SSL TLV",
         v2(0x21, 0x11, kInet + tlv(PP2_TYPE_SSL, hex("01 00000000 210005") + "TLS")), "malformed SSL sub-TLV", 0},
        {"SSL sub-TLV header cut", v2(0x21, 0x11, kInet + tlv(PP2_TYPE_SSL, hex("01 00000000 210001 41 22"))),
         "malformed SSL sub-TLV", 0},
        {"HMAC of 32 bytes", v2(0x21, 0x11, kInet + tlv(PP2_TYPE_XPROXY_HMAC, std::string(32, 'h'))),
         "HMAC TLV length is not 33", 0},
        {"HMAC of 34 bytes", v2(0x21, 0x11, kInet + tlv(PP2_TYPE_XPROXY_HMAC, std::string(34, 'h'))),
         "HMAC TLV length is not 33", 0},
        {"TIME of 7 bytes", v2(0x21, 0x11, kInet + tlv(PP2_TYPE_XPROXY_TIME, std::string(7, 't'))),
         "TIME TLV length is not 8", 0},
        {"TIME of 9 bytes", v2(0x21, 0x11, kInet + tlv(PP2_TYPE_XPROXY_TIME, std::string(9, 't'))),
         "TIME TLV length is not 8", 0},
        {"two TIME",
         v2(0x21, 0x11,
            kInet + tlv(PP2_TYPE_XPROXY_TIME, std::string(8, 't')) + tlv(PP2_TYPE_XPROXY_TIME, std::string(8, 't'))),
         "duplicate TLV", 0},
        {"two HMAC", v2(0x21, 0x11, kInet + tlv(PP2_TYPE_XPROXY_HMAC, hmac33) + tlv(PP2_TYPE_XPROXY_HMAC, hmac33)),
         "duplicate TLV", 0},
        {"two HELO", v2(0x21, 0x11, kInet + tlv(PP2_TYPE_XPROXY_HELO, "a") + tlv(PP2_TYPE_XPROXY_HELO, "b")),
         "duplicate TLV", 0},
        {"two LOGIN", v2(0x21, 0x11, kInet + tlv(PP2_TYPE_XPROXY_LOGIN, "a") + tlv(PP2_TYPE_XPROXY_LOGIN, "a")),
         "duplicate TLV", 0},
        {"two SESSION_ID",
         v2(0x21, 0x11, kInet + tlv(PP2_TYPE_XPROXY_SESSION_ID, "") + tlv(PP2_TYPE_XPROXY_SESSION_ID, "")),
         "duplicate TLV", 0},
    };
    return rows;
}

std::vector<std::uint8_t> tlv_types(const Header& h) {
    std::vector<std::uint8_t> types;
    EXPECT_TRUE(for_each_tlv(h.tlv_bytes, [&](const TlvView& t) { types.push_back(t.type); }));
    return types;
}

Endpoint ep(const char* ip, std::uint16_t port) { return Endpoint{*IpAddress::parse(ip), port}; }

SourceInfo full_info() {
    SourceInfo info;
    info.client = ep("203.0.113.7", 51234);
    info.server = ep("198.51.100.25", 25);
    info.helo = "mx.example.net";
    info.login = "alice";
    info.session_id = "4XyZ";
    info.tls.version = "TLSv1.3";
    info.tls.cipher = "TLS_AES_128_GCM_SHA256";
    info.tls.peer_subject = "CN=client.example";
    return info;
}

EncodeOptions all_options() {
    EncodeOptions opt;
    opt.alpn = "smtp";
    opt.authority = "mx.example.net";
    opt.unique_id = std::string(128, 'u');
    opt.ssl = true;
    opt.xproxy_tlvs = true;
    opt.crc32c = true;
    opt.hmac_key = "secret key";
    opt.hmac_key_id = 42;
    opt.hmac_time = kFixtureTime;
    opt.pad_to = 512;
    return opt;
}

}  // namespace

TEST(ProxyV2, HaproxyCapture) {
    Header h;
    DecodeResult res = decode(kHaproxyCapture, sizeof kHaproxyCapture, h);
    ASSERT_TRUE(res.complete()) << res.reason;
    EXPECT_EQ(res.consumed, 28u);
    EXPECT_EQ(h.version, 2);
    EXPECT_EQ(h.source.to_string(), "127.0.0.5:41130");
    EXPECT_EQ(h.destination.to_string(), "127.0.0.1:2525");
    SourceInfo info;
    info.client = h.source;
    info.server = h.destination;
    EXPECT_EQ(encode_v2(info), kCapture);
}

TEST(ProxyV2, ValidRows) {
    for (const auto& r : valid_rows()) {
        SCOPED_TRACE(r.name);
        Header h;
        DecodeResult res = run(r.in, h);
        ASSERT_TRUE(res.complete()) << res.reason;
        EXPECT_EQ(res.consumed, r.in.size());
        EXPECT_EQ(h.version, 2);
        EXPECT_EQ(h.command, r.want_command);
        EXPECT_EQ(h.family, r.want_family);
        EXPECT_EQ(h.transport, r.want_transport);
        EXPECT_EQ(h.has_addresses, r.want_addresses);
        EXPECT_EQ(tlv_types(h).size(), r.want_tlvs);
        if (r.want_addresses) {
            EXPECT_EQ(h.source.to_string(), r.want_src);
            EXPECT_EQ(h.destination.to_string(), r.want_dst);
        }
        if (r.want_family == Family::unix_) {
            ASSERT_EQ(h.unix_source.size(), 108u);
            ASSERT_EQ(h.unix_destination.size(), 108u);
            EXPECT_EQ(bytes(h.unix_source.data(), 6), "/run/a");
            EXPECT_EQ(bytes(h.unix_destination.data(), 6), "/run/b");
        }
    }
}

TEST(ProxyV2, InvalidRowsAreRejected) {
    for (const auto& r : invalid_rows()) {
        SCOPED_TRACE(r.name);
        Header h;
        DecodeResult res = run(r.in, h);
        ASSERT_TRUE(res.invalid());
        EXPECT_EQ(res.reason, r.want_reason);
        // Fixed-part rules are rejected at their byte; TLV rules once the header is whole.
        std::size_t want_at = r.want_at ? r.want_at : r.in.size();
        EXPECT_EQ(first_invalid(r.in), want_at);
        for (std::size_t k = want_at; k <= r.in.size(); ++k) EXPECT_TRUE(decode_v2(u8(r.in), k, h).invalid()) << k;
    }
}

TEST(ProxyV2, EveryStrictPrefixOfAValidHeaderNeedsMore) {
    std::vector<std::string> headers;
    for (const auto& r : valid_rows()) headers.push_back(r.in);
    headers.push_back(encode_v2(full_info(), all_options()));
    for (const auto& in : headers) {
        Header h;
        for (std::size_t k = 0; k < in.size(); ++k) {
            EXPECT_TRUE(decode_v2(u8(in), k, h).need_more()) << k;
            EXPECT_TRUE(decode(u8(in), k, h).need_more()) << k;
        }
    }
}

TEST(ProxyV2, TrailingApplicationDataIsNotConsumed) {
    for (const auto& r : valid_rows()) {
        SCOPED_TRACE(r.name);
        for (const std::string& tail : {std::string("E"), std::string("EHLO x\r\n"), kCapture}) {
            Header h;
            DecodeResult res = run(r.in + tail, h);
            ASSERT_TRUE(res.complete()) << res.reason;
            EXPECT_EQ(res.consumed, r.in.size());
        }
    }
}

TEST(ProxyV2, RoundTrips) {
    struct Row {
        const char* name;
        std::optional<Endpoint> client, server;
        bool local;
        std::uint8_t want_fam;
        std::size_t want_size;
    };
    const Row rows[] = {
        {"v4", ep("192.0.2.1", 40000), ep("198.51.100.2", 25), false, 0x11, 16 + 12},
        {"v6", ep("2001:db8::1", 1), ep("2001:db8::2", 65535), false, 0x21, 16 + 36},
        {"mixed v4 -> v6", ep("192.0.2.1", 0), ep("2001:db8::2", 587), false, 0x21, 16 + 36},
        {"mixed v6 -> v4", ep("2001:db8::1", 0), ep("192.0.2.1", 587), false, 0x21, 16 + 36},
        {"LOCAL", ep("192.0.2.1", 1), ep("192.0.2.2", 2), true, 0x00, 16},
        {"no server: PROXY UNSPEC", ep("192.0.2.1", 1), std::nullopt, false, 0x00, 16},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.name);
        SourceInfo info;
        info.client = r.client;
        info.server = r.server;
        EncodeOptions opt;
        opt.local = r.local;
        std::string out = encode_v2(info, opt);
        ASSERT_EQ(out.size(), r.want_size);
        EXPECT_EQ(static_cast<std::uint8_t>(out[12]), r.local ? 0x20 : 0x21);
        EXPECT_EQ(static_cast<std::uint8_t>(out[13]), r.want_fam);
        Header h;
        DecodeResult res = run(out, h);
        ASSERT_TRUE(res.complete()) << res.reason;
        EXPECT_EQ(res.consumed, out.size());
        EXPECT_EQ(h.command, r.local ? Command::local : Command::proxy);
        SourceInfo back;
        to_source_info(h, back);
        if (r.local || !r.server) {
            EXPECT_FALSE(h.has_addresses);
            EXPECT_FALSE(back.client);
            continue;
        }
        EXPECT_EQ(back.client, r.client);
        EXPECT_EQ(back.server, r.server);
    }
}

TEST(ProxyV2, RoundTripWithAllTlvs) {
    const SourceInfo info = full_info();
    const EncodeOptions opt = all_options();
    std::string out = encode_v2(info, opt);
    EXPECT_EQ(out.size(), 512u);  // pad_to
    Header h;
    DecodeResult res = run(out, h);
    ASSERT_TRUE(res.complete()) << res.reason;
    EXPECT_EQ(res.consumed, out.size());
    const std::vector<std::uint8_t> want_types = {PP2_TYPE_ALPN,
                                                  PP2_TYPE_AUTHORITY,
                                                  PP2_TYPE_UNIQUE_ID,
                                                  PP2_TYPE_SSL,
                                                  PP2_TYPE_XPROXY_HELO,
                                                  PP2_TYPE_XPROXY_LOGIN,
                                                  PP2_TYPE_XPROXY_SESSION_ID,
                                                  PP2_TYPE_NOOP,
                                                  PP2_TYPE_XPROXY_TIME,
                                                  PP2_TYPE_XPROXY_HMAC,
                                                  PP2_TYPE_CRC32C};
    EXPECT_EQ(tlv_types(h), want_types);
    for_each_tlv(h.tlv_bytes, [&](const TlvView& t) {
        std::string v = bytes(t.value.data(), t.value.size());
        if (t.type == PP2_TYPE_ALPN) {
            EXPECT_EQ(v, opt.alpn);
        } else if (t.type == PP2_TYPE_AUTHORITY) {
            EXPECT_EQ(v, opt.authority);
        } else if (t.type == PP2_TYPE_UNIQUE_ID) {
            EXPECT_EQ(v, opt.unique_id);
        }
    });
    SourceInfo back;
    back.ptr_name = "kept.example";
    to_source_info(h, back);
    SourceInfo want = info;
    want.ptr_name = "kept.example";
    EXPECT_EQ(back, want);
    EXPECT_EQ(hmac_key_id(h), 42);
    EXPECT_EQ(hmac_time(h), kFixtureTime);
    EXPECT_EQ(verify_hmac(u8(out), res.consumed, h, {opt.hmac_key, kFixtureTime}), HmacVerdict::ok);
}

TEST(ProxyV2, EncoderReproducesTheFixtures) {
    SourceInfo info = full_info();
    EncodeOptions opt;
    opt.xproxy_tlvs = true;
    opt.crc32c = true;
    opt.hmac_key = std::string(kFixtureKey);
    opt.hmac_key_id = 7;
    opt.hmac_time = kFixtureTime;
    EXPECT_EQ(encode_v2(info, opt), kTimed);

    info.client = ep("2001:db8::7", 40000);
    info.server = ep("2001:db8::25", 465);
    EncodeOptions ssl;
    ssl.alpn = "smtp";
    ssl.authority = "mx.example.net";
    ssl.unique_id = "id-1";
    ssl.ssl = true;
    ssl.crc32c = true;
    EXPECT_EQ(encode_v2(info, ssl), kSsl);
    // The CN is found in a longer subject DN too, in either usual form.
    for (const char* dn : {"CN=client.example,O=Example,C=FR", "C=FR, O=Example, CN=client.example",
                           "/C=FR/O=Example/CN=client.example"}) {
        info.tls.peer_subject = dn;
        EXPECT_EQ(encode_v2(info, ssl), kSsl) << dn;
    }
}

TEST(ProxyV2, EncoderLimits) {
    SourceInfo info = full_info();
    EncodeOptions opt;
    opt.unique_id = std::string(129, 'u');
    EXPECT_EQ(encode_v2(info, opt), "");
    opt.unique_id.clear();
    opt.alpn = std::string(65535 - 12 - 3, 'a');  // exactly the largest header
    EXPECT_EQ(encode_v2(info, opt).size(), kV2MaxLength);
    opt.alpn += 'a';
    EXPECT_EQ(encode_v2(info, opt), "");
    for (std::size_t pad : {std::size_t{29}, std::size_t{30}, std::size_t{31}, std::size_t{100}}) {
        EncodeOptions p;
        p.pad_to = pad;
        std::string out = encode_v2(info, p);
        EXPECT_EQ(out.size(), pad < 31 ? 31u : pad) << pad;  // a NOOP TLV is at least 3 bytes
        Header h;
        EXPECT_TRUE(run(out, h).complete());
    }
}

TEST(ProxyV2, HmacVerifiesOnlyWithTheRightKey) {
    Header h;
    DecodeResult res = run(kTimed, h);
    ASSERT_TRUE(res.complete()) << res.reason;
    EXPECT_EQ(hmac_key_id(h), 7);
    EXPECT_EQ(hmac_time(h), kFixtureTime);
    auto verify = [&](std::string_view key, std::size_t len) {
        return verify_hmac(u8(kTimed), len, h, {key, kFixtureTime});
    };
    EXPECT_EQ(verify(kFixtureKey, res.consumed), HmacVerdict::ok);
    EXPECT_EQ(verify("k3y-materiaL", res.consumed), HmacVerdict::invalid);
    EXPECT_EQ(verify("k3y-material\n", res.consumed), HmacVerdict::invalid);
    EXPECT_EQ(verify("", res.consumed), HmacVerdict::invalid);
    EXPECT_EQ(verify(kFixtureKey, res.consumed - 1), HmacVerdict::invalid);

    // The MAC matches OpenSSL's one-shot HMAC over a copy with MAC and CRC value zeroed.
    std::string zeroed = kTimed;
    const std::size_t mac_at = kTimed.size() - 7 - 32;
    zeroed.replace(mac_at, 32, std::string(32, '\0'));
    zeroed.replace(kTimed.size() - 4, 4, std::string(4, '\0'));
    unsigned char mac[32];
    unsigned mac_len = 0;
    HMAC(EVP_sha256(), kFixtureKey.data(), static_cast<int>(kFixtureKey.size()), u8(zeroed), zeroed.size(), mac,
         &mac_len);
    EXPECT_EQ(bytes(mac, mac_len), kTimed.substr(mac_at, 32));
    // And the CRC32C covers the final bytes, MAC included.
    zeroed = kTimed;
    zeroed.replace(kTimed.size() - 4, 4, std::string(4, '\0'));
    EXPECT_EQ(crc32c(u8(zeroed), zeroed.size()), 0xB9BDFE5Eu);
}

// A captured header replayed later, from wherever, fails once its signed time leaves the
// window around the receiver's clock; so does one "from the future" (a sender's clock
// ahead), and an authentic header of a sender that signs no time.
TEST(ProxyV2, HmacFreshness) {
    Header h;
    ASSERT_TRUE(run(kTimed, h).complete());
    struct Row {
        std::int64_t now, window;
        HmacVerdict want;
    };
    const std::int64_t t = kFixtureTime;
    const Row rows[] = {
        {t, 60, HmacVerdict::ok},
        {t + 60, 60, HmacVerdict::ok},       // exactly the window late
        {t + 61, 60, HmacVerdict::expired},  // a replay one second later
        {t + 86400, 60, HmacVerdict::expired},
        {t - 60, 60, HmacVerdict::ok},  // sender's clock a window ahead
        {t - 61, 60, HmacVerdict::future},
        {t + 1, 0, HmacVerdict::expired},
        {t + 1, -5, HmacVerdict::expired},  // a negative window counts as 0
        {t, 0, HmacVerdict::ok},
        {t + 3600, 3600, HmacVerdict::ok},
        {INT64_MAX, INT64_MAX, HmacVerdict::expired},  // no overflow
        {INT64_MIN, INT64_MAX, HmacVerdict::future},
        {0, kHmacWindow, HmacVerdict::future},
    };
    for (const auto& r : rows)
        EXPECT_EQ(verify_hmac(u8(kTimed), kTimed.size(), h, {kFixtureKey, r.now, r.window}), r.want)
            << r.now << " " << r.window;
    EXPECT_EQ(HmacCheck{}.window, 60);

    // Authentic but untimed (what earlier senders wrote): refused at any clock.
    ASSERT_TRUE(run(kCustom, h).complete());
    EXPECT_FALSE(hmac_time(h));
    for (std::int64_t now : {std::int64_t{0}, t, INT64_MAX})
        EXPECT_EQ(verify_hmac(u8(kCustom), kCustom.size(), h, {kFixtureKey, now}), HmacVerdict::untimed);
    // A bad MAC is reported as such whatever the time says.
    ASSERT_TRUE(run(kTimed, h).complete());
    EXPECT_EQ(verify_hmac(u8(kTimed), kTimed.size(), h, {"wrong", t + 86400}), HmacVerdict::invalid);

    // A time beyond kHmacMaxTime, authentic: never within any window.
    std::string far = kTimed;
    const std::size_t time_at = kTimed.find(std::string("\xE4\x00\x08", 3)) + 3;
    far.replace(time_at, 8, std::string(8, '\xFF'));
    far.replace(far.size() - 7 - 32, 32, std::string(32, '\0'));
    far.replace(far.size() - 4, 4, std::string(4, '\0'));
    unsigned char mac[32];
    unsigned mac_len = 0;
    HMAC(EVP_sha256(), kFixtureKey.data(), static_cast<int>(kFixtureKey.size()), u8(far), far.size(), mac, &mac_len);
    far.replace(far.size() - 7 - 32, 32, bytes(mac, mac_len));
    const std::uint32_t c = crc32c(u8(far), far.size());
    for (std::size_t i = 0; i < 4; ++i) far[far.size() - 4 + i] = static_cast<char>(c >> (24 - 8 * i));
    ASSERT_TRUE(run(far, h).complete());
    EXPECT_EQ(hmac_time(h), INT64_MAX);
    EXPECT_EQ(verify_hmac(u8(far), far.size(), h, {kFixtureKey, INT64_MAX, INT64_MAX}), HmacVerdict::future);
}

// The encoder never writes an HMAC without a time: it refuses rather than make a header
// that a receiver would have to refuse (or could be replayed for ever).
TEST(ProxyV2, EncoderRefusesHmacWithoutTime) {
    EncodeOptions opt;
    opt.hmac_key = "secret";
    EXPECT_EQ(encode_v2(full_info(), opt), "");
    opt.hmac_time = -1;
    EXPECT_EQ(encode_v2(full_info(), opt), "");
    opt.hmac_time = kHmacMaxTime + 1;
    EXPECT_EQ(encode_v2(full_info(), opt), "");
    opt.hmac_time = kHmacMaxTime;
    EXPECT_NE(encode_v2(full_info(), opt), "");
    opt.hmac_time = 0;
    EXPECT_NE(encode_v2(full_info(), opt), "");
}

TEST(ProxyV2, HmacFailsWhenAnyByteIsFlipped) {
    SourceInfo info = full_info();
    EncodeOptions no_crc;
    no_crc.xproxy_tlvs = true;
    no_crc.ssl = true;
    no_crc.hmac_key = "secret";
    no_crc.hmac_key_id = 1;
    no_crc.hmac_time = kFixtureTime;
    for (const std::string& good : {kTimed, encode_v2(info, no_crc)}) {
        const std::string key = good == kTimed ? std::string(kFixtureKey) : no_crc.hmac_key;
        Header h;
        ASSERT_TRUE(run(good, h).complete());
        ASSERT_EQ(verify_hmac(u8(good), good.size(), h, {key, kFixtureTime}), HmacVerdict::ok);
        for (std::size_t i = 0; i < good.size(); ++i) {
            for (int mask : {0x01, 0x80, 0xFF}) {
                std::string bad = good;
                bad[i] = static_cast<char>(bad[i] ^ mask);
                DecodeResult res = run(bad, h);
                EXPECT_FALSE(res.complete() &&
                             verify_hmac(u8(bad), res.consumed, h, {key, kFixtureTime}) == HmacVerdict::ok)
                    << i << " " << mask;
            }
        }
    }
}

TEST(ProxyV2, NoHmacNoVerification) {
    Header h;
    ASSERT_TRUE(run(kSsl, h).complete());
    EXPECT_FALSE(hmac_key_id(h));
    EXPECT_EQ(verify_hmac(u8(kSsl), kSsl.size(), h, {"any", 0}), HmacVerdict::absent);
    ASSERT_TRUE(run(v2(0x20, 0x00, ""), h).complete());
    EXPECT_EQ(verify_hmac(u8(kSsl), 16, h, {"any", 0}), HmacVerdict::absent);
}

TEST(ProxyV2, Crc32cCatchesEveryFlippedByte) {
    // Two flips escape the checksum by changing what it covers, and neither yields an
    // address: 0x21 -> 0x20 at byte 12 makes a LOCAL header (TLVs ignored, real endpoints
    // used), and flipping the CRC32C type byte turns the checksum into another TLV.
    const std::size_t crc_type_at = kSsl.size() - 7;
    for (std::size_t i = 0; i < kSsl.size(); ++i) {
        std::string bad = kSsl;
        bad[i] = static_cast<char>(bad[i] ^ 0x01);
        Header h;
        DecodeResult res = run(bad, h);
        if (i == 12) {
            ASSERT_TRUE(res.complete());
            EXPECT_EQ(h.command, Command::local);
            EXPECT_FALSE(h.has_addresses);
        } else if (i != crc_type_at) {
            EXPECT_FALSE(res.complete()) << i;
        }
    }
}

TEST(Crc32c, KnownVectorsOnBothImplementations) {
    struct Row {
        std::string in;
        std::uint32_t want;
    };
    std::string inc(32, '\0'), dec(32, '\0');
    for (int i = 0; i < 32; ++i) {
        inc[static_cast<std::size_t>(i)] = static_cast<char>(i);
        dec[static_cast<std::size_t>(i)] = static_cast<char>(31 - i);
    }
    const Row rows[] = {
        {"123456789", 0xE3069283},              // RFC 3720 / the usual check value
        {std::string(32, '\0'), 0x8A9136AA},    // RFC 3720 B.4: 32 bytes of zeros
        {std::string(32, '\xff'), 0x62A8AB43},  // 32 bytes of ones
        {inc, 0x46DD794E},                      // 00 01 .. 1f
        {dec, 0x113FDB5C},                      // 1f 1e .. 00
        {"", 0},
    };
    for (const auto& r : rows) {
        EXPECT_EQ(crc32c_portable(u8(r.in), r.in.size()), r.want) << r.in;
        EXPECT_EQ(crc32c(u8(r.in), r.in.size()), r.want) << r.in;
        if (crc32c_hardware_available()) {
            EXPECT_EQ(crc32c_hardware(u8(r.in), r.in.size()), r.want) << r.in;
        }
    }
}

TEST(Crc32c, ImplementationsAgreeOnAnyLengthAndAlignment) {
    std::mt19937 rng(7);
    std::string buf(4096 + 16, '\0');
    for (auto& c : buf) c = static_cast<char>(rng());
    for (std::size_t off = 0; off < 8; ++off) {
        for (std::size_t n = 0; n < 300; ++n) {
            std::uint32_t want = crc32c_portable(u8(buf) + off, n);
            if (crc32c_hardware_available()) {
                ASSERT_EQ(crc32c_hardware(u8(buf) + off, n), want) << off << " " << n;
            }
            // Continuing a CRC equals computing it in one go.
            ASSERT_EQ(crc32c(u8(buf) + off + n / 3, n - n / 3, crc32c(u8(buf) + off, n / 3)), want);
        }
    }
    std::uint32_t want = crc32c_portable(u8(buf), 4096);
    if (crc32c_hardware_available()) {
        EXPECT_EQ(crc32c_hardware(u8(buf), 4096), want);
    }
    EXPECT_TRUE(crc32c_hardware_available());  // this machine has SSE4.2: both paths ran
}

// The CRC32C TLV anywhere in headers of any length (the decoder reads its 4 bytes as zero
// in place, in three interleaved chains once the header is long enough): a header whose
// value was computed over a zeroed copy decodes, and changing any byte other than the CRC
// TLV's own makes it a mismatch.
TEST(ProxyV2, Crc32cAnywhereInAnyLength) {
    std::mt19937 rng(11);
    for (std::size_t before = 0; before < 400; before += (before < 64 ? 1 : 29)) {
        for (std::size_t after : {std::size_t{0}, std::size_t{1}, std::size_t{5}, std::size_t{70}}) {
            std::string tlvs;
            const auto noop = [&tlvs, &rng](std::size_t n) {
                if (n == 0) return;
                const std::size_t len = n < 3 ? 0 : n - 3;  // n < 3: a NOOP of 3 bytes
                tlvs += static_cast<char>(PP2_TYPE_NOOP);
                tlvs += static_cast<char>(len >> 8);
                tlvs += static_cast<char>(len & 0xFF);
                for (std::size_t i = 0; i < len; ++i) tlvs += static_cast<char>(rng());
            };
            noop(before);
            const std::size_t crc_at = 16 + 12 + tlvs.size() + 3;
            tlvs += std::string("\x03\x00\x04\x00\x00\x00\x00", 7);
            noop(after);
            std::string in(reinterpret_cast<const char*>(kV2Signature), sizeof kV2Signature);
            const std::size_t body = 12 + tlvs.size();
            in += std::string("\x21\x11", 2);
            in += static_cast<char>(body >> 8);
            in += static_cast<char>(body & 0xFF);
            in += std::string("\xCB\x00\x71\x07\xC6\x33\x64\x19\xC8\x22\x00\x19", 12);
            in += tlvs;
            const std::uint32_t c = crc32c_portable(u8(in), in.size());  // value still zero
            for (std::size_t i = 0; i < 4; ++i) in[crc_at + i] = static_cast<char>(c >> (24 - 8 * i));
            Header h;
            const DecodeResult r = decode_v2(u8(in), in.size(), h);
            ASSERT_TRUE(r.complete()) << before << " " << after << " " << r.reason;
            std::vector<std::size_t> flips = {16, 27};       // address bytes
            if (before >= 4) flips.push_back(31);            // the NOOP before the CRC TLV
            if (after >= 4) flips.push_back(in.size() - 1);  // the NOOP after it
            for (std::size_t at : flips) {
                std::string bad = in;
                bad[at] = static_cast<char>(bad[at] ^ 0x01);
                EXPECT_EQ(decode_v2(u8(bad), bad.size(), h).reason, "CRC32C mismatch")
                    << before << " " << after << " " << at;
            }
            std::string flipped = in;
            flipped[crc_at] = static_cast<char>(flipped[crc_at] ^ 0x80);
            EXPECT_EQ(decode_v2(u8(flipped), flipped.size(), h).reason, "CRC32C mismatch") << before << " " << after;
        }
    }
}

TEST(ProxyV2, ToSourceInfo) {
    SourceInfo out;
    out.helo = "stale";
    out.tls.version = "stale";
    out.protocol = "ESMTPS";
    out.time = 12345;
    Header h;
    ASSERT_TRUE(run(kSsl, h).complete());
    to_source_info(h, out);
    EXPECT_EQ(out.client->to_string(), "[2001:db8::7]:40000");
    EXPECT_EQ(out.server->to_string(), "[2001:db8::25]:465");
    EXPECT_EQ(out.tls.version, "TLSv1.3");
    EXPECT_EQ(out.tls.cipher, "TLS_AES_128_GCM_SHA256");
    EXPECT_EQ(out.tls.peer_subject, "CN=client.example");
    EXPECT_EQ(out.helo, "");  // cleared: not in this header
    EXPECT_EQ(out.protocol, "ESMTPS");
    EXPECT_EQ(out.time, 12345);

    struct Row {
        const char* name;
        std::string ssl_value;
        const char* want_version;
    };
    const Row rows[] = {
        {"PP2_CLIENT_SSL without VERSION", hex("01 00000000"), "unknown"},
        {"no PP2_CLIENT_SSL: not TLS", hex("00 00000000 210003") + "TLS", ""},
        {"empty VERSION", hex("01 00000000 210000"), "unknown"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.name);
        const std::string in = v2(0x21, 0x11, kInet + tlv(PP2_TYPE_SSL, r.ssl_value));  // h points into it
        ASSERT_TRUE(run(in, h).complete());
        to_source_info(h, out);
        EXPECT_EQ(out.tls.version, r.want_version);
    }
    const std::string line = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
    ASSERT_TRUE(decode(u8(line), line.size(), h).complete());
    to_source_info(h, out);
    EXPECT_EQ(out.client->to_string(), "1.2.3.4:1");
    EXPECT_FALSE(out.tls.active());
}

TEST(ProxyV2, DecodeAllocatesNothing) {
    const std::string inputs[] = {kCapture,
                                  kCustom,
                                  kSsl,
                                  encode_v2(full_info(), all_options()),
                                  "PROXY TCP6 2001:db8::1 ::1 51234 25\r\n",
                                  kCapture.substr(0, 9),
                                  "GARBAGE"};
    Header h;
    const long before = g_allocations.load();
    for (int i = 0; i < 100; ++i)
        for (const auto& in : inputs) decode(u8(in), in.size(), h);
    EXPECT_EQ(g_allocations.load() - before, 0);
    // The counter itself works.
    auto* p = new int(1);
    EXPECT_EQ(g_allocations.load() - before, 1);
    delete p;
}
