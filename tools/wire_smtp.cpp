// wire_smtp.cpp: xproxy-wire subcommands for the SMTP source-forwarding commands.
//   xclient-encode  --addr IP --port N [--helo H] [--name N] [--proto P] [--login L]
//                   [--dest-addr IP --dest-port N] [--advertised "NAME ADDR ..."]
//   xforward-encode --addr IP --port N [--helo H] [--name N] [--proto P] [--ident I]
//                   [--source LOCAL|REMOTE] [--advertised "..."]
//       print the command line(s), CRLF-terminated, in the order to send them; without
//       --advertised every attribute is sent
//   smtp-decode     XCLIENT / XFORWARD / XPROXYFROM / XPROXY / XPROXYTO on stdin: one
//                   command line, or the lines of one split command -> verb=... and
//                   NAME=value lines (values decoded; bytes outside 32..126 shown as '?')
// Exit status: 0 ok, 1 input rejected (error=... on stdout), 2 usage error.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <map>
#include <string>
#include <variant>

#include "wire_command.hpp"
#include <xproxy/base/text.hpp>
#include <xproxy/wire/xclient.hpp>
#include <xproxy/wire/xproxy_commands.hpp>

namespace {

using namespace xproxy;
using namespace xproxy::smtp;

constexpr std::size_t kMaxInput = 65536;

bool parse_args(const std::vector<std::string_view>& args, const std::set<std::string>& known,
                std::map<std::string, std::string>& out) {
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string k(args[i]);
        if (k.rfind("--", 0) != 0 || !known.count(k.substr(2)) || i + 1 >= args.size()) {
            std::fprintf(stderr, "xproxy-wire: bad or incomplete option '%s'\n", k.c_str());
            return false;
        }
        out[k.substr(2)] = std::string(args[++i]);
    }
    return true;
}

std::optional<Endpoint> endpoint(const std::string& addr, const std::string& port, const char* what) {
    auto a = IpAddress::parse_mta(addr);
    auto p = parse_port(port);
    if (!a || !p) {
        std::fprintf(stderr, "xproxy-wire: %s needs a valid address and port (0-65535)\n", what);
        return std::nullopt;
    }
    return Endpoint{*a, *p};
}

bool build_info(std::map<std::string, std::string>& o, SourceInfo& si) {
    auto client = endpoint(o["addr"], o["port"], "--addr/--port");
    if (!client) return false;
    si.client = client;
    if (o.count("dest-addr")) {
        auto server = endpoint(o["dest-addr"], o.count("dest-port") ? o["dest-port"] : "25", "--dest-addr/--dest-port");
        if (!server) return false;
        si.server = server;
    }
    si.helo = o["helo"];
    si.ptr_name = o["name"];
    si.protocol = o.count("proto") ? o["proto"] : "ESMTP";
    si.login = o["login"];
    si.session_id = o["ident"];
    return true;
}

Advertised advertised(std::map<std::string, std::string>& o) {
    if (!o.count("advertised")) return std::nullopt;
    return parse_ehlo_keyword(o["advertised"]);
}

int emit(const Encoded& e) {
    if (!e) {
        std::fprintf(stderr, "xproxy-wire: cannot encode: %s\n", e.error.c_str());
        return 1;
    }
    for (const auto& l : e.lines) std::fwrite(l.data(), 1, l.size(), stdout);
    return 0;
}

int xclient_encode(const std::vector<std::string_view>& args) {
    std::map<std::string, std::string> o;
    if (!parse_args(args, {"addr", "port", "helo", "name", "proto", "login", "dest-addr", "dest-port", "advertised"},
                    o))
        return 2;
    SourceInfo si;
    if (!build_info(o, si)) return 2;
    return emit(encode_xclient(si, advertised(o)));
}

int xforward_encode(const std::vector<std::string_view>& args) {
    std::map<std::string, std::string> o;
    if (!parse_args(args, {"addr", "port", "helo", "name", "proto", "ident", "source", "advertised"}, o)) return 2;
    SourceInfo si;
    if (!build_info(o, si)) return 2;
    const std::string src = to_upper(o.count("source") ? o["source"] : "REMOTE");
    if (src != "LOCAL" && src != "REMOTE") {
        std::fprintf(stderr, "xproxy-wire: --source is LOCAL or REMOTE\n");
        return 2;
    }
    return emit(encode_xforward(si, advertised(o), src == "LOCAL" ? XforwardSource::local : XforwardSource::remote));
}

// ---- smtp-decode ----

void print(std::string_view name, std::string_view value) {
    std::string v;
    for (char c : value) v += (c >= 32 && c < 127) ? c : '?';
    std::printf("%.*s=%s\n", static_cast<int>(name.size()), name.data(), v.c_str());
}

int reject(const std::string& why) {
    print("error", why);
    return 1;
}

void print_xproxy(const XproxyCommand& cmd) {
    const char* b[] = {"False", "True"};
    if (const auto* f = std::get_if<XproxyFrom>(&cmd)) {
        print("verb", "XPROXYFROM");
        print("SID", f->sid);
        print("IP", f->source.addr.to_mta_string());
        print("PORT", std::to_string(f->source.port));
        if (!f->helo.empty()) print("HELO", f->helo);
        if (!f->login.empty()) print("LOGIN", f->login);
        if (!f->proto.empty()) print("PROTO", f->proto);
    } else if (const auto* x = std::get_if<Xproxy>(&cmd)) {
        print("verb", "XPROXY");
        print("SID", x->sid);
        print("IP", x->source.addr.to_mta_string());
        print("PORT", std::to_string(x->source.port));
        print("DOMAIN", x->domain);
        if (!x->login.empty()) print("LOGIN", x->login);
    } else if (const auto* t = std::get_if<XproxyTo>(&cmd)) {
        print("verb", "XPROXYTO");
        std::string list;
        for (const auto& d : t->destinations) list += (list.empty() ? "[" : ",[") + d.to_mta_string() + "]";
        print("DESTINATIONS", list);
        print("FORCEHELO", b[t->force_helo]);
        print("SHOULDSKIPTLS", b[t->should_skip_tls]);
        print("PORT", std::to_string(t->port));
        print("REQUIRETLS", b[t->require_tls]);
        print("REQUIREOORG", b[t->require_oorg]);
        if (!t->tls_auth_level.empty()) print("TLSAUTHLEVEL", t->tls_auth_level);
        if (!t->risk.empty()) print("RISK", t->risk);
        if (!t->session_id.empty()) print("SESSIONID", t->session_id);
    }
}

int smtp_decode(const std::vector<std::string_view>& args) {
    if (!args.empty()) return 2;
    std::string input;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) {
        input.append(buf, n);
        if (input.size() > kMaxInput) return reject("input longer than 65536 bytes");
    }
    std::vector<std::string> lines;
    std::size_t pos = 0;
    while (pos < input.size()) {
        auto nl = input.find('\n', pos);
        std::size_t end = nl == std::string::npos ? input.size() : nl + 1;
        lines.push_back(input.substr(pos, end - pos));
        pos = end;
    }
    if (lines.empty()) return reject("no command line on stdin");
    const std::string verb = to_upper(lines[0].substr(0, lines[0].find_first_of(" \t\r\n")));

    if (verb == "XCLIENT" || verb == "XFORWARD") {
        Xclient xc;
        Xforward xf;
        for (const auto& l : lines) {
            if (verb == "XCLIENT") {
                auto x = parse_xclient(l);
                if (!x) return reject(x.error());
                merge(xc, *x);
            } else {
                auto x = parse_xforward(l);
                if (!x) return reject(x.error());
                merge(xf, *x);
            }
        }
        print("verb", verb);
        for (const auto& a : verb == "XCLIENT" ? to_attributes(xc) : to_attributes(xf))
            print(a.name, a.status == ValueStatus::value ? a.value : format_attribute(a).substr(a.name.size() + 1));
        return 0;
    }
    if (verb != "XPROXYFROM" && verb != "XPROXY" && verb != "XPROXYTO")
        return reject("unsupported command (XCLIENT, XFORWARD, XPROXYFROM, XPROXY or XPROXYTO)");
    XproxyAccumulator acc;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        auto r = acc.add(lines[i]);
        if (r.invalid()) return reject(acc.error());
        if (r.complete()) {
            if (i + 1 != lines.size()) return reject("lines after the command's last line");
            print_xproxy(acc.command());
            return 0;
        }
    }
    return reject("LAST=True never came: the command is incomplete");
}

const xproxy::wire::Registrar xclient_cmd(
    {"xclient-encode",
     "xclient-encode --addr IP --port N [--helo H] [--name N] [--proto P] [--login L] [--dest-addr IP --dest-port N] "
     "[--advertised \"NAME ADDR ...\"] - print XCLIENT command(s)",
     xclient_encode});
const xproxy::wire::Registrar xforward_cmd(
    {"xforward-encode",
     "xforward-encode --addr IP --port N [--helo H] [--name N] [--proto P] [--ident I] [--source LOCAL|REMOTE] "
     "[--advertised \"...\"] - print XFORWARD command(s)",
     xforward_encode});
const xproxy::wire::Registrar decode_cmd(
    {"smtp-decode",
     "smtp-decode - parse an XCLIENT/XFORWARD/XPROXYFROM/XPROXY/XPROXYTO command (or a split one) from stdin",
     smtp_decode});

}  // namespace
