// token_audience.cpp: see token_audience.hpp.
#include "token_audience.hpp"

#include <nlohmann/json.hpp>

#include <xproxy/base/text.hpp>
#include <xproxy/jose/base64url.hpp>
#include <xproxy/jose/jws.hpp>

namespace xproxy::deposit {

Expected<std::vector<std::string>> token_audiences(std::string_view token) {
    if (token.size() > jose::kMaxTokenBytes)
        return Failure{"the token is longer than " + std::to_string(jose::kMaxTokenBytes) + " bytes"};
    const auto first = token.find('.');
    const auto second = first == std::string_view::npos ? first : token.find('.', first + 1);
    if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos)
        return Failure{"the token is not a JWT (three parts separated by dots)"};
    auto payload = jose::base64url_decode(token.substr(first + 1, second - first - 1));
    if (!payload) return Failure{"the token's payload is not base64url"};
    auto claims = nlohmann::json::parse(*payload, nullptr, false);
    if (!claims.is_object()) return Failure{"the token's payload is not a JSON object"};
    auto aud = claims.find("aud");
    if (aud == claims.end()) return Failure{"the token has no \"aud\" claim"};
    std::vector<std::string> out;
    if (aud->is_string()) {
        out.push_back(aud->get<std::string>());
    } else if (aud->is_array() && !aud->empty()) {
        for (const auto& a : *aud) {
            if (!a.is_string()) return Failure{"the token's \"aud\" array holds a value that is not a string"};
            out.push_back(a.get<std::string>());
        }
    } else {
        return Failure{"the token's \"aud\" is neither a string nor a non-empty array of strings"};
    }
    return out;
}

std::string endpoint_audience(const http::HttpsUrl& endpoint) {
    const std::string host = endpoint.host.find(':') != std::string::npos ? "[" + endpoint.host + "]" : endpoint.host;
    return "https://" + host + (endpoint.port == 443 ? "" : ":" + std::to_string(endpoint.port));
}

bool audience_names_endpoint(std::string_view audience, const http::HttpsUrl& endpoint) {
    auto url = http::parse_https_url(audience);  // refuses user info; lowercases a name, drops its final dot
    return url && iequals(url->host, endpoint.host) && url->port == endpoint.port;
}

}  // namespace xproxy::deposit
