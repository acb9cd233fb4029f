// config.cpp: options of xproxyd; see config.hpp.
#include "config.hpp"


#include <algorithm>
#include <boost/program_options.hpp>
#include <cctype>
#include <iostream>
#include <sstream>

#include <xproxy/daemon/options.hpp>
#include <xproxy/base/text.hpp>

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

std::optional<DownstreamConfig> parse_downstream(const std::string& text, std::string* error) {
    std::istringstream in(text);
    DownstreamConfig d;
    std::string word;
    bool tls_given = false, key_id_given = false;
    if (!(in >> d.name) || d.name.find('=') != std::string::npos) {
        *error = "downstream '" + text + "': must start with a name";
        return std::nullopt;
    }
    while (in >> word) {
        auto eq = word.find('=');
        std::string key = word.substr(0, eq), value = eq == std::string::npos ? "" : word.substr(eq + 1);
        bool ok = true;
        if (key == "destinations") {
            std::size_t start = 0;
            while (start <= value.size()) {
                auto comma = value.find(',', start);
                auto item = value.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
                auto dest = parse_destination(item);
                if (!dest) {
                    *error = "downstream " + d.name + ": bad destination '" + item + "' (want ADDR:PORT)";
                    return std::nullopt;
                }
                d.destinations.push_back(*dest);
                if (comma == std::string::npos) break;
                start = comma + 1;
            }
        } else if (key == "encoding") {
            auto e = parse_encoding(value);
            ok = e.has_value();
            if (e) d.encoding = *e;
        } else if (key == "tls") {
            tls_given = true;
            if (value == "none" || value == "off") d.tls = TlsMode::none;
            else if (value == "may") d.tls = TlsMode::may;
            else if (value == "encrypt") d.tls = TlsMode::encrypt;
            else if (value == "verify") d.tls = TlsMode::verify;
            else if (value == "opportunistic" || value == "required") {
                *error = "downstream " + d.name + ": tls=" + value +
                         " is gone: say tls=may, tls=encrypt (unauthenticated) or tls=verify";
                return std::nullopt;
            } else {
                ok = false;
            }
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
            key_id_given = true;
            ok = parse_num(value, d.hmac_key_id);
        } else if (key == "proxy-unsigned") {
            ok = value == "yes" || value == "no";
            d.proxy_unsigned = value == "yes";
        } else {
            *error = "downstream " + d.name + ": unknown setting '" + key + "'";
            return std::nullopt;
        }
        if (!ok) {
            *error = "downstream " + d.name + ": bad value in '" + word + "'";
            return std::nullopt;
        }
    }
    if (d.destinations.empty()) {
        *error = "downstream " + d.name + ": no destinations=";
        return std::nullopt;
    }
    bool local = true;
    for (const auto& dest : d.destinations) local = local && is_loopback(dest.host);
    if (!tls_given) d.tls = local ? TlsMode::none : TlsMode::verify;  // closed default
    const bool proxy = d.encoding == Encoding::proxy_v1 || d.encoding == Encoding::proxy_v2;
    const std::string enc = std::string("encoding=") + to_string(d.encoding);
    if ((!d.hmac_key_file.empty() || key_id_given) && d.encoding != Encoding::proxy_v2) {
        *error = "downstream " + d.name + ": hmac-key-file= and hmac-key-id= need encoding=proxy-v2 (" + enc +
                 " cannot carry a signature)";
        return std::nullopt;
    }
    if (key_id_given && d.hmac_key_file.empty()) {
        *error = "downstream " + d.name + ": hmac-key-id= needs hmac-key-file=";
        return std::nullopt;
    }
    if (d.proxy_unsigned && (!proxy || !d.hmac_key_file.empty())) {
        *error = "downstream " + d.name + ": proxy-unsigned=yes is for an unsigned encoding=proxy-v1 or proxy-v2 only";
        return std::nullopt;
    }
    // The PROXY header goes before STARTTLS: TLS cannot protect it, only a signature can.
    if (proxy && d.hmac_key_file.empty() && d.tls != TlsMode::none) {
        *error = "downstream " + d.name + ": " + enc + " is sent before STARTTLS, which cannot protect it" +
                 (tls_given ? "" : " (tls=verify is the default off this machine)") +
                 ": write encoding=proxy-v2 hmac-key-file=PATH (the key of the downstream's XPROXY_HMAC_KEY_FILE)" +
                 (local ? ", or tls=none" : ", or tls=none proxy-unsigned=yes only on a segment you trust completely");
        return std::nullopt;
    }
    if (proxy && d.hmac_key_file.empty() && !local && !d.proxy_unsigned) {
        *error = "downstream " + d.name + ": " + enc +
                 " off this machine can be rewritten on the way: write encoding=proxy-v2 hmac-key-file=PATH (the key "
                 "of the downstream's XPROXY_HMAC_KEY_FILE), or proxy-unsigned=yes only on a segment you trust "
                 "completely";
        return std::nullopt;
    }
    if (!d.tls_ca.empty() && d.tls != TlsMode::verify) {
        *error = "downstream " + d.name + ": tls-ca= needs tls=verify";
        return std::nullopt;
    }
    if (!d.tls_name.empty() && d.tls == TlsMode::none) {
        *error = "downstream " + d.name + ": tls-name= needs TLS (tls=may, encrypt or verify)";
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

std::optional<Config> parse_config(int argc, char** argv, int& exit_code) {
    Config c;
    std::vector<std::string> listen, downstreams, conditions;
    std::string trusted;
    unsigned client_timeout = 300, pool_idle = 10;
    po::options_description d("xproxyd options");
    d.add_options()
        ("help,h", "print this help and exit")
        ("version", "print the version and exit")
        ("config,c", po::value(&c.config_file), "config file (long option names, name = value)")
        ("check-config", po::bool_switch(&c.check_config), "check the configuration and exit (0 = valid)")
        ("listen,l", po::value(&listen)->composing(),
         "listener and the downstream it serves: \"inet:HOST:PORT [NAME]\" (also inet6:, unix:, fd:, systemd; "
         "repeatable; default downstream: the first)")
        ("downstream,d", po::value(&downstreams)->composing(),
         "\"NAME destinations=ADDR:PORT[,ADDR:PORT] encoding=proxy-v2|proxy-v1|xclient|xforward|xproxyfrom|none "
         "tls=none|may|encrypt|verify tls-name=NAME tls-ca=FILE connect-timeout=S command-timeout=S helo=NAME "
         "hmac-key-file=PATH hmac-key-id=N proxy-unsigned=yes\" "
         "(repeatable)")
        ("trusted-upstreams", po::value(&trusted), "CIDR list allowed to send XCLIENT, XFORWARD, XPROXYFROM (default: nobody)")
        ("hostname", po::value(&c.hostname), "name in the greeting and EHLO (default: host name)")
        ("user,u", po::value(&c.user), "drop privileges to this user after binding")
        ("threads", po::value(&c.threads)->default_value(1), "worker threads")
        ("log", po::value(&c.log_sink)->default_value("syslog"), "log to syslog, stderr or off")
        ("log-level", po::value(&c.log_level)->default_value("info"), "error, warning, info or debug")
        ("tls-cert", po::value(&c.tls_cert), "PEM certificate chain for STARTTLS on the front side")
        ("tls-key", po::value(&c.tls_key), "PEM private key for STARTTLS (mode 0600 or tighter)")
        ("tls-ca", po::value(&c.tls_ca), "CA file for tls=verify downstreams without tls-ca= (default: system store)")
        ("fast-path-threshold", po::value(&c.fast_path_threshold)->default_value(32768),
         "bytes of a message body held in memory before spilling to a private file")
        ("spool-dir", po::value(&c.spool_dir)->default_value("/var/spool/xproxyd"),
         "directory for spill files (created with mode 0700)")
        ("stream-through-if", po::value(&conditions)->composing(),
         "turn the fast path off: always, size-over=BYTES, client=CIDR (repeatable)")
        ("max-line-length", po::value(&c.max_line)->default_value(2048), "longest command line accepted")
        ("max-commands", po::value(&c.max_commands)->default_value(10000), "commands per session")
        ("max-errors", po::value(&c.max_errors)->default_value(20), "erroneous commands before 421")
        ("max-recipients", po::value(&c.max_recipients)->default_value(1000), "recipients per transaction")
        ("max-message-size", po::value(&c.max_message_size)->default_value(52428800), "SIZE limit, bytes (0: none)")
        ("client-timeout", po::value(&client_timeout)->default_value(300), "seconds a client may stay silent")
        ("max-sessions", po::value(&c.max_sessions)->default_value(1000), "sessions at once (more: 421)")
        ("max-sessions-per-client", po::value(&c.max_sessions_per_client)->default_value(50),
         "sessions at once from one client address, IPv6 per /64 (more: 421)")
        ("spill-quota", po::value(&c.spill_quota)->default_value(1073741824),
         "bytes of spill files across all sessions (a message that would exceed it: 452)")
        ("downstream-pool", po::value(&c.pool_size)->default_value(32),
         "idle plain-TCP downstream connections kept per downstream for later sessions (0: none)")
        ("downstream-idle", po::value(&pool_idle)->default_value(10), "seconds a kept downstream connection may idle");
    po::variables_map vm;
    if (!daemon::load_options(daemon::arguments(argc, argv), d, vm, "xproxyd", "[options]", XPROXY_VERSION, exit_code))
        return std::nullopt;
    exit_code = 1;
    std::string err;
    for (const auto& t : downstreams) {
        auto ds = parse_downstream(t, &err);
        if (!ds) {
            std::cerr << "xproxyd: " << err << "\n";
            return std::nullopt;
        }
        for (const auto& other : c.downstreams)
            if (other.name == ds->name) {
                std::cerr << "xproxyd: downstream " << ds->name << " defined twice\n";
                return std::nullopt;
            }
        c.downstreams.push_back(*ds);
    }
    if (c.downstreams.empty()) {
        std::cerr << "xproxyd: at least one --downstream is required\n";
        return std::nullopt;
    }
    if (listen.empty()) listen.push_back("inet:127.0.0.1:10025");
    for (const auto& l : listen) {
        std::istringstream in(l);
        Listener li{};
        std::string name, extra;
        in >> li.spec >> name >> extra;
        if (!extra.empty()) {
            std::cerr << "xproxyd: listen '" << l << "': want \"SPEC [DOWNSTREAM]\"\n";
            return std::nullopt;
        }
        li.downstream = c.downstreams.size();
        if (name.empty()) li.downstream = 0;
        for (std::size_t i = 0; i < c.downstreams.size(); ++i)
            if (c.downstreams[i].name == name) li.downstream = i;
        if (li.downstream == c.downstreams.size()) {
            std::cerr << "xproxyd: listen '" << l << "': no downstream named " << name << "\n";
            return std::nullopt;
        }
        c.listeners.push_back(li);
    }
    if (vm.count("trusted-upstreams")) {
        auto set = CidrSet::parse(trusted);
        if (!set) {
            std::cerr << "xproxyd: trusted-upstreams: " << set.error() << "\n";
            return std::nullopt;
        }
        c.trusted = *set;
    }
    for (const auto& t : conditions) {
        auto cond = parse_condition(t, &err);
        if (!cond) {
            std::cerr << "xproxyd: " << err << "\n";
            return std::nullopt;
        }
        c.stream_through.push_back(*cond);
    }
    if (c.tls_cert.empty() != c.tls_key.empty()) {
        std::cerr << "xproxyd: tls-cert and tls-key go together\n";
        return std::nullopt;
    }
    if (c.max_line < 512) {
        std::cerr << "xproxyd: max-line-length must be at least 512 (RFC 5321)\n";
        return std::nullopt;
    }
    if (c.max_sessions == 0 || c.max_sessions_per_client == 0 || c.spill_quota == 0) {
        std::cerr << "xproxyd: max-sessions, max-sessions-per-client and spill-quota must be positive\n";
        return std::nullopt;
    }
    if (c.threads == 0) c.threads = 1;
    c.client_timeout = std::chrono::seconds(client_timeout ? client_timeout : 300);
    c.pool_idle = std::chrono::seconds(pool_idle);
    if (c.hostname.empty()) c.hostname = daemon::host_name();
    for (auto& ds : c.downstreams)
        if (ds.helo.empty()) ds.helo = c.hostname;
    exit_code = 0;
    return c;
}

}  // namespace xproxy::xproxyd
