// https_url.hpp: an https:// URL as the HTTPS client (https_client.hpp) reads it: host,
// port and request target. Kept apart from the client (no Boost.Asio) so that the URL
// parser can be fuzzed in builds without the daemon layer's I/O.
//
// Promises: parse_https_url() accepts "https://HOST[:PORT][/PATH][?QUERY]" of at most 8 KiB:
// HOST a DNS name (letters, digits, '-', labels of 1 to 63 bytes, a final dot dropped,
// lower-cased) or an address literal ("[IPv6]" or a dotted quad); PORT 1 to 65535; no user
// info, no fragment, no space, control or non-ASCII byte in the target. Failure texts
// escape the URL. Never throws on bad input.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <xproxy/base/result.hpp>

namespace xproxy::http {

struct HttpsUrl {
    std::string host;  // a DNS name or an address literal (IPv6 without brackets)
    std::uint16_t port = 443;
    std::string target = "/";  // path and query
};
// Parses "https://HOST[:PORT][/PATH[?QUERY]]"; HOST may be "[IPv6]".
Expected<HttpsUrl> parse_https_url(std::string_view url);

// Whether `host` is an IPv4 or IPv6 address literal (without brackets).
bool is_address_literal(const std::string& host);

}  // namespace xproxy::http
