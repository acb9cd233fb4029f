// config.hpp: xproxy-depositd's configuration: command line and config file (Boost.
// Program_options, the long option names; doc/man/xproxy-depositd.8, doc/deposit.md,
// "Configuration").
//
// Promises: parse_config() checks everything a start-up can check without opening a
// socket or the network: every value's range, the listeners' syntax, that the TLS key,
// the receipt key and the key ring are regular files of mode 0600 or tighter, that exactly
// one key source (--jwks-file or --jwks-discovery) is given. Every error names the option
// at fault (and the config file's "FILE:LINE: " when the file set it). Nothing here
// throws on bad input.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <xproxy/base/result.hpp>
#include <xproxy/daemon/option_origins.hpp>

namespace xproxy::depositd {

struct Config {
    std::string config_file;
    bool check_config = false;
    std::vector<std::string> listen;  // listen.hpp specs (TCP only)
    std::string tls_cert, tls_key;    // the server's chain and key (0600)
    std::string client_ca;            // request client certificates verified against these CAs

    // Tokens (token_verifier.hpp).
    std::string issuer, audience;
    std::string identity_claim = "email";
    std::int64_t clock_skew = 60;
    std::string jwks_file;
    bool jwks_discovery = false;
    std::string discovery_url;  // default: ISSUER/.well-known/openid-configuration
    std::string jwks_ca_file;
    std::chrono::seconds jwks_refresh{3600};
    std::chrono::seconds jwks_refresh_min_interval{60};

    // Injection (smtp_injector.hpp).
    std::string mta = "inet:127.0.0.1:25";
    std::string helo_name;    // default: the host name
    std::string keyring;      // the trace header's key ring (0600)
    std::string server_name;  // receipts' iss, the trace header's by= (default: the host name)
    std::string receipt_key;  // Ed25519 or P-256 PEM (0600)
    std::string receipt_kid;

    std::string directory;  // a file or an LDAP URL
    std::string ldap_config;

    // Limits (doc/deposit.md, "Limits").
    std::uint64_t max_message_size = 10485760;
    unsigned max_recipients = 100;
    unsigned rate_limit = 60;  // deposits per identity per minute; 0 = off
    std::chrono::seconds header_timeout{10};
    std::chrono::seconds body_timeout{60};
    unsigned max_connections = 256;
    unsigned max_connections_per_client = 16;  // per address, IPv6 per /64
    std::chrono::seconds idempotency_ttl{86400};
    std::chrono::seconds receipt_ttl{86400};
    std::size_t max_idempotency_entries = 100000;
    std::size_t max_receipts = 100000;

    std::string metrics;
    std::string log_sink = "syslog";
    std::string log_level = "info";
    std::string user;

    daemon::OptionOrigins origins;
};

// Returns the configuration, or nullopt with exit_code set (0 after --help/--version, 2
// for a usage error, 1 for a bad value) and the message printed to stderr as
// "xproxy-depositd: ...".
std::optional<Config> parse_config(int argc, char** argv, int& exit_code);

// The checks of parse_config() after the options were read (public for tests).
Expected<void> check_config(Config& c);

// "" when --audience is an https URL whose host is --server-name (ASCII case ignored);
// else a warning for --check-config (not an error: the daemon checks aud as given) that
// clients send a token only to the server its audience names (doc/deposit.md "Tokens").
std::string audience_warning(const Config& c);

}  // namespace xproxy::depositd
