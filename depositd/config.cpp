// config.cpp: options of xproxy-depositd; see config.hpp.
#include "config.hpp"

#include <boost/program_options.hpp>
#include <iostream>

#include <xproxy/base/escape.hpp>
#include <xproxy/base/text.hpp>
#include <xproxy/daemon/https_client.hpp>
#include <xproxy/daemon/listen.hpp>
#include <xproxy/daemon/options.hpp>
#include <xproxy/daemon/tls.hpp>
#include <xproxy/jose/signing_key.hpp>

namespace po = boost::program_options;

namespace xproxy::depositd {

namespace {

constexpr const char* kProgram = "xproxy-depositd";

struct Raw {
    std::int64_t jwks_refresh = 3600, jwks_refresh_min = 60;
    std::int64_t header_timeout = 10, body_timeout = 60, idempotency_ttl = 86400, receipt_ttl = 86400;
};

void describe(po::options_description& d, Config& c, Raw& r) {
    d.add_options()("help,h", "print this help and exit")("version", "print the version and exit")(
        "config,c", po::value(&c.config_file), "config file (long option names, name = value)")(
        "check-config", po::bool_switch(&c.check_config), "check the configuration and exit (0 = valid)")(
        "listen,l", po::value(&c.listen)->composing(),
        "HTTPS listener: inet:HOST:PORT, inet6:[ADDR]:PORT, fd:N or systemd (repeatable)")(
        "tls-cert", po::value(&c.tls_cert), "the server's certificate chain (PEM); required")(
        "tls-key", po::value(&c.tls_key), "the server's private key (PEM, mode 0600); required")(
        "client-ca", po::value(&c.client_ca),
        "ask for client certificates verified against these CAs (PEM); a certificate whose SHA-256 "
        "fingerprint is a directory cert= is that user's identity")(
        "issuer", po::value(&c.issuer), "the identity provider's issuer URL (the tokens' iss); required")(
        "audience", po::value(&c.audience), "the audience tokens must name (aud); required")(
        "identity-claim", po::value(&c.identity_claim)->default_value("email"), "the claim that names the identity")(
        "clock-skew", po::value(&c.clock_skew)->default_value(60), "seconds of clock difference tolerated")(
        "jwks-file", po::value(&c.jwks_file), "the identity provider's JWK Set, from a file")(
        "jwks-discovery", po::bool_switch(&c.jwks_discovery),
        "the identity provider's JWK Set from its OpenID discovery document over HTTPS")(
        "discovery-url", po::value(&c.discovery_url),
        "the discovery document (https://; default ISSUER/.well-known/openid-configuration)")(
        "jwks-ca-file", po::value(&c.jwks_ca_file), "CAs for the discovery fetches (default: the system's)")(
        "jwks-refresh", po::value(&r.jwks_refresh)->default_value(3600), "seconds between key refreshes")(
        "jwks-refresh-min-interval", po::value(&r.jwks_refresh_min)->default_value(60),
        "seconds at least between refreshes an unknown key id triggers")(
        "mta", po::value(&c.mta)->default_value("inet:127.0.0.1:25"),
        "the MTA messages are injected into: inet:HOST:PORT, inet6:[ADDR]:PORT or unix:PATH")(
        "helo-name", po::value(&c.helo_name), "our EHLO name towards the MTA (default: the host name)")(
        "keyring", po::value(&c.keyring), "key ring of the X-Original-Source header (mode 0600); required")(
        "server-name", po::value(&c.server_name),
        "this server's name: receipts' iss and the trace header's by= (default: the host name)")(
        "receipt-key", po::value(&c.receipt_key), "receipt signing key (Ed25519 or P-256 PEM, mode 0600); required")(
        "receipt-kid", po::value(&c.receipt_kid), "the receipt key's key id; required")(
        "directory", po::value(&c.directory),
        "virtual-domain directory: a file, or an ldap://, ldaps:// or ldapi:// URL; required")(
        "ldap-config", po::value(&c.ldap_config), "settings of an LDAP --directory")(
        "max-message-size", po::value(&c.max_message_size)->default_value(10485760), "bytes of a message at most")(
        "max-recipients", po::value(&c.max_recipients)->default_value(100), "recipients of a deposit at most")(
        "rate-limit", po::value(&c.rate_limit)->default_value(60), "deposits per identity per minute (0 = off)")(
        "header-timeout", po::value(&r.header_timeout)->default_value(10),
        "seconds to receive a request's header block")("body-timeout", po::value(&r.body_timeout)->default_value(60),
                                                       "seconds to receive a request's body")(
        "max-connections", po::value(&c.max_connections)->default_value(256), "connections at once")(
        "max-connections-per-client", po::value(&c.max_connections_per_client)->default_value(16),
        "connections at once from one client address (IPv6: one /64)")(
        "idempotency-ttl", po::value(&r.idempotency_ttl)->default_value(86400),
        "seconds an Idempotency-Key is remembered")("receipt-ttl", po::value(&r.receipt_ttl)->default_value(86400),
                                                    "seconds a receipt can be fetched")(
        "metrics", po::value(&c.metrics),
        "serve Prometheus metrics over HTTP at /metrics on this listener (inet:127.0.0.1:PORT or unix:PATH)")(
        "log", po::value(&c.log_sink)->default_value("syslog"), "log to syslog, stderr or off")(
        "log-level", po::value(&c.log_level)->default_value("info"), "error, warning, info or debug")(
        "user,u", po::value(&c.user), "drop privileges to this user after binding");
}

// A positive number of seconds.
Expected<std::chrono::seconds> seconds(const Config& c, std::string_view name, std::int64_t v,
                                       std::int64_t max = 10LL * 365 * 86400) {
    if (v <= 0 || v > max)
        return Failure{c.origins.locate(name, "--" + std::string(name) + " must be 1 to " + std::to_string(max))};
    return std::chrono::seconds(v);
}

// A secret file that must be a regular file of mode 0600 or tighter.
Expected<void> check_secret(const Config& c, std::string_view name, const std::string& path) {
    if (path.empty()) return Failure{"--" + std::string(name) + " is required"};
    if (auto ok = daemon::check_private_key_file(path); !ok)
        return Failure{c.origins.locate(name, "--" + std::string(name) + ": " + ok.error())};
    return {};
}

Expected<void> check_tokens(const Config& c) {
    if (c.issuer.empty()) return Failure{"--issuer is required"};
    if (c.audience.empty()) return Failure{"--audience is required"};
    if (c.identity_claim.empty()) return Failure{c.origins.locate("identity-claim", "--identity-claim is empty")};
    if (c.clock_skew < 0 || c.clock_skew > 3600)
        return Failure{c.origins.locate("clock-skew", "--clock-skew must be 0 to 3600")};
    if (c.jwks_file.empty() == !c.jwks_discovery)
        return Failure{"give exactly one of --jwks-file and --jwks-discovery"};
    if (!c.jwks_discovery && (!c.discovery_url.empty() || !c.jwks_ca_file.empty()))
        return Failure{"--discovery-url and --jwks-ca-file need --jwks-discovery"};
    if (!c.discovery_url.empty() && !istarts_with(c.discovery_url, "https://"))
        return Failure{c.origins.locate("discovery-url", "--discovery-url must be an https:// URL")};
    if (c.jwks_discovery && c.discovery_url.empty() && !istarts_with(c.issuer, "https://"))
        return Failure{c.origins.locate("issuer", "--jwks-discovery needs an https:// --issuer or --discovery-url")};
    if (c.jwks_refresh_min_interval > c.jwks_refresh)
        return Failure{c.origins.locate("jwks-refresh-min-interval",
                                        "--jwks-refresh-min-interval must not exceed --jwks-refresh")};
    return {};
}

Expected<void> check_mta(const Config& c) {
    auto spec = daemon::parse_listen(c.mta);  // the same spelling as a listener
    if (!spec || (spec->kind != daemon::ListenSpec::Kind::inet && spec->kind != daemon::ListenSpec::Kind::unix_))
        return Failure{c.origins.locate("mta", "--mta must be inet:HOST:PORT, inet6:[ADDR]:PORT or unix:PATH")};
    return {};
}

Expected<void> check_listeners(const Config& c) {
    if (c.listen.empty()) return Failure{"--listen is required"};
    for (const auto& l : c.listen) {
        auto spec = daemon::parse_listen(l);
        if (!spec) return Failure{c.origins.locate("listen", "--listen: " + spec.error(), l)};
        if (spec->kind == daemon::ListenSpec::Kind::unix_)
            return Failure{c.origins.locate("listen", "--listen " + l + ": HTTPS is served over TCP only", l)};
    }
    return {};
}

Expected<void> check_limits(const Config& c) {
    if (c.max_message_size == 0 || c.max_message_size > (std::uint64_t{1} << 32))
        return Failure{c.origins.locate("max-message-size", "--max-message-size must be 1 to 4294967296")};
    if (c.max_recipients == 0 || c.max_recipients > 10000)
        return Failure{c.origins.locate("max-recipients", "--max-recipients must be 1 to 10000")};
    if (c.rate_limit > 1000000) return Failure{c.origins.locate("rate-limit", "--rate-limit must be 0 to 1000000")};
    if (c.max_connections == 0 || c.max_connections > 100000)
        return Failure{c.origins.locate("max-connections", "--max-connections must be 1 to 100000")};
    if (c.max_connections_per_client == 0 || c.max_connections_per_client > 100000)
        return Failure{
            c.origins.locate("max-connections-per-client", "--max-connections-per-client must be 1 to 100000")};
    return {};
}

}  // namespace

Expected<void> check_config(Config& c) {
    if (auto ok = check_listeners(c); !ok) return ok;
    if (c.tls_cert.empty()) return Failure{"--tls-cert is required"};
    if (auto ok = check_secret(c, "tls-key", c.tls_key); !ok) return ok;
    if (auto ok = check_tokens(c); !ok) return ok;
    if (auto ok = check_mta(c); !ok) return ok;
    if (auto ok = check_secret(c, "keyring", c.keyring); !ok) return ok;
    if (auto ok = check_secret(c, "receipt-key", c.receipt_key); !ok) return ok;
    if (!jose::valid_kid(c.receipt_kid))
        return Failure{c.origins.locate("receipt-kid", "--receipt-kid must be 1 to 128 printable ASCII characters")};
    if (c.directory.empty()) return Failure{"--directory is required"};
    if (auto ok = check_limits(c); !ok) return ok;
    if (c.server_name.empty()) c.server_name = daemon::host_name();
    if (c.helo_name.empty()) c.helo_name = daemon::host_name();
    return {};
}

std::string audience_warning(const Config& c) {
    auto url = http::parse_https_url(c.audience);
    if (url && !c.server_name.empty() && iequals(url->host, c.server_name)) return {};
    return "--audience " + escape(c.audience, 300) + " is not an https URL naming --server-name " +
           escape(c.server_name, 255) + " (as https://" + escape(c.server_name, 255) +
           "): xproxy-deposit sends a token only to the server its audience names, and a token whose audience "
           "is not this server's own could be replayed here by any server it was sent to (doc/deposit.md, "
           "\"Tokens\")";
}

std::optional<Config> parse_config(int argc, char** argv, int& exit_code) {
    Config c;
    Raw r;
    po::options_description d("xproxy-depositd options");
    describe(d, c, r);
    po::variables_map vm;
    if (!daemon::load_options(daemon::arguments(argc, argv), d, vm, kProgram,
                              "--listen SPEC --tls-cert FILE --tls-key FILE --issuer URL --audience AUD "
                              "--jwks-file FILE|--jwks-discovery --keyring FILE --receipt-key FILE --receipt-kid KID "
                              "--directory FILE|URL [options]",
                              XPROXY_VERSION, exit_code, nullptr, false, &c.origins))
        return std::nullopt;
    c.listen = daemon::split_commas(c.listen);
    auto fail = [&](const std::string& why) -> std::optional<Config> {
        std::cerr << kProgram << ": " << why << "\n";
        exit_code = 1;
        return std::nullopt;
    };
    struct Secs {
        const char* name;
        std::int64_t value;
        std::chrono::seconds* out;
    };
    for (const Secs& s : {Secs{"jwks-refresh", r.jwks_refresh, &c.jwks_refresh},
                          Secs{"jwks-refresh-min-interval", r.jwks_refresh_min, &c.jwks_refresh_min_interval},
                          Secs{"header-timeout", r.header_timeout, &c.header_timeout},
                          Secs{"body-timeout", r.body_timeout, &c.body_timeout},
                          Secs{"idempotency-ttl", r.idempotency_ttl, &c.idempotency_ttl},
                          Secs{"receipt-ttl", r.receipt_ttl, &c.receipt_ttl}}) {
        auto v = seconds(c, s.name, s.value);
        if (!v) return fail(v.error());
        *s.out = *v;
    }
    if (auto ok = check_config(c); !ok) return fail(ok.error());
    return c;
}

}  // namespace xproxy::depositd
