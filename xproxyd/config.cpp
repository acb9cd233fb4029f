// config.cpp: options of xproxyd; see config.hpp.
#include "config.hpp"

#include <algorithm>
#include <boost/program_options.hpp>
#include <cctype>
#include <iostream>
#include <sstream>

#include <xproxy/base/result.hpp>
#include <xproxy/base/text.hpp>
#include <xproxy/daemon/options.hpp>

#include "dovecot_auth.hpp"

namespace po = boost::program_options;

namespace xproxy::xproxyd {

namespace {

template <class T>
bool parse_num(std::string_view s, T& out) {
    const auto v = parse_decimal<T>(s);
    if (v) out = *v;
    return v.has_value();
}

std::optional<Destination> parse_destination(std::string_view t) {
    Destination d;
    std::string_view host, port;
    if (!t.empty() && t.front() == '[') {
        auto close = t.find(']');
        if (close == std::string_view::npos || close + 1 >= t.size() || t[close + 1] != ':') return std::nullopt;
        host = t.substr(1, close - 1);
        port = t.substr(close + 2);
    } else {
        auto colon = t.rfind(':');
        if (colon == std::string_view::npos) return std::nullopt;
        host = t.substr(0, colon);
        port = t.substr(colon + 1);
    }
    if (!IpAddress::parse(host) || !parse_num(port, d.port) || d.port == 0) return std::nullopt;
    d.host = std::string(host);
    return d;
}

bool is_loopback(const std::string& host) {
    auto a = IpAddress::parse(host);
    if (!a) return false;
    IpAddress n = a->normalized();
    if (n.is_v4()) return n.data()[0] == 127;
    static const std::uint8_t one[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return std::equal(n.data(), n.data() + 16, one);
}

// A DNS name as the reference identity: letters, digits, '-' and '.', no wildcard.
bool valid_tls_name(const std::string& n) {
    if (n.empty() || n.size() > 253 || n.front() == '.' || n.back() == '.' || n.find("..") != std::string::npos)
        return false;
    for (char c : n)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return false;
    return true;
}

}  // namespace

const char* to_string(TlsMode m) {
    switch (m) {
        case TlsMode::none: return "none";
        case TlsMode::may: return "may";
        case TlsMode::encrypt: return "encrypt";
        case TlsMode::verify: return "verify";
    }
    return "?";
}

std::string Destination::to_string() const {
    return host.find(':') != std::string::npos ? "[" + host + "]:" + std::to_string(port)
                                               : host + ":" + std::to_string(port);
}

namespace {

// What the words of a downstream said beyond its values, for the checks after them.
struct DownstreamWords {
    bool tls_given = false;
    bool encoding_given = false;
    bool mx_port_given = false;
    bool key_id_given = false;
};

Expected<void> parse_destinations(DownstreamConfig& d, const std::string& value) {
    std::size_t start = 0;
    while (start <= value.size()) {
        auto comma = value.find(',', start);
        auto item = value.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        auto dest = parse_destination(item);
        if (!dest) return Failure{"downstream " + d.name + ": bad destination '" + item + "' (want ADDR:PORT)"};
        d.destinations.push_back(*dest);
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return {};
}

// One "key=value" word of a downstream.
Expected<void> parse_downstream_word(DownstreamConfig& d, const std::string& word, DownstreamWords& seen) {
    auto eq = word.find('=');
    std::string key = word.substr(0, eq), value = eq == std::string::npos ? "" : word.substr(eq + 1);
    bool ok = true;
    if (key == "destinations" && value == "mx") {
        d.mx = true;
    } else if (key == "destinations") {
        return parse_destinations(d, value);
    } else if (key == "mx-port") {
        seen.mx_port_given = true;
        ok = parse_num(value, d.mx_port) && d.mx_port > 0;
    } else if (key == "encoding") {
        seen.encoding_given = true;
        auto e = parse_encoding(value);
        ok = e.has_value();
        if (e) d.encoding = *e;
    } else if (key == "tls") {
        seen.tls_given = true;
        if (value == "none" || value == "off") d.tls = TlsMode::none;
        else if (value == "may") d.tls = TlsMode::may;
        else if (value == "encrypt") d.tls = TlsMode::encrypt;
        else if (value == "verify") d.tls = TlsMode::verify;
        else if (value == "opportunistic" || value == "required")
            return Failure{"downstream " + d.name + ": tls=" + value +
                           " is gone: say tls=may, tls=encrypt (unauthenticated) or tls=verify"};
        else ok = false;
    } else if (key == "tls-name") {
        d.tls_name = value;
        ok = IpAddress::parse(value).has_value() || valid_tls_name(value);
    } else if (key == "tls-ca") {
        d.tls_ca = value;
        ok = !value.empty();
    } else if (key == "connect-timeout" || key == "command-timeout") {
        unsigned s = 0;
        ok = parse_num(value, s) && s > 0;
        (key == "connect-timeout" ? d.connect_timeout : d.command_timeout) = std::chrono::seconds(s);
    } else if (key == "helo") {
        d.helo = value;
        ok = !value.empty();
    } else if (key == "hmac-key-file") {
        d.hmac_key_file = value;
        ok = !value.empty();
    } else if (key == "hmac-key-id") {
        seen.key_id_given = true;
        ok = parse_num(value, d.hmac_key_id);
    } else if (key == "proxy-unsigned") {
        ok = value == "yes" || value == "no";
        d.proxy_unsigned = value == "yes";
    } else {
        return Failure{"downstream " + d.name + ": unknown setting '" + key + "'"};
    }
    if (!ok) return Failure{"downstream " + d.name + ": bad value in '" + word + "'"};
    return {};
}

// The whole downstream: TLS by default off this machine, and a PROXY header only where
// it cannot be rewritten unnoticed.
// destinations=mx: other organisations' MX hosts, so nothing about the source MTA's
// clients is announced to them, and the certificate is checked against the MX host name.
Expected<void> check_mx_downstream(DownstreamConfig& d, const DownstreamWords& seen) {
    const std::string ds = "downstream " + d.name + ": ";
    if (!d.destinations.empty()) return Failure{ds + "destinations=mx takes no addresses besides"};
    if (seen.encoding_given && d.encoding != Encoding::none)
        return Failure{ds +
                       "destinations=mx delivers to other organisations: encoding=none (nothing of the source "
                       "is announced to them)"};
    d.encoding = Encoding::none;
    if (!seen.tls_given) d.tls = TlsMode::may;  // what the internet's MX hosts allow; REQUIRETLS verifies
    if (!d.tls_name.empty()) return Failure{ds + "tls-name= with destinations=mx: the MX host name is checked"};
    if (!d.hmac_key_file.empty() || d.proxy_unsigned) return Failure{ds + "destinations=mx sends no PROXY header"};
    return {};
}

Expected<void> check_downstream(DownstreamConfig& d, const DownstreamWords& seen) {
    if (d.mx) return check_mx_downstream(d, seen);
    if (seen.mx_port_given) return Failure{"downstream " + d.name + ": mx-port= needs destinations=mx"};
    if (d.destinations.empty()) return Failure{"downstream " + d.name + ": no destinations="};
    bool local = true;
    for (const auto& dest : d.destinations) local = local && is_loopback(dest.host);
    if (!seen.tls_given) d.tls = local ? TlsMode::none : TlsMode::verify;  // closed default
    const bool proxy = d.encoding == Encoding::proxy_v1 || d.encoding == Encoding::proxy_v2;
    const std::string enc = std::string("encoding=") + to_string(d.encoding);
    const std::string ds = "downstream " + d.name + ": ";
    if ((!d.hmac_key_file.empty() || seen.key_id_given) && d.encoding != Encoding::proxy_v2)
        return Failure{ds + "hmac-key-file= and hmac-key-id= need encoding=proxy-v2 (" + enc +
                       " cannot carry a signature)"};
    if (seen.key_id_given && d.hmac_key_file.empty()) return Failure{ds + "hmac-key-id= needs hmac-key-file="};
    if (d.proxy_unsigned && (!proxy || !d.hmac_key_file.empty()))
        return Failure{ds + "proxy-unsigned=yes is for an unsigned encoding=proxy-v1 or proxy-v2 only"};
    // The PROXY header goes before STARTTLS: TLS cannot protect it, only a signature can.
    if (proxy && d.hmac_key_file.empty() && d.tls != TlsMode::none)
        return Failure{
            ds + enc + " is sent before STARTTLS, which cannot protect it" +
            (seen.tls_given ? "" : " (tls=verify is the default off this machine)") +
            ": write encoding=proxy-v2 hmac-key-file=PATH (the key of the downstream's XPROXY_HMAC_KEY_FILE)" +
            (local ? ", or tls=none" : ", or tls=none proxy-unsigned=yes only on a segment you trust completely")};
    if (proxy && d.hmac_key_file.empty() && !local && !d.proxy_unsigned)
        return Failure{ds + enc +
                       " off this machine can be rewritten on the way: write encoding=proxy-v2 hmac-key-file=PATH (the "
                       "key of the downstream's XPROXY_HMAC_KEY_FILE), or proxy-unsigned=yes only on a segment you "
                       "trust completely"};
    if (!d.tls_ca.empty() && d.tls != TlsMode::verify) return Failure{ds + "tls-ca= needs tls=verify"};
    if (!d.tls_name.empty() && d.tls == TlsMode::none)
        return Failure{ds + "tls-name= needs TLS (tls=may, encrypt or verify)"};
    return {};
}

}  // namespace

Expected<void> check_home_downstream(DownstreamConfig& d, bool tls_given) {
    DownstreamWords seen;
    seen.tls_given = tls_given;
    seen.encoding_given = true;
    seen.key_id_given = !d.hmac_key_file.empty();
    return check_downstream(d, seen);
}

std::optional<DownstreamConfig> parse_downstream(const std::string& text, std::string* error) {
    std::istringstream in(text);
    DownstreamConfig d;
    std::string word;
    if (!(in >> d.name) || d.name.find('=') != std::string::npos) {
        *error = "downstream '" + text + "': must start with a name";
        return std::nullopt;
    }
    DownstreamWords seen;
    while (in >> word) {
        if (auto ok = parse_downstream_word(d, word, seen); !ok) {
            *error = ok.error();
            return std::nullopt;
        }
    }
    if (auto ok = check_downstream(d, seen); !ok) {
        *error = ok.error();
        return std::nullopt;
    }
    return d;
}

std::optional<StreamThroughCondition> parse_condition(const std::string& text, std::string* error) {
    StreamThroughCondition c;
    if (text == "always") return c;
    if (text.rfind("size-over=", 0) == 0) {
        c.kind = StreamThroughCondition::Kind::size_over;
        if (parse_num(std::string_view(text).substr(10), c.size)) return c;
    } else if (text.rfind("client=", 0) == 0) {
        c.kind = StreamThroughCondition::Kind::client;
        c.cidr = Cidr::parse(std::string_view(text).substr(7));
        if (c.cidr) return c;
    }
    *error = "stream-through-if '" + text + "': want always, size-over=BYTES or client=CIDR";
    return std::nullopt;
}

namespace {

// Options that become parts of Config only after checks.
struct RawOptions {
    std::vector<std::string> listen, downstreams, conditions, egresses, pools, dns_options;
    std::string trusted, refused;
    unsigned client_timeout = 300, pool_idle = 10;
    unsigned auth_timeout = 10, failure_window = 900, lockout = 900, failure_delay_ms = 1000, max_delay_ms = 5000;
};

po::options_description describe(Config& c, RawOptions& raw) {
    po::options_description d("xproxyd options");
    d.add_options()("help,h", "print this help and exit")("version", "print the version and exit")(
        "config,c", po::value(&c.config_file), "config file (long option names, name = value)")(
        "check-config", po::bool_switch(&c.check_config), "check the configuration and exit (0 = valid)")(
        "listen,l", po::value(&raw.listen)->composing(),
        "listener and the downstream it serves: \"inet:HOST:PORT [NAME] [risk=CLASS] [mode=relay|submission] "
        "[tls=starttls|implicit]\" (also inet6:, fd:, systemd; repeatable; default downstream: the first; risk: the "
        "egress pool, outbound; submission: the downstream is the default home MTA)")(
        "downstream,d", po::value(&raw.downstreams)->composing(),
        "\"NAME destinations=ADDR:PORT[,ADDR:PORT] "
        "encoding=proxy-v2|proxy-v1|xclient|xforward|xproxyfrom|xproxy|auto|none "
        "tls=none|may|encrypt|verify tls-name=NAME tls-ca=FILE connect-timeout=S command-timeout=S helo=NAME "
        "hmac-key-file=PATH hmac-key-id=N proxy-unsigned=yes\" "
        "(repeatable); destinations=mx [mx-port=N]: the outbound mode, to the recipients' MX hosts")(
        "egress", po::value(&raw.egresses)->composing(),
        "outbound source: \"NAME address=ADDR helo=NAME\" (repeatable)")(
        "pool", po::value(&raw.pools)->composing(),
        "egresses of a risk class: \"CLASS EGRESS[:WEIGHT][,EGRESS[:WEIGHT]...]\" (repeatable; weight 0: unused)")(
        "dns-server", po::value(&c.dns.servers)->composing(),
        "outbound: ask this server (ADDR or ADDR@PORT, repeatable; default: /etc/resolv.conf)")(
        "dns-trust-anchor", po::value(&c.dns.trust_anchor), "outbound: DNSSEC trust anchor file (DS or DNSKEY)")(
        "dns-option", po::value(&raw.dns_options)->composing(),
        "outbound: a libunbound option, \"NAME: VALUE\" (repeatable)")(
        "refused-destinations", po::value(&raw.refused),
        "outbound: CIDR list never connected to, or \"none\" (default: loopback, private, link-local, ...)")(
        "trusted-upstreams", po::value(&raw.trusted),
        "CIDR list allowed to send XCLIENT, XFORWARD, XPROXYFROM (default: nobody)")(
        "hostname", po::value(&c.hostname), "name in the greeting and EHLO (default: host name)")(
        "user,u", po::value(&c.user), "drop privileges to this user after binding")(
        "threads", po::value(&c.threads)->default_value(1), "worker threads")(
        "log", po::value(&c.log_sink)->default_value("syslog"), "log to syslog, stderr or off")(
        "log-level", po::value(&c.log_level)->default_value("info"), "error, warning, info or debug")(
        "metrics", po::value(&c.metrics),
        "serve Prometheus metrics over HTTP at /metrics on this listener (inet:127.0.0.1:PORT or unix:PATH; "
        "default off)")("tls-cert", po::value(&c.tls_cert), "PEM certificate chain for STARTTLS on the front side")(
        "tls-key", po::value(&c.tls_key), "PEM private key for STARTTLS (mode 0600 or tighter)")(
        "tls-ca", po::value(&c.tls_ca), "CA file for tls=verify downstreams without tls-ca= (default: system store)")(
        "fast-path-threshold", po::value(&c.fast_path_threshold)->default_value(32768),
        "bytes of a message body held in memory before spilling to a private file")(
        "spool-dir", po::value(&c.spool_dir)->default_value("/var/spool/xproxyd"),
        "directory for spill files (created with mode 0700)")(
        "stream-through-if", po::value(&raw.conditions)->composing(),
        "turn the fast path off: always, size-over=BYTES, client=CIDR (repeatable)")(
        "max-line-length", po::value(&c.max_line)->default_value(2048), "longest command line accepted")(
        "max-commands", po::value(&c.max_commands)->default_value(10000), "commands per session")(
        "max-errors", po::value(&c.max_errors)->default_value(20), "erroneous commands before 421")(
        "max-recipients", po::value(&c.max_recipients)->default_value(1000), "recipients per transaction")(
        "max-message-size", po::value(&c.max_message_size)->default_value(52428800), "SIZE limit, bytes (0: none)")(
        "client-timeout", po::value(&raw.client_timeout)->default_value(300), "seconds a client may stay silent")(
        "max-sessions", po::value(&c.max_sessions)->default_value(1000), "sessions at once (more: 421)")(
        "max-sessions-per-client", po::value(&c.max_sessions_per_client)->default_value(50),
        "sessions at once from one client address, IPv6 per /64 (more: 421)")(
        "spill-quota", po::value(&c.spill_quota)->default_value(1073741824),
        "bytes of spill files across all sessions (a message that would exceed it: 452)")(
        "downstream-pool", po::value(&c.pool_size)->default_value(32),
        "idle plain-TCP downstream connections kept per downstream for later sessions (0: none)")(
        "downstream-idle", po::value(&raw.pool_idle)->default_value(10),
        "seconds a kept downstream connection may idle")(
        "directory", po::value(&c.submission.directory),
        "submission: the directory (users, aliases, logins, home MTAs): a file (reloaded at SIGHUP) or an "
        "ldap://, ldaps:// or ldapi:// URL whose path is the search base")(
        "ldap-config", po::value(&c.submission.ldap_config),
        "submission: settings of an LDAP --directory (bind, TLS, state file, schema)")(
        "dovecot-auth", po::value(&c.submission.dovecot_auth),
        "submission: Dovecot's auth service, unix:/PATH or inet:HOST:PORT")(
        "auth-timeout", po::value(&raw.auth_timeout)->default_value(10), "submission: seconds for Dovecot's answer")(
        "auth-max-failures", po::value(&c.submission.address_failures)->default_value(5),
        "submission: failed logins from one address (IPv6: /64) within auth-failure-window before it is locked")(
        "auth-max-user-failures", po::value(&c.submission.user_failures)->default_value(10),
        "submission: failed logins for one user within auth-failure-window before it is locked (0: no per-user "
        "lockout)")("auth-failure-window", po::value(&raw.failure_window)->default_value(900),
                    "submission: seconds a failed login counts")(
        "auth-lockout", po::value(&raw.lockout)->default_value(900),
        "submission: seconds a locked address or user stays locked")(
        "auth-failure-delay", po::value(&raw.failure_delay_ms)->default_value(1000),
        "submission: milliseconds the reply to a failed login waits, times the failures so far")(
        "auth-max-delay", po::value(&raw.max_delay_ms)->default_value(5000),
        "submission: the longest such wait, milliseconds")(
        "auth-table-size", po::value(&c.submission.table_size)->default_value(65536),
        "submission: addresses and users remembered for failed logins (each table)");
    return d;
}

Expected<std::vector<DownstreamConfig>> parse_downstreams(const std::vector<std::string>& texts,
                                                          const daemon::OptionOrigins& origins) {
    std::vector<DownstreamConfig> out;
    std::string err;
    for (const auto& t : texts) {
        auto ds = parse_downstream(t, &err);
        if (!ds) return Failure{origins.locate("downstream", err, t)};
        for (const auto& other : out)
            if (other.name == ds->name)
                return Failure{origins.locate("downstream", "downstream " + ds->name + " defined twice", t)};
        out.push_back(*ds);
    }
    if (out.empty()) return Failure{"at least one --downstream is required"};
    return out;
}

// "SPEC [DOWNSTREAM] [risk=CLASS]": the downstream by name, the first one by default.
Expected<std::vector<Listener>> parse_listeners(std::vector<std::string> texts,
                                                const std::vector<DownstreamConfig>& downstreams,
                                                const daemon::OptionOrigins& origins) {
    if (texts.empty()) texts.push_back("inet:127.0.0.1:10025");
    std::vector<Listener> out;
    for (const auto& l : texts) {
        std::istringstream in(l);
        Listener li{};
        li.origin = origins.where("listen", l);
        auto located = [&](const std::string& why) { return li.origin.empty() ? why : li.origin + ": " + why; };
        std::string name, word;
        in >> li.spec;
        bool options = false, risk_given = false, splice_given = false;  // options come after the name
        bool outbound_option = false, mode_given = false, tls_given = false;
        while (in >> word) {
            if ((word == "mode=submission" || word == "mode=relay") && !mode_given) {
                li.submission = word == "mode=submission";
                mode_given = options = true;
            } else if ((word == "tls=implicit" || word == "tls=starttls") && !tls_given) {
                li.implicit_tls = word == "tls=implicit";
                tls_given = options = true;
            } else if (word.rfind("risk=", 0) == 0 && !risk_given && word.size() > 5) {
                li.risk = word.substr(5);
                risk_given = options = outbound_option = true;
            } else if ((word == "xproxyto=splice" || word == "xproxyto=relay") && !splice_given) {
                li.splice = word == "xproxyto=splice";
                splice_given = options = outbound_option = true;
            } else if (name.empty() && !options && word.find('=') == std::string::npos) {
                name = word;
            } else {
                return Failure{located("listen '" + l +
                                       "': want \"SPEC [DOWNSTREAM] [risk=CLASS] [xproxyto=splice|relay] "
                                       "[mode=relay|submission] [tls=starttls|implicit]\"")};
            }
        }
        li.downstream = downstreams.size();
        if (name.empty()) li.downstream = 0;
        for (std::size_t i = 0; i < downstreams.size(); ++i)
            if (downstreams[i].name == name) li.downstream = i;
        if (li.downstream == downstreams.size())
            return Failure{located("listen '" + l + "': no downstream named " + name)};
        if (outbound_option && !downstreams[li.downstream].mx)
            return Failure{located("listen '" + l + "': risk= and xproxyto= are for a destinations=mx downstream")};
        if (li.submission && downstreams[li.downstream].mx)
            return Failure{located("listen '" + l +
                                   "': mode=submission needs a downstream with destinations= (the "
                                   "default home MTA), not destinations=mx")};
        out.push_back(li);
    }
    return out;
}

// --egress, --pool, and each outbound listener's pool: with pools configured, every
// outbound listener's class must have one (no silent default source address).
Expected<void> parse_egress_pools(Config& c, const RawOptions& raw, const daemon::OptionOrigins& origins) {
    for (const auto& t : raw.egresses) {
        auto e = parse_egress(t);
        if (!e) return Failure{origins.locate("egress", e.error(), t)};
        for (const auto& other : c.egresses)
            if (other.name == e->name)
                return Failure{origins.locate("egress", "egress " + e->name + " defined twice", t)};
        c.egresses.push_back(std::move(*e));
    }
    for (const auto& t : raw.pools) {
        auto p = parse_pool(t, c.egresses);
        if (!p) return Failure{origins.locate("pool", p.error(), t)};
        for (const auto& other : c.pools)
            if (other.risk == p->risk) return Failure{origins.locate("pool", "pool " + p->risk + " defined twice", t)};
        c.pools.push_back(std::move(*p));
    }
    for (auto& li : c.listeners) {
        if (!c.downstreams[li.downstream].mx || c.pools.empty()) continue;
        for (std::size_t i = 0; i < c.pools.size(); ++i)
            if (c.pools[i].risk == li.risk) li.pool = i;
        if (!li.pool)
            return Failure{(li.origin.empty() ? "" : li.origin + ": ") + "listen " + li.spec + ": no --pool for risk " +
                           li.risk};
    }
    if (!c.pools.empty() || !c.egresses.empty()) {
        bool any_mx = false;
        for (const auto& d : c.downstreams) any_mx = any_mx || d.mx;
        if (!any_mx) return Failure{"--egress and --pool need a destinations=mx downstream"};
    }
    return {};
}

Expected<void> parse_dns(Config& c, const RawOptions& raw, bool refused_given, const daemon::OptionOrigins& origins) {
    for (const auto& t : raw.dns_options) {
        const auto colon = t.find(':');
        if (colon == std::string::npos || colon == 0)
            return Failure{origins.locate("dns-option", "dns-option '" + t + "': want \"NAME: VALUE\"", t)};
        c.dns.options.emplace_back(t.substr(0, colon + 1), std::string(trim(std::string_view(t).substr(colon + 1))));
    }
    if (refused_given) {
        if (raw.refused == "none") {
            c.dns.refused = CidrSet{};
        } else {
            auto set = CidrSet::parse(raw.refused);
            if (!set) return Failure{origins.locate("refused-destinations", "refused-destinations: " + set.error())};
            c.dns.refused = *set;
        }
    }
    return {};
}

Expected<std::vector<StreamThroughCondition>> parse_conditions(const std::vector<std::string>& texts,
                                                               const daemon::OptionOrigins& origins) {
    std::vector<StreamThroughCondition> out;
    std::string err;
    for (const auto& t : texts) {
        auto cond = parse_condition(t, &err);
        if (!cond) return Failure{origins.locate("stream-through-if", err, t)};
        out.push_back(*cond);
    }
    return out;
}

// The submission mode needs the directory, Dovecot and TLS (AUTH is only offered over TLS).
Expected<void> check_submission(Config& c, const RawOptions& raw) {
    bool any = false;
    for (const auto& li : c.listeners) {
        const std::string where = (li.origin.empty() ? "" : li.origin + ": ") + "listen " + li.spec + ": ";
        if (li.implicit_tls && c.tls_cert.empty())
            return Failure{where + "tls=implicit needs --tls-cert and --tls-key"};
        if (!li.submission) continue;
        any = true;
        if (c.tls_cert.empty())
            return Failure{where + "mode=submission needs --tls-cert and --tls-key (AUTH is only offered over TLS)"};
        if (c.submission.directory.empty()) return Failure{where + "mode=submission needs --directory"};
        if (c.submission.dovecot_auth.empty()) return Failure{where + "mode=submission needs --dovecot-auth"};
    }
    // Dovecot's auth protocol has no encryption: passwords and verdicts cross the wire in
    // clear, so only over a unix socket or loopback.
    if (const std::string& da = c.submission.dovecot_auth; !da.empty()) {
        std::string why;
        const auto target = DovecotAuth::parse_target(da, &why);
        if (!target) return Failure{"dovecot-auth: " + why};
        if (target->kind == DovecotAuth::Target::Kind::inet && !is_loopback(target->endpoint.addr.to_string()))
            return Failure{"dovecot-auth " + da +
                           ": Dovecot's auth protocol is not encrypted (passwords and verdicts in clear): use "
                           "unix:/PATH or a loopback address"};
    }
    if (!any && (!c.submission.directory.empty() || !c.submission.dovecot_auth.empty()))
        return Failure{"--directory and --dovecot-auth are for a mode=submission listener"};
    auto& s = c.submission;
    if (s.address_failures == 0 || s.table_size == 0 || raw.failure_window == 0 || raw.auth_timeout == 0)
        return Failure{
            "auth-max-failures, auth-table-size, auth-failure-window and "
            "auth-timeout must be positive"};
    s.auth_timeout = std::chrono::seconds(raw.auth_timeout);
    s.failure_window = std::chrono::seconds(raw.failure_window);
    s.lockout = std::chrono::seconds(raw.lockout);
    s.failure_delay = std::chrono::milliseconds(raw.failure_delay_ms);
    s.max_delay = std::chrono::milliseconds(std::max(raw.max_delay_ms, raw.failure_delay_ms));
    return {};
}

Expected<void> check_limits(const Config& c, const daemon::OptionOrigins& origins) {
    if (c.tls_cert.empty() != c.tls_key.empty()) return Failure{"tls-cert and tls-key go together"};
    if (c.max_line < 512)
        return Failure{origins.locate("max-line-length", "max-line-length must be at least 512 (RFC 5321)")};
    if (c.max_sessions == 0 || c.max_sessions_per_client == 0 || c.spill_quota == 0)
        return Failure{"max-sessions, max-sessions-per-client and spill-quota must be positive"};
    return {};
}

// Everything after the options were read; the failure is printed by the caller.
Expected<void> complete(Config& c, const RawOptions& raw, bool trusted_given, bool refused_given,
                        const daemon::OptionOrigins& origins) {
    auto downstreams = parse_downstreams(raw.downstreams, origins);
    if (!downstreams) return Failure{downstreams.error()};
    c.downstreams = std::move(*downstreams);
    auto listeners = parse_listeners(raw.listen, c.downstreams, origins);
    if (!listeners) return Failure{listeners.error()};
    c.listeners = std::move(*listeners);
    if (auto pools = parse_egress_pools(c, raw, origins); !pools) return pools;
    if (auto dns = parse_dns(c, raw, refused_given, origins); !dns) return dns;
    if (trusted_given) {
        auto set = CidrSet::parse(raw.trusted);
        if (!set) return Failure{origins.locate("trusted-upstreams", "trusted-upstreams: " + set.error())};
        c.trusted = *set;
    }
    auto conditions = parse_conditions(raw.conditions, origins);
    if (!conditions) return Failure{conditions.error()};
    c.stream_through = std::move(*conditions);
    if (auto limits = check_limits(c, origins); !limits) return limits;
    if (auto sub = check_submission(c, raw); !sub) return sub;
    if (c.threads == 0) c.threads = 1;
    c.client_timeout = std::chrono::seconds(raw.client_timeout ? raw.client_timeout : 300);
    c.pool_idle = std::chrono::seconds(raw.pool_idle);
    if (c.hostname.empty()) c.hostname = daemon::host_name();
    for (auto& ds : c.downstreams)
        if (ds.helo.empty()) ds.helo = c.hostname;
    return {};
}

}  // namespace

std::optional<Config> parse_config(int argc, char** argv, int& exit_code) {
    Config c;
    RawOptions raw;
    auto desc = describe(c, raw);
    po::variables_map vm;
    daemon::OptionOrigins origins;
    if (!daemon::load_options(daemon::arguments(argc, argv), desc, vm, "xproxyd", "[options]", XPROXY_VERSION,
                              exit_code, nullptr, false, &origins))
        return std::nullopt;
    if (auto done = complete(c, raw, vm.count("trusted-upstreams") > 0, vm.count("refused-destinations") > 0, origins);
        !done) {
        std::cerr << "xproxyd: " << done.error() << "\n";
        exit_code = 1;
        return std::nullopt;
    }
    exit_code = 0;
    return c;
}

}  // namespace xproxy::xproxyd
