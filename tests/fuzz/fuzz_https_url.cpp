// fuzz_https_url: parse_https_url (https_url.hpp) on arbitrary bytes: never crashes nor
// throws; a URL that parses has a host, a port other than 0 and a target that starts with
// "/" and holds no space, control or non-ASCII byte (it goes into a request line), and
// rebuilding the URL from its parts parses to the same parts.
#include <cstdint>
#include <string>
#include <string_view>

#include <xproxy/daemon/https_url.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    auto url = xproxy::http::parse_https_url(in);
    if (!url) return 0;
    if (url->host.empty() || url->port == 0 || url->target.empty() || url->target.front() != '/') __builtin_trap();
    for (char c : url->target) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f) __builtin_trap();
    }
    const std::string host = url->host.find(':') != std::string::npos ? "[" + url->host + "]" : url->host;
    auto again = xproxy::http::parse_https_url("https://" + host + ":" + std::to_string(url->port) + url->target);
    if (!again || again->host != url->host || again->port != url->port || again->target != url->target)
        __builtin_trap();
    return 0;
}
