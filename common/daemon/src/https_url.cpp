// https_url.cpp: see https_url.hpp.
#include <xproxy/daemon/https_url.hpp>

#include <arpa/inet.h>

#include <xproxy/base/escape.hpp>
#include <xproxy/base/text.hpp>

namespace xproxy::http {

namespace {

constexpr std::size_t kMaxUrlBytes = 8192;

bool host_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || ascii_digit(c) || c == '-' || c == '.';
}

// A DNS name: labels of letters, digits and '-', none empty, at most 253 bytes.
bool valid_dns_name(std::string_view name) {
    if (name.empty() || name.size() > 253) return false;
    std::size_t label = 0;
    for (char c : name) {
        if (!host_char(c)) return false;
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
        } else if (++label > 63) {
            return false;
        }
    }
    return label != 0;
}

bool is_ipv4_literal(const std::string& host) {
    in_addr a{};
    return inet_pton(AF_INET, host.c_str(), &a) == 1;
}

bool is_ipv6_literal(const std::string& host) {
    in6_addr a{};
    return inet_pton(AF_INET6, host.c_str(), &a) == 1;
}

}  // namespace

bool is_address_literal(const std::string& host) { return is_ipv4_literal(host) || is_ipv6_literal(host); }

Expected<HttpsUrl> parse_https_url(std::string_view url) {
    constexpr std::string_view scheme = "https://";
    if (url.size() > kMaxUrlBytes) return Failure{"URL longer than " + std::to_string(kMaxUrlBytes) + " bytes"};
    if (!istarts_with(url, scheme)) return Failure{"not an https:// URL: " + escape(url)};
    std::string_view rest = url.substr(scheme.size());
    const auto end_of_authority = rest.find_first_of("/?#");
    std::string_view auth = rest.substr(0, end_of_authority);
    std::string_view target = end_of_authority == std::string_view::npos ? "" : rest.substr(end_of_authority);
    if (auth.find('@') != std::string_view::npos) return Failure{"URL with user info: " + escape(url)};
    HttpsUrl out;
    std::string_view port;
    if (!auth.empty() && auth.front() == '[') {
        const auto close = auth.find(']');
        if (close == std::string_view::npos) return Failure{"URL with an unclosed [ in the host: " + escape(url)};
        out.host = std::string(auth.substr(1, close - 1));
        if (!is_ipv6_literal(out.host)) return Failure{"URL with a bad IPv6 address: " + escape(url)};
        auto after = auth.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') return Failure{"URL with a bad host: " + escape(url)};
            port = after.substr(1);
            if (port.empty()) return Failure{"URL with an empty port: " + escape(url)};
        }
    } else {
        const auto colon = auth.find(':');
        out.host = std::string(auth.substr(0, colon));
        if (colon != std::string_view::npos) {
            port = auth.substr(colon + 1);
            if (port.empty()) return Failure{"URL with an empty port: " + escape(url)};
        }
        if (!out.host.empty() && out.host.back() == '.') out.host.pop_back();  // a fully qualified name
        if (!valid_dns_name(out.host)) return Failure{"URL with a bad host name: " + escape(url)};
        out.host = to_lower(out.host);
    }
    if (!port.empty()) {
        auto n = parse_decimal<std::uint16_t>(port);
        if (!n || *n == 0) return Failure{"URL with a bad port: " + escape(url)};
        out.port = *n;
    }
    if (target.find('#') != std::string_view::npos) return Failure{"URL with a fragment: " + escape(url)};
    for (char c : target) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f) return Failure{"URL with a space, control or non-ASCII byte: " + escape(url)};
    }
    if (target.empty()) out.target = "/";
    else if (target.front() == '?') out.target = "/" + std::string(target);
    else out.target = std::string(target);
    return out;
}

}  // namespace xproxy::http
