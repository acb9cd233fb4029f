// token_verifier.hpp: the identity behind an "Authorization: Bearer" token, verified
// offline against the identity provider's keys (doc/deposit.md, "Tokens").
//
// Keys come from a JWK Set file (read at start and on reload()) or from the issuer's
// OpenID Connect discovery document over HTTPS (ISSUER/.well-known/openid-configuration,
// then its jwks_uri; the TLS peer verified by name). Fetched keys are kept and refreshed
// every refresh_period; a token whose kid is unknown triggers one refresh, at most once
// per refresh_min_interval (concurrent requests share the refresh in flight); a token
// still unknown after that is refused (unknown_kid). A failed refresh keeps the keys in
// hand. Tokens are checked by jose::validate_jwt() (signature with the key's bound
// algorithm, iss, aud, exp, nbf, iat, identity claim, email_verified).
//
// Promises: verify() never throws on any token; every refusal names one jose::Refusal
// (or `unavailable` when no key set has ever been loaded); nothing of the token reaches a
// log line unescaped; a token is never logged whole. All members run on the io_context
// given to create() (one strand: call from coroutines of that io_context).
#pragma once

#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <xproxy/base/result.hpp>
#include <xproxy/jose/jwt.hpp>
#include <xproxy/jose/refusal.hpp>

namespace xproxy::depositd {

struct TokenConfig {
    jose::JwtPolicy policy;                // issuer, audience, skew, identity claim
    std::string jwks_file;                 // a JWK Set file; or
    std::string discovery_url;             // https://... (default: ISSUER/.well-known/openid-configuration)
    bool use_discovery = false;            // keys from the issuer's discovery document
    std::string ca_file;                   // trust anchors for the HTTPS fetches ("" = system store)
    std::chrono::seconds refresh_period{3600};
    std::chrono::seconds refresh_min_interval{60};
    std::chrono::seconds fetch_timeout{10};
};

struct TokenOutcome {
    std::optional<jose::JwtIdentity> identity;  // set when accepted
    std::optional<jose::Refusal> refusal;       // set when refused for a reason of the token
    bool unavailable = false;                   // no key set loaded yet: 503, not 401
    std::string detail;                         // for the log (escaped), never the token
};

class TokenVerifier {
public:
    // Checks the configuration (file readable, URL https://); loads nothing yet.
    static Expected<std::unique_ptr<TokenVerifier>> create(boost::asio::io_context& io, TokenConfig config);
    virtual ~TokenVerifier() = default;

    // Loads the keys once (file or discovery); the daemon calls it before serving and
    // fails start-up when it fails for a file (a fetch failure is retried in the background).
    virtual boost::asio::awaitable<Expected<void>> start() = 0;
    // The identity `token` (the bearer value, without "Bearer ") proves, at time `now`.
    virtual boost::asio::awaitable<TokenOutcome> verify(std::string token, std::int64_t now) = 0;
    // Re-reads the file / re-fetches now (SIGHUP).
    virtual boost::asio::awaitable<Expected<void>> reload() = 0;
    virtual void stop() = 0;

    // For metrics and tests: key-set fetches (file reads or HTTPS) done, and failed.
    virtual std::uint64_t key_loads() const = 0;
    virtual std::uint64_t key_load_failures() const = 0;
};

}  // namespace xproxy::depositd
