// jwks_source.cpp: see jwks_source.hpp.
#include "jwks_source.hpp"

#include <xproxy/base/escape.hpp>
#include <xproxy/daemon/https_client.hpp>
#include <xproxy/jose/discovery.hpp>

namespace xproxy::depositd {

namespace asio = boost::asio;

namespace {

constexpr std::string_view kWellKnown = "/.well-known/openid-configuration";

// One GET of `url`: the body of a 200 answer of at most max_bytes.
asio::awaitable<Expected<std::string>> get_document(asio::any_io_executor ex, const std::string& url,
                                                    const std::string& ca_file, std::chrono::milliseconds timeout,
                                                    std::size_t max_bytes, std::string_view what) {
    http::HttpsRequest request;
    request.url = url;
    request.ca_file = ca_file;
    request.timeout = timeout;
    request.max_body_bytes = max_bytes;
    request.headers.emplace_back("Accept", "application/json");
    auto response = co_await http::https_request(ex, std::move(request));
    if (!response) co_return Failure{std::string(what) + " " + escape_value(url) + ": " + response.error()};
    if (response->status != 200)
        co_return Failure{std::string(what) + " " + escape_value(url) + ": HTTP status " +
                          std::to_string(response->status)};
    co_return std::move(response->body);
}

}  // namespace

Expected<std::string> default_discovery_url(std::string_view issuer) {
    if (issuer.substr(0, 8) != "https://")
        return Failure{"issuer " + escape_value(issuer) + " is not an https:// URL (needed for discovery)"};
    if (issuer.find_first_of("?#") != std::string_view::npos)
        return Failure{"issuer " + escape_value(issuer) + " has a query or fragment"};
    std::string_view base = issuer;
    if (base.size() > 8 && base.back() == '/') base.remove_suffix(1);
    return std::string(base) + std::string(kWellKnown);
}

Expected<jose::Jwks> load_jwks_file(const std::string& path) {
    return load_and_parse(path, kJwksFileRules, [](std::string_view text) { return jose::Jwks::parse(text); });
}

asio::awaitable<Expected<jose::Jwks>> fetch_jwks(asio::any_io_executor ex, DiscoverySettings settings) {
    auto document = co_await get_document(ex, settings.discovery_url, settings.ca_file, settings.timeout,
                                          jose::kMaxDiscoveryBytes, "discovery document");
    if (!document) co_return Failure{document.error()};
    auto discovery = jose::parse_discovery(*document, settings.issuer);
    if (!discovery)
        co_return Failure{"discovery document " + escape_value(settings.discovery_url) + ": " + discovery.error()};
    auto set = co_await get_document(ex, discovery->jwks_uri, settings.ca_file, settings.timeout, jose::kMaxJwksBytes,
                                     "JWK set");
    if (!set) co_return Failure{set.error()};
    auto keys = jose::Jwks::parse(*set);
    if (!keys) co_return Failure{"JWK set " + escape_value(discovery->jwks_uri) + ": " + keys.error()};
    co_return std::move(*keys);
}

}  // namespace xproxy::depositd
