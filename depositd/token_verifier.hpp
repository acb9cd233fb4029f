// token_verifier.hpp: the identity behind an "Authorization: Bearer" token, verified
// offline against the identity provider's keys (doc/deposit.md, "Tokens").
//
// Keys come from a JWK Set file (read at start, on reload() and on an unknown kid) or from
// the issuer's OpenID Connect discovery document over HTTPS (ISSUER/.well-known/openid-
// configuration, then its jwks_uri; the TLS peer verified by name; jwks_source.hpp).
// Fetched keys are refreshed every refresh_period. A token whose kid is unknown triggers
// one load (file or discovery), at most once per refresh_min_interval; concurrent
// requests share the load in flight (a periodic one as well) and then verify once more;
// a token still unknown after that is refused (unknown_kid). A failed load keeps the keys
// in hand, and says so in the log. Tokens are checked by jose::validate_jwt() (signature
// with the key's bound algorithm, iss, aud, exp, nbf, iat, identity claim,
// email_verified).
//
// Start-up: with a file, start() fails when the file gives no usable set (the daemon
// exits). With discovery, a failed first fetch does not fail start(): verify() answers
// `unavailable` (the daemon's 503 keys_unavailable) while a background loop retries after
// 1 s, then after twice the previous wait each time, up to refresh_min_interval (never
// more often than that against a provider that is down); once keys are in hand it
// refreshes every refresh_period, and after a failed refresh retries the same way.
//
// Promises: verify() never throws on any token; every refusal names one jose::Refusal
// (or `unavailable` when no key set has ever been loaded); nothing of the token reaches a
// log line unescaped; a token is never logged whole. All members run on the io_context
// given to create() (one strand: call from coroutines of that io_context, run by one
// thread). The verifier may be destroyed while a load is in flight: the load finishes
// (or times out) on its own and is then dropped.
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
    jose::JwtPolicy policy;      // issuer, audience, skew, identity claim
    std::string jwks_file;       // a JWK Set file; or
    std::string discovery_url;   // https://... (default: ISSUER/.well-known/openid-configuration)
    bool use_discovery = false;  // keys from the issuer's discovery document
    std::string ca_file;         // trust anchors for the HTTPS fetches ("" = system store)
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

    // For metrics and tests: key-set loads (file reads or discovery fetches) that gave a
    // usable set, and loads that failed (the set in hand was kept).
    virtual std::uint64_t key_loads() const = 0;
    virtual std::uint64_t key_load_failures() const = 0;
};

}  // namespace xproxy::depositd
