// options.hpp: xproxy-milter's settings, from the command line and the config file
// (Boost.Program_options; the file uses the long option names, `name = value`), and the
// read-only Config every Session shares, built from them.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "session.hpp"
#include <xproxy/daemon/option_origins.hpp>

namespace xproxy::milter {

struct Options {
    std::string config_file;
    std::string listen;  // one listener spec (libmilter serves one socket)
    std::string user;
    std::string socket_mode = "0660";      // unix: socket permissions
    std::string socket_group = "postfix";  // unix: socket group (the MTA's)
    std::string allow_peers;               // TCP: CIDR list of MTAs served; empty = a TCP listener is refused
    std::string log_sink = "syslog";
    std::string log_level = "info";
    std::string metrics;    // --metrics listener (HTTP, Prometheus); empty = off
    unsigned timeout = 30;  // seconds libmilter waits on the MTA
    int backlog = 256;
    bool check_config = false;

    std::string mode;  // inject | verify (required)
    std::string keyring_file;
    std::string signer;
    std::string trusted_upstreams;
    std::string block_list;
    std::string on_invalid = "reject";
    std::string on_missing = "reject";
    std::string on_missing_bounce;  // default: tempfail, or on_missing if that is accept/tempfail
    bool keep_header = false;
    bool no_result_header = false;
    std::int64_t max_age = 7 * 86400;
    std::int64_t max_future = 300;
    std::vector<std::string> policies;  // vdomains, deposit
    std::string directory_file;         // a file or an LDAP URL
    std::string ldap_config;            // --ldap-config: settings of an LDAP directory
    std::vector<std::string> submission_ports;

    daemon::OptionOrigins origins;  // the config file line of each option it set
};

// Parses argv (and the config file it names). Returns nullopt after printing help or
// version (exit_code 0) or an error (exit_code 2).
std::optional<Options> parse_options(int argc, char** argv, int& exit_code);

// The shared Config; nullptr with *error naming the option or file at fault (and the
// config file's line, "FILE:LINE: ", when the option was set there).
std::shared_ptr<const Config> build_config(const Options& o, std::string* error);

}  // namespace xproxy::milter
