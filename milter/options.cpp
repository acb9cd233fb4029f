// options.cpp: command line and config file parsing for xproxy-milter, and the checks
// that turn options into a Config (bad configuration stops the daemon at start-up).
#include "options.hpp"

#include <boost/program_options.hpp>

#include <xproxy/base/escape.hpp>
#include <xproxy/base/file_loader.hpp>
#include <xproxy/daemon/log.hpp>
#include <xproxy/daemon/options.hpp>
#include <xproxy/policy/directory_file.hpp>

namespace po = boost::program_options;

namespace xproxy::milter {

std::optional<Options> parse_options(int argc, char** argv, int& exit_code) {
    Options o;
    po::options_description d("xproxy-milter options");
    d.add_options()("help,h", "print this help and exit")("version", "print the version and exit")(
        "config,c", po::value(&o.config_file), "config file (long option names, name = value)")(
        "check-config", po::bool_switch(&o.check_config), "check the configuration and exit (0 = valid)")(
        "listen,l", po::value(&o.listen)->default_value("unix:/run/xproxy/milter.sock"),
        "listener: unix:PATH, inet:HOST:PORT, inet6:[ADDR]:PORT, fd:N or systemd")(
        "socket-mode", po::value(&o.socket_mode)->default_value("0660"), "permissions of a unix: socket (octal)")(
        "socket-group", po::value(&o.socket_group)->default_value("postfix"),
        "group of a unix: socket: the MTA's (only it may connect)")(
        "allow-peers", po::value(&o.allow_peers),
        "CIDR list of MTAs a TCP listener serves (required for TCP; an address of this host admits every local user)")(
        "user,u", po::value(&o.user), "drop privileges to this user after binding (a unix: socket is given to it)")(
        "log", po::value(&o.log_sink)->default_value("syslog"), "log to syslog, stderr or off")(
        "log-level", po::value(&o.log_level)->default_value("info"), "error, warning, info or debug")(
        "metrics", po::value(&o.metrics),
        "serve Prometheus metrics over HTTP at /metrics on this listener (inet:127.0.0.1:PORT or unix:PATH; "
        "default off)")("timeout", po::value(&o.timeout)->default_value(30),
                        "seconds to wait for the MTA before giving up a connection")(
        "backlog", po::value(&o.backlog)->default_value(256), "listen backlog")(
        "mode,m", po::value(&o.mode), "inject (first hop) or verify (later hop); required")(
        "keyring", po::value(&o.keyring_file), "key ring file of the trace header (mode 0600 or tighter); required")(
        "signer", po::value(&o.signer), "name recorded as by= in signed and result headers (default: host name)")(
        "trusted-upstreams", po::value(&o.trusted_upstreams),
        "inject: CIDR list of upstream MTAs whose valid header is kept (default: nobody)")(
        "block-list", po::value(&o.block_list), "verify: CIDR list of original clients to reject (550 5.7.1)")(
        "on-invalid", po::value(&o.on_invalid)->default_value("reject"),
        "verify: accept, tempfail or reject a message whose header does not verify")(
        "on-missing", po::value(&o.on_missing)->default_value("reject"),
        "verify: accept, tempfail or reject a message without a header")(
        "on-missing-bounce", po::value(&o.on_missing_bounce),
        "verify: accept, tempfail or reject a message from the null sender (a DSN) without a header "
        "(default: tempfail, or --on-missing when that is milder)")("keep-header", po::bool_switch(&o.keep_header),
                                                                    "verify: leave the verified header in the message")(
        "no-result-header", po::bool_switch(&o.no_result_header), "verify: do not add X-Original-Source-Result")(
        "max-age", po::value(&o.max_age)->default_value(7 * 86400), "verify: seconds a header stays valid")(
        "max-future", po::value(&o.max_future)->default_value(300), "seconds a header's time may lie ahead of ours")(
        "policy,p", po::value(&o.policies)->composing(),
        "enable a shared policy: vdomains, deposit (repeatable or comma-separated)")(
        "directory", po::value(&o.directory_file),
        "virtual-domain directory: a file, or an ldap://, ldaps:// or ldapi:// URL whose path is the search base")(
        "ldap-config", po::value(&o.ldap_config), "settings of an LDAP --directory (bind, TLS, state file, schema)")(
        "submission-port", po::value(&o.submission_ports)->composing(),
        "{daemon_port} values that mean the submission service (repeatable; default 587 and 465)");
    po::variables_map vm;
    if (!daemon::load_options(daemon::arguments(argc, argv), d, vm, "xproxy-milter",
                              "--mode inject|verify --keyring FILE [options]", XPROXY_VERSION, exit_code, nullptr,
                              false, &o.origins))
        return std::nullopt;
    o.policies = daemon::split_commas(o.policies);
    if (o.submission_ports.empty()) o.submission_ports = {"587", "465"};
    if (o.signer.empty()) o.signer = daemon::host_name();
    return o;
}

std::shared_ptr<const Config> build_config(const Options& o, std::string* error) {
    auto c = std::make_shared<Config>();
    auto fail = [&](std::string why) -> std::shared_ptr<const Config> {
        if (error) *error = std::move(why);
        return nullptr;
    };
    // A check of option `name` (its value `value`, for a repeatable one) failed.
    auto fail_option = [&](std::string_view name, const std::string& why, std::string_view value = {}) {
        return fail(o.origins.locate(name, why, value));
    };
    auto mode = parse_mode(o.mode);
    if (!mode) return fail_option("mode", "--mode must be inject or verify");
    c->mode = *mode;
    if (o.keyring_file.empty()) return fail("--keyring is required");
    auto keys = KeyRing::load_file(o.keyring_file);
    if (!keys) return fail(keys.error());
    c->keys = std::move(*keys);
    c->signer = o.signer;
    auto trusted = CidrSet::parse(o.trusted_upstreams);
    if (!trusted) return fail_option("trusted-upstreams", "--trusted-upstreams: " + trusted.error());
    c->trusted_upstreams = *trusted;
    auto blocked = CidrSet::parse(o.block_list);
    if (!blocked) return fail_option("block-list", "--block-list: " + blocked.error());
    c->block_list = *blocked;
    auto inv = parse_fail_action(o.on_invalid);
    auto mis = parse_fail_action(o.on_missing);
    if (!inv) return fail_option("on-invalid", "--on-invalid must be accept, tempfail or reject");
    if (!mis) return fail_option("on-missing", "--on-missing must be accept, tempfail or reject");
    c->on_invalid = *inv;
    c->on_missing = *mis;
    c->on_missing_bounce = *mis == FailAction::reject ? FailAction::tempfail : *mis;
    if (!o.on_missing_bounce.empty()) {
        auto b = parse_fail_action(o.on_missing_bounce);
        if (!b) return fail_option("on-missing-bounce", "--on-missing-bounce must be accept, tempfail or reject");
        c->on_missing_bounce = *b;
    }
    c->keep_header = o.keep_header;
    c->result_header = !o.no_result_header;
    if (o.max_age <= 0) return fail_option("max-age", "--max-age must be positive");
    if (o.max_future < 0) return fail_option("max-future", "--max-future must not be negative");
    c->max_age = o.max_age;
    c->max_future = o.max_future;
    for (const auto& p : o.policies)
        if (p != "vdomains" && p != "deposit")
            return fail_option("policy", "--policy: " + p + " is not a milter policy (vdomains, deposit)", p);
    if (auto on = c->policy.enable(o.policies); !on) return fail_option("policy", "--policy: " + on.error());
    c->policy.trusted_upstreams = c->trusted_upstreams;
    if (c->policy.any()) {
        if (o.directory_file.empty()) return fail("policies vdomains and deposit need --directory");
        auto dir = DirectoryBackend::open(
            o.directory_file, o.ldap_config, [](LdapLogLevel level, const std::string& line) {
                log::write(static_cast<log::Level>(level), "event=ldap message=\"" + escape_value(line, 0) + "\"");
            });
        if (!dir) return fail(dir.error());
        c->directory_backend = std::move(*dir);
    }
    c->submission_ports = o.submission_ports;
    return c;
}

}  // namespace xproxy::milter
