// discovery.cpp: see discovery.hpp.
#include <xproxy/jose/discovery.hpp>

#include <algorithm>

#include <xproxy/base/escape.hpp>
#include <xproxy/base/text.hpp>

#include "json_input.hpp"

namespace xproxy::jose {

Expected<Discovery> parse_discovery(std::string_view json, std::string_view expected_issuer) {
    if (json.size() > kMaxDiscoveryBytes) return Failure{"discovery document larger than 256 KiB"};
    auto doc = detail::parse_json_object(json, 8);
    if (!doc) return Failure{"discovery document is not a JSON object (strict JSON, no member named twice)"};
    const std::string* issuer = detail::string_member(*doc, "issuer");
    if (issuer == nullptr) return Failure{"discovery document has no \"issuer\""};
    if (*issuer != expected_issuer)
        return Failure{"discovery document is for issuer " + escape_value(*issuer, 128) + ", not " +
                       escape_value(expected_issuer, 128)};
    const std::string* uri = detail::string_member(*doc, "jwks_uri");
    if (uri == nullptr) return Failure{"discovery document has no \"jwks_uri\""};
    const bool printable = std::all_of(uri->begin(), uri->end(), [](char c) { return c > 0x20 && c < 0x7f; });
    if (!printable || uri->size() <= 8 || uri->size() > 2048 || !istarts_with(*uri, "https://"))
        return Failure{"jwks_uri " + escape_value(*uri, 128) + " is not an https:// URL"};
    return Discovery{*issuer, *uri};
}

}  // namespace xproxy::jose
