// wire_smtp.cpp: xproxy-wire subcommands for the SMTP source-forwarding commands.
//   xclient-encode  --addr IP --port N [--helo H] [--name N] [--proto P] [--login L]
//                   [--dest-addr IP --dest-port N] [--advertised "NAME ADDR ..."]
//   xforward-encode --addr IP --port N [--helo H] [--name N] [--proto P] [--ident I]
//                   [--source LOCAL|REMOTE] [--advertised "..."]
//       print the command line(s), CRLF-terminated, in the order to send them
//   smtp-decode     one XCLIENT / XFORWARD line on stdin -> name=value lines
// Exit status: 0 ok, 1 input rejected, 2 usage error.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <map>
#include <string>

#include "wire_command.hpp"
#include "xproxy/xclient.hpp"

namespace {

using namespace xproxy;
using namespace xproxy::smtp;

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

bool build_info(std::map<std::string, std::string>& o, SourceInfo& si) {
    auto addr = IpAddress::parse_mta(o["addr"]);
    unsigned long port = 0;
    try {
        port = std::stoul(o.count("port") ? o["port"] : "0");
    } catch (...) {
        port = 70000;
    }
    if (!addr || port > 65535) {
        std::fprintf(stderr, "xproxy-wire: --addr IP and --port N (0-65535) are required\n");
        return false;
    }
    si.client = Endpoint{*addr, static_cast<std::uint16_t>(port)};
    if (o.count("dest-addr")) {
        auto d = IpAddress::parse_mta(o["dest-addr"]);
        if (!d) {
            std::fprintf(stderr, "xproxy-wire: bad --dest-addr\n");
            return false;
        }
        si.server = Endpoint{*d, static_cast<std::uint16_t>(std::stoul(o.count("dest-port") ? o["dest-port"] : "25"))};
    }
    si.helo = o["helo"];
    si.ptr_name = o["name"];
    si.protocol = o.count("proto") ? o["proto"] : "ESMTP";
    si.login = o["login"];
    si.session_id = o["ident"];
    return true;
}

int emit(const std::vector<std::string>& lines) {
    if (lines.empty()) {
        std::fprintf(stderr, "xproxy-wire: nothing to send (a value does not fit in a 512-byte command)\n");
        return 1;
    }
    for (const auto& l : lines) std::fwrite(l.data(), 1, l.size(), stdout);
    return 0;
}

int xclient_encode(const std::vector<std::string_view>& args) {
    std::map<std::string, std::string> o;
    if (!parse_args(args, {"addr", "port", "helo", "name", "proto", "login", "dest-addr", "dest-port", "advertised"}, o))
        return 2;
    SourceInfo si;
    if (!build_info(o, si)) return 2;
    return emit(encode_xclient(si, parse_ehlo_keyword(o["advertised"])));
}

int xforward_encode(const std::vector<std::string_view>& args) {
    std::map<std::string, std::string> o;
    if (!parse_args(args, {"addr", "port", "helo", "name", "proto", "ident", "source", "advertised"}, o)) return 2;
    SourceInfo si;
    if (!build_info(o, si)) return 2;
    return emit(encode_xforward(si, parse_ehlo_keyword(o["advertised"]), o.count("source") ? o["source"] : "REMOTE"));
}

int smtp_decode(const std::vector<std::string_view>& args) {
    if (!args.empty()) return 2;
    std::string line((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    std::string err;
    std::string verb = line.substr(0, line.find(' '));
    for (auto& c : verb) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    std::optional<Command> cmd;
    if (verb == "XCLIENT") cmd = parse_xclient(line, &err);
    else if (verb == "XFORWARD") cmd = parse_xforward(line, &err);
    else err = "unsupported command";
    if (!cmd) {
        std::printf("error=%s\n", err.c_str());
        return 1;
    }
    std::printf("verb=%s\n", cmd->verb.c_str());
    for (const auto& a : cmd->attrs) {
        const char* special = a.status == ValueStatus::unavailable ? "[UNAVAILABLE]"
                              : a.status == ValueStatus::tempunavail ? "[TEMPUNAVAIL]" : nullptr;
        std::string v = special ? special : a.value;
        for (auto& c : v)
            if (static_cast<unsigned char>(c) < 32 || c == 127) c = '?';
        std::printf("%s=%s\n", a.name.c_str(), v.c_str());
    }
    SourceInfo si;
    if (!apply_command(*cmd, si, &err)) {
        std::printf("error=%s\n", err.c_str());
        return 1;
    }
    return 0;
}

const xproxy::wire::Registrar xclient_cmd({"xclient-encode",
    "xclient-encode --addr IP --port N [--helo H] [--name N] [--proto P] [--login L] [--dest-addr IP --dest-port N] "
    "[--advertised \"NAME ADDR ...\"] - print XCLIENT command(s)", xclient_encode});
const xproxy::wire::Registrar xforward_cmd({"xforward-encode",
    "xforward-encode --addr IP --port N [--helo H] [--name N] [--proto P] [--ident I] [--source LOCAL|REMOTE] "
    "[--advertised \"...\"] - print XFORWARD command(s)", xforward_encode});
const xproxy::wire::Registrar decode_cmd({"smtp-decode", "smtp-decode - parse one XCLIENT/XFORWARD line from stdin",
                                          smtp_decode});

}  // namespace
