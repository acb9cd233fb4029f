// options.cpp: command line and config file parsing for xproxy-policyd.
#include "options.hpp"

#include <boost/program_options.hpp>

#include <xproxy/daemon/options.hpp>

namespace po = boost::program_options;

namespace xproxy::policyd {

namespace {

std::vector<std::string> g_argv;  // kept for reparse_options

po::options_description describe(Options& o) {
    po::options_description d("xproxy-policyd options");
    d.add_options()("help,h", "print this help and exit")("version", "print the version and exit")(
        "config,c", po::value(&o.config_file), "config file (long option names, name = value)")(
        "check-config", po::bool_switch(&o.check_config), "check the configuration and exit (0 = valid)")(
        "listen,l", po::value(&o.listen)->composing(),
        "listener: unix:PATH, inet:HOST:PORT, inet6:[ADDR]:PORT, fd:N or systemd (repeatable; default "
        "unix:/run/xproxy/policyd.sock)")("socket-mode", po::value(&o.socket_mode)->default_value("0660"),
                                          "permissions of a unix: socket (octal)")(
        "socket-group", po::value(&o.socket_group)->default_value("postfix"),
        "group of a unix: socket: the MTA's (only it may connect)")(
        "allow-peers", po::value(&o.allow_peers),
        "CIDR list of clients a TCP listener serves (required for TCP; an address of this host admits every local "
        "user)")("user,u", po::value(&o.user), "drop privileges to this user after binding")(
        "threads", po::value(&o.threads)->default_value(2), "worker threads")(
        "log", po::value(&o.log_sink)->default_value("syslog"), "log to syslog, stderr or off")(
        "log-level", po::value(&o.log_level)->default_value("info"), "error, warning, info or debug")(
        "metrics", po::value(&o.metrics),
        "serve Prometheus metrics over HTTP at /metrics on this listener (inet:127.0.0.1:PORT or unix:PATH; "
        "default off)")("idle-timeout", po::value(&o.idle_timeout)->default_value(300),
                        "close a connection idle this many seconds")(
        "max-line-length", po::value(&o.max_line)->default_value(2048), "longest request line accepted, bytes")(
        "max-request-size", po::value(&o.max_request)->default_value(16384), "largest request accepted, bytes")(
        "watch-interval", po::value(&o.watch_interval)->default_value(5),
        "seconds between checks for a changed directory or key ring file (0 = only on SIGHUP)")(
        "policy,p", po::value(&o.policies)->composing(),
        "enable a policy: inject, vdomains, deposit, risk (repeatable or comma-separated; none = always DUNNO)")(
        "trusted-upstreams", po::value(&o.trusted_upstreams),
        "CIDR list of upstream MTAs whose mail already carries the trace header (default: nobody)")(
        "keyring", po::value(&o.keyring_file), "key ring file for signing the trace header (mode 0600 or tighter)")(
        "signer", po::value(&o.signer), "name recorded as by= in the trace header (default: host name)")(
        "header-name", po::value(&o.header_name)->default_value("X-Original-Source"),
        "field name of the PREPENDed trace header; a private name lets header_checks remove forged "
        "X-Original-Source headers and smtp_header_checks rename ours on the way out (see the man page)")(
        "directory", po::value(&o.directory_file),
        "virtual-domain directory: a file, or an ldap://, ldaps:// or ldapi:// URL whose path is the search base")(
        "ldap-config", po::value(&o.ldap_config), "settings of an LDAP --directory (bind, TLS, state file, schema)")(
        "risk-map", po::value(&o.risk_file), "risk routing file")(
        "submission-port", po::value(&o.submission_ports)->composing(),
        "server_port values that mean the submission service (repeatable; default 587 and 465)")(
        "auth-policy-listen", po::value(&o.auth_policy_listen),
        "serve Dovecot's auth policy (auth_policy_server_url) on inet:HOST:PORT or unix:PATH (needs --directory)")(
        "auth-policy-secret-file", po::value(&o.auth_policy_secret_file),
        "API key Dovecot must send (auth_policy_server_api_header); mode 0640 or tighter; required for TCP")(
        "auth-policy-socket-group", po::value(&o.auth_policy_socket_group)->default_value("dovecot"),
        "group of a unix: auth policy socket (Dovecot's auth process)");
    return d;
}

std::optional<Options> parse(const std::vector<std::string>& args, int& exit_code, std::string* error, bool quiet) {
    Options o;
    auto desc = describe(o);
    po::variables_map vm;
    if (!daemon::load_options(args, desc, vm, "xproxy-policyd", "[options]", XPROXY_VERSION, exit_code, error, quiet,
                              &o.origins))
        return std::nullopt;
    o.policies = daemon::split_commas(o.policies);  // "inject,vdomains" as well as repeated options
    if (o.listen.empty()) o.listen.push_back("unix:/run/xproxy/policyd.sock");
    if (o.submission_ports.empty()) o.submission_ports = {"587", "465"};
    if (o.signer.empty()) o.signer = daemon::host_name();
    return o;
}

}  // namespace

std::optional<Options> parse_options(int argc, char** argv, int& exit_code) {
    g_argv = daemon::arguments(argc, argv);
    return parse(g_argv, exit_code, nullptr, false);
}

std::optional<Options> reparse_options(std::string* error) {
    int code = 0;
    return parse(g_argv, code, error, true);
}

}  // namespace xproxy::policyd
