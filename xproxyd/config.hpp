// config.hpp: xproxyd's configuration: command line and config file (Boost.Program_
// options, long option names), the downstream specifications and the conditions that turn
// the fast path off. parse_config() checks everything a start-up needs and names the
// option at fault; nothing is opened or bound here.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "egress.hpp"
#include "mx_records.hpp"
#include "source.hpp"
#include <xproxy/base/ip.hpp>
#include <xproxy/base/secret_file.hpp>

namespace xproxy::xproxyd {

// Towards a downstream. none: plain text. may: STARTTLS when offered, certificate not
// checked (protects against a passive eavesdropper only; an active one strips STARTTLS or
// presents any certificate). encrypt: STARTTLS required, certificate not checked (passive
// eavesdroppers only). verify: STARTTLS required, the chain verified against the CAs and
// the certificate checked for tls-name= or the destination's address. Default: none when
// every destination is a loopback address, verify otherwise.
enum class TlsMode { none, may, encrypt, verify };
const char* to_string(TlsMode m);

struct Destination {
    std::string host;  // numeric address
    std::uint16_t port = 25;
    std::string name;  // outbound: the MX host name (TLS reference identity, logs); else empty
    std::string to_string() const;
};

struct DownstreamConfig {
    std::string name;
    std::vector<Destination> destinations;  // tried in order (failover)
    // destinations=mx (the outbound mode): the destinations of each transaction are the MX
    // hosts of its recipients' domain (RFC 5321 5.1), port mx_port; encoding none; tls may
    // by default, verify for REQUIRETLS, the name checked being the MX host's.
    bool mx = false;
    std::uint16_t mx_port = 25;
    Encoding encoding = Encoding::proxy_v2;
    TlsMode tls = TlsMode::none;
    std::string tls_name;  // expected in the certificate (and SNI); default: the destination's address
    std::string tls_ca;    // CA file for tls=verify; default: --tls-ca, else the system's store
    std::chrono::seconds connect_timeout{30};
    std::chrono::seconds command_timeout{300};
    std::string helo;           // our EHLO name towards it; default: the hostname option
    std::string hmac_key_file;  // proxy-v2: sign each header with this key (TIME and HMAC TLVs)
    std::uint8_t hmac_key_id = 1;
    bool proxy_unsigned = false;                  // an unsigned PROXY header off this machine, on purpose
    std::shared_ptr<const SecretBytes> hmac_key;  // loaded from hmac_key_file at start-up
};

// "NAME destinations=H:P[,H:P...] encoding=E tls=none|may|encrypt|verify tls-name=NAME
//  tls-ca=FILE connect-timeout=S command-timeout=S helo=NAME hmac-key-file=PATH hmac-key-id=N
//  proxy-unsigned=yes|no"
std::optional<DownstreamConfig> parse_downstream(const std::string& text, std::string* error);
// The checks of a --downstream for a home MTA built from the directory (submission mode):
// tls defaults to none for loopback-only destinations and verify otherwise when not given,
// an unsigned PROXY header is refused off this machine and before TLS.
Expected<void> check_home_downstream(DownstreamConfig& d, bool tls_given);

// When one matches a transaction, its body is streamed through without a copy (no
// failover after DATA): "always", "size-over=N" (declared SIZE above N bytes),
// "client=CIDR" (original client in CIDR).
struct StreamThroughCondition {
    enum class Kind { always, size_over, client } kind = Kind::always;
    std::uint64_t size = 0;
    std::optional<Cidr> cidr;
};
std::optional<StreamThroughCondition> parse_condition(const std::string& text, std::string* error);

struct Listener {
    std::string spec;                 // inet:HOST:PORT ... (xproxy/daemon/listen.hpp)
    std::size_t downstream;           // index into Config::downstreams
    std::string origin;               // "FILE:LINE" when the config file set it, else ""
    std::string risk = "default";     // risk=CLASS: the egress pool of its transactions (outbound)
    std::optional<std::size_t> pool;  // index into Config::pools; none without --pool
    bool splice = false;              // xproxyto=splice: bytes copied both ways after XPROXYTO
    // mode=submission: mail clients authenticate (AUTH, after TLS) and each user's mail goes
    // to the home MTA the directory names; the listener's downstream is the default home.
    bool submission = false;
    bool implicit_tls = false;  // tls=implicit: the TLS handshake comes first (port 465, RFC 8314)
};

// The submission mode: --directory, --dovecot-auth and the failed-login limits.
struct SubmissionConfig {
    std::string directory;     // the directory (users, aliases, logins, home MTAs): a file or an LDAP URL
    std::string ldap_config;   // --ldap-config: settings of an LDAP directory
    std::string dovecot_auth;  // unix:/PATH or inet:HOST:PORT (Dovecot's auth service)
    std::chrono::seconds auth_timeout{10};
    unsigned address_failures = 5;  // failed logins from one address (IPv6: /64) within the window
    unsigned user_failures = 10;    // failed logins for one user within the window
    std::chrono::seconds failure_window{900};
    std::chrono::seconds lockout{900};
    std::chrono::milliseconds failure_delay{1000};  // grows with each failure, up to max_delay
    std::chrono::milliseconds max_delay{5000};
    std::size_t table_size = 65536;  // entries per table (addresses, users)
};

// The resolver of the outbound mode (mx_lookup.hpp): --dns-server, --dns-trust-anchor,
// --dns-option, --refused-destinations.
struct DnsConfig {
    std::vector<std::string> servers;  // ADDR or ADDR@PORT; empty: /etc/resolv.conf
    std::string trust_anchor;
    std::vector<std::pair<std::string, std::string>> options;  // libunbound "name:", value
    CidrSet refused = default_refused_destinations();
};

struct Config {
    std::string config_file;
    bool check_config = false;
    std::vector<Listener> listeners;
    std::vector<DownstreamConfig> downstreams;
    std::vector<Egress> egresses;
    std::vector<EgressPool> pools;
    DnsConfig dns;
    SubmissionConfig submission;
    std::string user;
    unsigned threads = 1;
    std::string log_sink = "syslog";
    std::string log_level = "info";
    std::string metrics;  // --metrics listener (HTTP, Prometheus); empty = off
    std::string hostname;
    CidrSet trusted;
    std::string tls_cert, tls_key;  // front-side STARTTLS; both empty: not offered
    std::string tls_ca;             // CAs for tls=verify downstreams without tls-ca= (default: system store)
    std::size_t fast_path_threshold = 32768;
    std::string spool_dir = "/var/spool/xproxyd";
    std::vector<StreamThroughCondition> stream_through;
    std::size_t max_line = 2048;
    unsigned max_commands = 10000;
    unsigned max_errors = 20;
    unsigned max_recipients = 1000;
    std::uint64_t max_message_size = 52428800;
    std::chrono::seconds client_timeout{300};
    unsigned max_sessions = 1000;            // sessions at once (then 421)
    unsigned max_sessions_per_client = 50;   // of them from one address (IPv6: one /64)
    std::uint64_t spill_quota = 1073741824;  // bytes of spill files across sessions (then 452)
    std::size_t pool_size = 32;              // idle downstream connections kept per downstream
    std::chrono::seconds pool_idle{10};      // and for how long
};

// Returns the configuration, or nullopt with exit_code set (0 after --help/--version,
// 2 for a usage error, 1 for a bad value) and the message printed to stderr; a message
// about an option set in the config file starts with its "FILE:LINE: ".
std::optional<Config> parse_config(int argc, char** argv, int& exit_code);

}  // namespace xproxy::xproxyd
