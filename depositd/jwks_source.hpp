// jwks_source.hpp: where the deposit daemon's identity-provider keys come from: one
// load of a JWK Set, from a file or through the issuer's OpenID Connect discovery
// document over HTTPS (doc/deposit.md, "Tokens"). The verifier (token_verifier.hpp)
// decides when to load and what to keep.
//
// Promises:
// - default_discovery_url() follows OpenID Connect Discovery 1.0 section 4: the issuer
//   (an https:// URL without query or fragment) without its terminating "/", then
//   "/.well-known/openid-configuration".
// - load_jwks_file() reads through base's file loader: a regular file of at most
//   jose::kMaxJwksBytes, not writable by others (mode bit 0002), owned by root or the
//   daemon's user (whoever may write the file may sign in as anyone); the set as
//   jose::Jwks::parse() accepts it. Errors name the file.
// - fetch_jwks() GETs the discovery document, accepts only status 200 and a document
//   jose::parse_discovery() accepts for the configured issuer (exactly; section 4.3),
//   then GETs its jwks_uri (status 200, jose::Jwks::parse()). Both requests verify the
//   server's certificate (ca_file or the system store) and name, each has `timeout`, and
//   a body over the jose limits (256 KiB, 1 MiB) is a failure. Redirects are not
//   followed. Errors name the URL and what failed. Never throws.
#pragma once

#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <string>
#include <string_view>

#include <xproxy/base/file_loader.hpp>
#include <xproxy/base/result.hpp>
#include <xproxy/jose/jwks.hpp>

namespace xproxy::depositd {

// The rules a JWK Set file is read with (see above).
inline constexpr FileRules kJwksFileRules{jose::kMaxJwksBytes, 0002, true, true};

Expected<std::string> default_discovery_url(std::string_view issuer);

Expected<jose::Jwks> load_jwks_file(const std::string& path);

struct DiscoverySettings {
    std::string discovery_url;  // https://.../.well-known/openid-configuration
    std::string issuer;         // the discovery document's "issuer" must be exactly this
    std::string ca_file;        // "" = the system's store
    std::chrono::milliseconds timeout{10000};
};

boost::asio::awaitable<Expected<jose::Jwks>> fetch_jwks(boost::asio::any_io_executor ex, DiscoverySettings settings);

}  // namespace xproxy::depositd
