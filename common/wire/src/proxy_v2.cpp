// proxy_v2.cpp: the PROXY protocol v2 binary header, encode and incremental decode.
//
// Decode: every strict prefix of a valid header is need_more; the signature, the version,
// the command, the family/protocol byte (PROXY only) and an address block too short for
// the family are rejected as soon as their bytes arrive; the TLVs (proxy_tlv.cpp) are
// checked once the whole header is there. The no-TLV path is a few loads and stores.
// Encode: addresses, the TLVs asked for in EncodeOptions, then TIME and HMAC, then CRC32C.
#include <cstring>
#include <string>

#include "proxy_internal.hpp"
#include <xproxy/wire/proxy_protocol.hpp>

namespace xproxy::pp {

namespace {

using detail::load_be16;

constexpr std::uint8_t kVersion2 = 0x20;
constexpr std::uint8_t kCmdLocal = 0x0;
constexpr std::uint8_t kCmdProxy = 0x1;

// Bytes 13 and 14 as far as they have arrived; empty reason when acceptable.
std::string_view check_fixed(const std::uint8_t* d, std::size_t n) {
    if (n <= 12) return {};
    if ((d[12] & 0xF0) != kVersion2) return "v2 version is not 2";
    const unsigned cmd = d[12] & 0x0F;
    if (cmd > kCmdProxy) return "unknown v2 command";
    if (n <= 13 || cmd == kCmdLocal) return {};  // LOCAL: the family byte is ignored
    switch (d[13]) {
        case 0x00:
        case 0x11:
        case 0x12:
        case 0x21:
        case 0x22:
        case 0x31:
        case 0x32: return {};
        default: return "unknown v2 address family or protocol";
    }
}

// Bytes of the address block of a PROXY header with this family/protocol byte.
std::size_t address_length(std::uint8_t fam) {
    switch (fam >> 4) {
        case 0x1: return 2 * 4 + 2 * 2;
        case 0x2: return 2 * 16 + 2 * 2;
        case 0x3: return 2 * 108;
        default: return 0;
    }
}

void put_be16(std::string& out, unsigned v) {
    out += static_cast<char>((v >> 8) & 0xFF);
    out += static_cast<char>(v & 0xFF);
}

void put_address(std::string& out, const IpAddress& a) {
    out.append(reinterpret_cast<const char*>(a.data()), a.size());
}

// The CN attribute of a subject DN in either usual form ("CN=a,O=b" or "/O=b/CN=a").
std::string_view common_name(std::string_view dn) {
    while (!dn.empty()) {
        std::size_t end = dn.find_first_of(",/");
        std::string_view rdn = dn.substr(0, end);
        while (!rdn.empty() && rdn.front() == ' ') rdn.remove_prefix(1);
        if (rdn.size() > 3 && rdn.substr(0, 3) == "CN=") return rdn.substr(3);
        if (end == std::string_view::npos) break;
        dn.remove_prefix(end + 1);
    }
    return {};
}

std::string ssl_value(const TlsInfo& tls) {
    const std::string_view cn = common_name(tls.peer_subject);
    std::string v;
    std::uint8_t client = PP2_CLIENT_SSL;
    if (!tls.peer_subject.empty() || !tls.peer_fingerprint.empty()) client |= PP2_CLIENT_CERT_CONN;
    v += static_cast<char>(client);
    // verify: 0 only means "a certificate was presented and verified"; SourceInfo does
    // not record a verification result, so we never claim one.
    v.append("\0\0\0\1", 4);
    detail::append_tlv(v, PP2_SUBTYPE_SSL_VERSION, tls.version);
    if (!tls.cipher.empty()) detail::append_tlv(v, PP2_SUBTYPE_SSL_CIPHER, tls.cipher);
    if (!cn.empty()) detail::append_tlv(v, PP2_SUBTYPE_SSL_CN, cn);
    return v;
}

}  // namespace

DecodeResult decode_v2(const std::uint8_t* data, std::size_t size, Header& out) {
    detail::reset_header(out, 2);
    // A constant-size compare is inlined; only a short prefix takes the variable one.
    const bool sig_ok = size >= sizeof kV2Signature ? std::memcmp(data, kV2Signature, sizeof kV2Signature) == 0
                                                    : std::memcmp(data, kV2Signature, size) == 0;
    if (!sig_ok) return DecodeResult::bad("bad v2 signature");
    if (std::string_view why = check_fixed(data, size); !why.empty()) return DecodeResult::bad(why);
    if (size < kV2HeaderLength) return DecodeResult::more();

    const std::size_t body = load_be16(data + 14);
    const std::size_t total = kV2HeaderLength + body;
    if ((data[12] & 0x0F) == kCmdLocal) {
        out.command = Command::local;
        return size < total ? DecodeResult::more() : DecodeResult::done(total);
    }
    const std::uint8_t fam = data[13];
    const std::size_t addr_len = address_length(fam);
    if (body < addr_len) return DecodeResult::bad("v2 address block shorter than the family needs");
    if (size < total) return DecodeResult::more();

    out.command = Command::proxy;
    out.family = static_cast<Family>(fam >> 4);
    out.transport = static_cast<Transport>(fam & 0x0F);
    const std::uint8_t* a = data + kV2HeaderLength;
    switch (fam >> 4) {
        case 0x0: return DecodeResult::done(total);  // UNSPEC: skip everything
        case 0x1:
            detail::set_v4(out.source.addr, a);
            detail::set_v4(out.destination.addr, a + 4);
            out.source.port = load_be16(a + 8);
            out.destination.port = load_be16(a + 10);
            out.has_addresses = true;
            break;
        case 0x2:
            detail::set_v6(out.source.addr, a);
            detail::set_v6(out.destination.addr, a + 16);
            out.source.port = load_be16(a + 32);
            out.destination.port = load_be16(a + 34);
            out.has_addresses = true;
            break;
        default:
            out.unix_source = {a, 108};
            out.unix_destination = {a + 108, 108};
            break;
    }
    if (addr_len < body) {
        const std::size_t tlv_off = kV2HeaderLength + addr_len;
        if (std::string_view why = detail::validate_tlvs(data, total, tlv_off); !why.empty())
            return DecodeResult::bad(why);
        out.tlv_bytes = {data + tlv_off, total - tlv_off};
    }
    return DecodeResult::done(total);
}

std::string encode_v2(const SourceInfo& info, const EncodeOptions& opt) {
    constexpr std::size_t kUniqueIdMax = 128;
    if (opt.unique_id.size() > kUniqueIdMax) return {};
    std::string out(reinterpret_cast<const char*>(kV2Signature), sizeof kV2Signature);
    if (opt.local || !info.client || !info.server) {
        out += static_cast<char>(kVersion2 | (opt.local ? kCmdLocal : kCmdProxy));
        out.append("\0\0\0", 3);  // UNSPEC, length 0
        return out;
    }
    const bool v4 = info.client->addr.is_v4() && info.server->addr.is_v4();
    out += static_cast<char>(kVersion2 | kCmdProxy);
    out += static_cast<char>(v4 ? 0x11 : 0x21);
    out.append("\0\0", 2);  // length, patched below
    put_address(out, v4 ? info.client->addr : info.client->addr.to_v4_mapped());
    put_address(out, v4 ? info.server->addr : info.server->addr.to_v4_mapped());
    put_be16(out, info.client->port);
    put_be16(out, info.server->port);

    if (!opt.alpn.empty()) detail::append_tlv(out, PP2_TYPE_ALPN, opt.alpn);
    if (!opt.authority.empty()) detail::append_tlv(out, PP2_TYPE_AUTHORITY, opt.authority);
    if (!opt.unique_id.empty()) detail::append_tlv(out, PP2_TYPE_UNIQUE_ID, opt.unique_id);
    if (opt.ssl && info.tls.active()) detail::append_tlv(out, PP2_TYPE_SSL, ssl_value(info.tls));
    if (opt.xproxy_tlvs) {
        if (!info.helo.empty()) detail::append_tlv(out, PP2_TYPE_XPROXY_HELO, info.helo);
        if (!info.login.empty()) detail::append_tlv(out, PP2_TYPE_XPROXY_LOGIN, info.login);
        if (!info.session_id.empty()) detail::append_tlv(out, PP2_TYPE_XPROXY_SESSION_ID, info.session_id);
    }
    const bool hmac = !opt.hmac_key.empty();
    if (hmac && (!opt.hmac_time || *opt.hmac_time < 0 || *opt.hmac_time > kHmacMaxTime)) return {};
    const std::size_t tail = (hmac ? 3 + detail::kTimeValueLength + 3 + detail::kHmacValueLength : 0) +
                             (opt.crc32c ? 3 + 4 : 0);
    if (opt.pad_to > out.size() + tail) {
        const std::size_t gap = opt.pad_to - out.size() - tail;
        detail::append_tlv(out, PP2_TYPE_NOOP, std::string(gap > 3 ? gap - 3 : 0, '\0'));
    }
    detail::TlvLayout layout;
    if (hmac) {
        const auto t = static_cast<std::uint64_t>(*opt.hmac_time);
        char time[detail::kTimeValueLength];
        for (std::size_t i = 0; i < sizeof time; ++i) time[i] = static_cast<char>((t >> (56 - 8 * i)) & 0xFF);
        detail::append_tlv(out, PP2_TYPE_XPROXY_TIME, std::string_view(time, sizeof time));
        layout.hmac_value = out.size() + 3;
        std::string value(detail::kHmacValueLength, '\0');
        value[0] = static_cast<char>(opt.hmac_key_id);
        detail::append_tlv(out, PP2_TYPE_XPROXY_HMAC, value);
    }
    if (opt.crc32c) {
        layout.crc_value = out.size() + 3;
        detail::append_tlv(out, PP2_TYPE_CRC32C, std::string_view("\0\0\0\0", 4));
    }
    if (out.size() > kV2MaxLength) return {};
    const std::size_t body = out.size() - kV2HeaderLength;
    out[14] = static_cast<char>(body >> 8);
    out[15] = static_cast<char>(body & 0xFF);

    auto* bytes = reinterpret_cast<std::uint8_t*>(out.data());
    if (hmac) {  // first, with the CRC32C value still zero
        if (!detail::header_hmac(bytes, out.size(), layout, opt.hmac_key, bytes + layout.hmac_value + 1)) return {};
    }
    if (opt.crc32c) {  // last, over the final bytes
        const std::uint32_t c = detail::header_crc(bytes, out.size(), layout.crc_value);
        for (int i = 0; i < 4; ++i)
            bytes[layout.crc_value + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(c >> (24 - 8 * i));
    }
    return out;
}

}  // namespace xproxy::pp
