// options.hpp: xproxy-policyd's settings, from the command line and the config file
// (Boost.Program_options; the file uses the long option names, `name = value`).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <xproxy/daemon/option_origins.hpp>

namespace xproxy::policyd {

struct Options {
    std::string config_file;
    std::vector<std::string> listen;  // listener specs
    std::string user;
    std::string socket_mode = "0660";      // unix: socket permissions
    std::string socket_group = "postfix";  // unix: socket group (the MTA's)
    std::string allow_peers;               // TCP: CIDR list of clients served; empty = a TCP listener is refused
    unsigned threads = 2;
    std::string log_sink = "syslog";
    std::string log_level = "info";
    unsigned idle_timeout = 300;
    std::size_t max_line = 2048;
    std::size_t max_request = 16384;
    unsigned watch_interval = 5;
    std::string
        metrics;  // --metrics listener (HTTP, Prometheus); empty = off  // seconds between directory/key ring change checks; 0 = off

    // policies
    std::vector<std::string> policies;  // inject, vdomains, deposit, risk
    std::string trusted_upstreams;      // CIDR list; empty = nobody
    std::string keyring_file;
    std::string signer;                             // by= in the trace header
    std::string header_name = "X-Original-Source";  // name used in PREPEND (see man page)
    std::string directory_file;                     // a file or an LDAP URL
    std::string ldap_config;                        // --ldap-config: settings of an LDAP directory
    std::string risk_file;
    std::vector<std::string> submission_ports;  // server_port values meaning "submission"

    // Dovecot's auth policy (auth_policy.hpp); off when auth_policy_listen is empty
    std::string auth_policy_listen;
    std::string auth_policy_secret_file;
    std::string auth_policy_socket_group = "dovecot";  // unix: the group of Dovecot's auth process
    bool check_config = false;

    daemon::OptionOrigins origins;  // the config file line of each option it set
};

// Parses argv (and the config file it names). Returns nullopt after printing help or
// version (exit_code 0) or an error (exit_code 2) to stderr/stdout.
std::optional<Options> parse_options(int argc, char** argv, int& exit_code);
// Re-reads the config file for a reload; command-line values keep precedence.
std::optional<Options> reparse_options(std::string* error);

}  // namespace xproxy::policyd
