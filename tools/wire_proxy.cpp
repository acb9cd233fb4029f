// wire_proxy.cpp: xproxy-wire proxy-decode / proxy-encode, the PROXY protocol v1/v2 codec
// of libxproxy from the command line.
//
//   proxy-decode [--hmac-key-file F [--hmac-window S] [--now T]]
//                                      raw bytes on stdin -> key=value lines on stdout
//   proxy-encode --version 1|2 --source IP:PORT --destination IP:PORT [TLV options]
//                                      -> the raw header on stdout
// Exit status: 0 ok; 1 input rejected, incomplete, or HMAC not valid; 2 usage or key file
// error. Key files hold the key (one trailing newline is dropped) and are refused when
// group or others may read or write them. Untrusted bytes are printed escaped (\xHH).
#include <openssl/crypto.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wire_command.hpp"
#include <xproxy/base/secret_file.hpp>
#include <xproxy/base/text.hpp>
#include <xproxy/wire/proxy_protocol.hpp>

namespace {

using namespace xproxy;
using namespace xproxy::pp;

int usage_error(const std::string& msg) {
    std::fprintf(stderr, "xproxy-wire: %s\n", msg.c_str());
    return 2;
}

// Reads a key file into key (the daemons' rules, xproxy/secret_file.hpp); an error
// message (exit status 2) on failure.
std::optional<std::string> read_key_file(std::string_view path, SecretBytes& key) {
    auto read = read_secret_file(std::string(path), 1);
    if (!read) return "key file: " + read.error();
    key = std::move(*read);
    return std::nullopt;
}

std::string escape(std::span<const std::uint8_t> v) {
    std::string out;
    for (std::uint8_t c : v) {
        if (c >= 0x20 && c < 0x7F && c != '\\') {
            out += static_cast<char>(c);
        } else {
            char hex[5];
            std::snprintf(hex, sizeof hex, "\\x%02x", c);
            out += hex;
        }
    }
    return out;
}

const char* family_name(Family f) {
    switch (f) {
        case Family::inet: return "INET";
        case Family::inet6: return "INET6";
        case Family::unix_: return "UNIX";
        case Family::unspec: break;
    }
    return "UNSPEC";
}

const char* transport_name(Transport t) {
    switch (t) {
        case Transport::stream: return "STREAM";
        case Transport::dgram: return "DGRAM";
        case Transport::unspec: break;
    }
    return "UNSPEC";
}

// A UNIX socket path: the bytes up to the first NUL.
std::span<const std::uint8_t> unix_path(std::span<const std::uint8_t> a) {
    std::size_t n = 0;
    while (n < a.size() && a[n] != 0) ++n;
    return a.first(n);
}

// Decimal seconds, possibly negative (a clock given on the command line).
std::optional<std::int64_t> parse_seconds(std::string_view s) {
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

int proxy_decode(const std::vector<std::string_view>& args) {
    SecretBytes key;
    bool check_hmac = false;
    HmacCheck hmac_check;
    hmac_check.now = static_cast<std::int64_t>(std::time(nullptr));
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--hmac-key-file" && i + 1 < args.size()) {
            if (auto err = read_key_file(args[++i], key)) return usage_error(*err);
            check_hmac = true;
        } else if ((args[i] == "--now" || args[i] == "--hmac-window") && i + 1 < args.size()) {
            const std::string_view name = args[i];
            const auto v = parse_seconds(args[++i]);
            if (!v || (name == "--hmac-window" && *v < 0))
                return usage_error("proxy-decode: " + std::string(name) + " needs seconds");
            (name == "--now" ? hmac_check.now : hmac_check.window) = *v;
        } else {
            return usage_error("proxy-decode: unknown argument '" + std::string(args[i]) + "'");
        }
    }
    std::vector<std::uint8_t> in;
    std::uint8_t buf[65536];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, stdin)) in.insert(in.end(), buf, buf + n);

    Header h;
    DecodeResult res = decode(in.data(), in.size(), h);
    if (res.need_more()) {
        std::printf("error=incomplete header\n");
        return 1;
    }
    if (res.invalid()) {
        std::printf("error=%.*s\n", static_cast<int>(res.reason.size()), res.reason.data());
        return 1;
    }
    std::printf("version=%d\n", h.version);
    std::printf("command=%s\n", h.command == Command::local ? "LOCAL" : "PROXY");
    std::printf("family=%s\n", family_name(h.family));
    std::printf("transport=%s\n", transport_name(h.transport));
    if (h.has_addresses) {
        std::printf("source=%s\n", h.source.addr.to_string().c_str());
        std::printf("source_port=%u\n", unsigned{h.source.port});
        std::printf("destination=%s\n", h.destination.addr.to_string().c_str());
        std::printf("destination_port=%u\n", unsigned{h.destination.port});
    }
    if (h.family == Family::unix_ && h.command == Command::proxy) {
        std::printf("source_path=%s\n", escape(unix_path(h.unix_source)).c_str());
        std::printf("destination_path=%s\n", escape(unix_path(h.unix_destination)).c_str());
    }
    std::printf("length=%zu\n", res.consumed);
    for_each_tlv(h.tlv_bytes, [](const TlvView& t) {
        std::printf("tlv=0x%02X:%zu\n", unsigned{t.type}, t.value.size());
        const char* name = nullptr;
        switch (t.type) {
            case PP2_TYPE_ALPN: name = "alpn"; break;
            case PP2_TYPE_AUTHORITY: name = "authority"; break;
            case PP2_TYPE_UNIQUE_ID: name = "unique_id"; break;
            case PP2_TYPE_XPROXY_HELO: name = "helo"; break;
            case PP2_TYPE_XPROXY_LOGIN: name = "login"; break;
            case PP2_TYPE_XPROXY_SESSION_ID: name = "session_id"; break;
            default: break;
        }
        if (name) std::printf("%s=%s\n", name, escape(t.value).c_str());
    });
    SourceInfo info;
    to_source_info(h, info);
    if (info.tls.active()) {
        auto text = [](const std::string& s) {
            return escape({reinterpret_cast<const std::uint8_t*>(s.data()), s.size()});
        };
        std::printf("tls_version=%s\n", text(info.tls.version).c_str());
        if (!info.tls.cipher.empty()) std::printf("tls_cipher=%s\n", text(info.tls.cipher).c_str());
        if (!info.tls.peer_subject.empty()) std::printf("tls_subject=%s\n", text(info.tls.peer_subject).c_str());
    }
    const std::optional<std::uint8_t> kid = hmac_key_id(h);
    if (kid) std::printf("hmac_key_id=%u\n", unsigned{*kid});
    if (const auto t = hmac_time(h)) std::printf("hmac_time=%lld\n", static_cast<long long>(*t));
    if (!check_hmac) return 0;
    hmac_check.key = key.view();
    const HmacVerdict v = verify_hmac(in.data(), res.consumed, h, hmac_check);
    std::printf("hmac=%s\n", v == HmacVerdict::ok ? "valid" : to_string(v));
    return v == HmacVerdict::ok ? 0 : 1;
}

std::optional<unsigned> parse_number(std::string_view s, unsigned max) { return parse_decimal<unsigned>(s, max); }

// "1.2.3.4:25" or "[2001:db8::1]:25".
std::optional<Endpoint> parse_endpoint(std::string_view s) {
    std::string_view addr, port;
    if (!s.empty() && s.front() == '[') {
        std::size_t close = s.find("]:");
        if (close == std::string_view::npos) return std::nullopt;
        addr = s.substr(1, close - 1);
        port = s.substr(close + 2);
    } else {
        std::size_t colon = s.find(':');
        if (colon == std::string_view::npos || s.find(':', colon + 1) != std::string_view::npos) return std::nullopt;
        addr = s.substr(0, colon);
        port = s.substr(colon + 1);
    }
    auto a = IpAddress::parse(addr);
    auto p = parse_number(port, 65535);
    if (!a || !p) return std::nullopt;
    return Endpoint{*a, static_cast<std::uint16_t>(*p)};
}

int proxy_encode(const std::vector<std::string_view>& args) {
    unsigned version = 2;
    SourceInfo info;
    EncodeOptions opt;
    SecretBytes key;
    std::optional<unsigned> key_id;
    bool has_key = false, v2_only = false;
    std::string tls_cn;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string_view a = args[i];
        if (a == "--crc32c") {
            opt.crc32c = v2_only = true;
            continue;
        }
        if (a == "--local") {
            opt.local = v2_only = true;
            continue;
        }
        if (i + 1 >= args.size()) return usage_error("proxy-encode: " + std::string(a) + " needs a value");
        const std::string_view v = args[++i];
        auto text = [&](std::string& field) {
            field = std::string(v);
            v2_only = true;
        };
        if (a == "--version") {
            auto n = parse_number(v, 2);
            if (!n || *n < 1) return usage_error("proxy-encode: --version must be 1 or 2");
            version = *n;
        } else if (a == "--source" || a == "--destination") {
            auto e = parse_endpoint(v);
            if (!e) return usage_error("proxy-encode: bad endpoint '" + std::string(v) + "' (IP:PORT or [IPv6]:PORT)");
            (a == "--source" ? info.client : info.server) = *e;
        } else if (a == "--helo") {
            text(info.helo);
        } else if (a == "--login") {
            text(info.login);
        } else if (a == "--session-id") {
            text(info.session_id);
        } else if (a == "--unique-id") {
            text(opt.unique_id);
        } else if (a == "--alpn") {
            text(opt.alpn);
        } else if (a == "--authority") {
            text(opt.authority);
        } else if (a == "--tls-version") {
            text(info.tls.version);
        } else if (a == "--tls-cipher") {
            text(info.tls.cipher);
        } else if (a == "--tls-cn") {
            text(tls_cn);
        } else if (a == "--pad-to") {
            auto n = parse_number(v, static_cast<unsigned>(kV2MaxLength));
            if (!n) return usage_error("proxy-encode: bad --pad-to");
            opt.pad_to = *n;
            v2_only = true;
        } else if (a == "--hmac-key-file") {
            if (auto err = read_key_file(v, key)) return usage_error(*err);
            has_key = v2_only = true;
        } else if (a == "--hmac-time") {
            const auto t = parse_seconds(v);
            if (!t || *t < 0 || *t > kHmacMaxTime) return usage_error("proxy-encode: --hmac-time must be unix seconds");
            opt.hmac_time = *t;
        } else if (a == "--hmac-key-id") {
            key_id = parse_number(v, 255);
            if (!key_id) return usage_error("proxy-encode: --hmac-key-id must be 0..255");
        } else {
            return usage_error("proxy-encode: unknown argument '" + std::string(a) + "'");
        }
    }
    if (has_key != key_id.has_value())
        return usage_error("proxy-encode: --hmac-key-file and --hmac-key-id go together");
    if (version == 1 && v2_only) return usage_error("proxy-encode: TLV options and --local need --version 2");
    if (!opt.local && (!info.client || !info.server))
        return usage_error("proxy-encode: --source and --destination are required");
    if (opt.unique_id.size() > 128) return usage_error("proxy-encode: --unique-id is longer than 128 bytes");
    if (!tls_cn.empty()) info.tls.peer_subject = "CN=" + tls_cn;
    if ((!info.tls.cipher.empty() || !tls_cn.empty()) && info.tls.version.empty())
        return usage_error("proxy-encode: --tls-cipher and --tls-cn need --tls-version");
    opt.ssl = info.tls.active();
    opt.xproxy_tlvs = true;
    if (opt.hmac_time && !has_key) return usage_error("proxy-encode: --hmac-time needs --hmac-key-file");
    if (has_key) {
        if (!opt.hmac_time) opt.hmac_time = static_cast<std::int64_t>(std::time(nullptr));
        opt.hmac_key = key.view();
        opt.hmac_key_id = static_cast<std::uint8_t>(*key_id);
    }
    const std::string out = version == 1 ? encode_v1(info.client, info.server) : encode_v2(info, opt);
    OPENSSL_cleanse(opt.hmac_key.data(), opt.hmac_key.size());
    if (out.empty()) return usage_error("proxy-encode: the header would be longer than 65551 bytes");
    if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size() || std::fflush(stdout) != 0) {
        std::fprintf(stderr, "xproxy-wire: proxy-encode: write error\n");
        return 1;
    }
    return 0;
}

const xproxy::wire::Registrar decode_cmd(
    {"proxy-decode",
     "proxy-decode [--hmac-key-file F [--hmac-window S] [--now T]] - decode a PROXY v1/v2 header from stdin",
     proxy_decode});
const xproxy::wire::Registrar encode_cmd(
    {"proxy-encode",
     "proxy-encode --version 1|2 --source IP:PORT --destination IP:PORT [--helo H] [--login L] [--session-id S] "
     "[--unique-id U] [--alpn A] [--authority A] [--tls-version V [--tls-cipher C] [--tls-cn CN]] [--pad-to N] "
     "[--crc32c] [--hmac-key-file F --hmac-key-id N [--hmac-time T]] [--local] - write a PROXY header to stdout",
     proxy_encode});

}  // namespace
