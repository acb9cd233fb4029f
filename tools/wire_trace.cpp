// wire_trace.cpp: xproxy-wire subcommands for the signed trace header.
//   trace-sign   --keyring F --ip IP --port N [--helo H] [--name N] [--proto P]
//                [--login L] [--sid S] [--by B] [--time T] --sender S [--message-id M]
//                [--binding mid|env]                 -> prints "X-Original-Source: ..."
//   trace-verify --keyring F --sender S [--message-id M] [--now T] [--max-age S]
//                reads the header (field or value, folded or not) on stdin and prints
//                result=VERDICT and, when ok, the decoded values. Exit 0 only for ok.
#include <cstdio>
#include <ctime>
#include <iostream>
#include <iterator>
#include <map>
#include <set>

#include "wire_command.hpp"
#include "xproxy/trace_header.hpp"

namespace {

using namespace xproxy;
using namespace xproxy::trace;

bool options(const std::vector<std::string_view>& args, const std::set<std::string>& known,
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

std::optional<KeyRing> load(std::map<std::string, std::string>& o) {
    std::string err;
    if (!o.count("keyring")) {
        std::fprintf(stderr, "xproxy-wire: --keyring FILE is required\n");
        return std::nullopt;
    }
    auto k = KeyRing::load_file(o["keyring"], &err);
    if (!k) std::fprintf(stderr, "xproxy-wire: %s\n", err.c_str());
    return k;
}

std::int64_t num(std::map<std::string, std::string>& o, const char* name, std::int64_t dflt) {
    if (!o.count(name)) return dflt;
    try {
        return std::stoll(o[name]);
    } catch (...) {
        return -1;
    }
}

int trace_sign(const std::vector<std::string_view>& args) {
    std::map<std::string, std::string> o;
    if (!options(args, {"keyring", "ip", "port", "helo", "name", "proto", "login", "sid", "by", "time", "sender",
                        "message-id", "binding", "tls"},
                 o))
        return 2;
    auto keys = load(o);
    if (!keys) return 2;
    SourceInfo si;
    auto ip = IpAddress::parse_mta(o["ip"]);
    std::int64_t port = num(o, "port", 0);
    if (!ip || port < 0 || port > 65535) {
        std::fprintf(stderr, "xproxy-wire: --ip and --port are required\n");
        return 2;
    }
    si.client = Endpoint{*ip, static_cast<std::uint16_t>(port)};
    si.helo = o["helo"];
    si.ptr_name = o["name"];
    si.protocol = o.count("proto") ? o["proto"] : "ESMTP";
    si.login = o["login"];
    si.session_id = o["sid"];
    BindingKind kind = o["binding"] == "env" ? BindingKind::envelope : BindingKind::message_id;
    std::string v = sign(si, o.count("by") ? o["by"] : "xproxy-wire", num(o, "time", std::time(nullptr)), kind,
                         {o["sender"], o["message-id"]}, *keys);
    std::printf("%s\n", format_field(v).c_str());
    return 0;
}

int trace_verify(const std::vector<std::string_view>& args) {
    std::map<std::string, std::string> o;
    if (!options(args, {"keyring", "sender", "message-id", "now", "max-age"}, o)) return 2;
    auto keys = load(o);
    if (!keys) return 2;
    std::string in((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    auto r = verify(in, {o["sender"], o["message-id"]}, *keys, num(o, "now", std::time(nullptr)),
                    num(o, "max-age", 86400));
    std::printf("result=%s\n", to_string(r.verdict));
    if (r.verdict != Verdict::ok) {
        std::printf("reason=%s\n", r.reason.c_str());
        return 1;
    }
    auto clean = [](std::string s) {
        for (auto& c : s)
            if (static_cast<unsigned char>(c) < 32 || c == 127) c = '?';
        return s;
    };
    std::printf("ip=%s\nport=%u\nhelo=%s\nname=%s\nproto=%s\nlogin=%s\nsid=%s\nby=%s\nkid=%s\nt=%lld\nbinding=%s\n",
                r.source.client ? r.source.client->addr.to_string().c_str() : "",
                r.source.client ? r.source.client->port : 0u, clean(r.source.helo).c_str(),
                clean(r.source.ptr_name).c_str(), clean(r.source.protocol).c_str(), clean(r.source.login).c_str(),
                clean(r.source.session_id).c_str(), clean(r.by).c_str(), r.key_id.c_str(),
                static_cast<long long>(r.source.time), r.binding == BindingKind::envelope ? "env" : "mid");
    return 0;
}

const xproxy::wire::Registrar sign_cmd({"trace-sign",
    "trace-sign --keyring F --ip IP --port N --sender S [--message-id M] [--binding mid|env] [--helo H] [--name N] "
    "[--proto P] [--login L] [--sid S] [--by B] [--time T] - print a signed X-Original-Source field", trace_sign});
const xproxy::wire::Registrar verify_cmd({"trace-verify",
    "trace-verify --keyring F --sender S [--message-id M] [--now T] [--max-age S] - verify a header read from stdin",
    trace_verify});

}  // namespace
