// wire_trace.cpp: xproxy-wire subcommands for the signed trace header
// (doc/wire-formats.md).
//   trace-sign   --keyring F --ip IP --port N --sender S [--message-id M] [--binding mid|env]
//                [--helo H] [--name N] [--proto P] [--tls V/C/BITS[/FP]] [--login L]
//                [--sid S] [--by B] [--time T]
//                prints the folded field "X-Original-Source: ..." (CRLF between lines).
//   trace-verify --keyring F --sender S [--message-id M] [--now T] [--max-age S]
//                [--max-future S]
//                reads a header on stdin (the field or only its value, folded or not) and
//                prints result=VERDICT, reason=..., and the decoded values (escaped).
//   trace        MESSAGE_FILE --keyring F [--sender S] [--now T] [--max-age S] [--max-future S]
//                lists every X-Original-Source field and the Received chain of a
//                delivered message, verifies each field and prints the verified original
//                client with the hop that vouched for it, or why there is none
//                (message_trace.hpp).
// Exit status: 0 signed / verified, 1 verification failed, 2 usage or key ring error.
#include <charconv>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "message_trace.hpp"
#include "wire_command.hpp"
#include <xproxy/base/escape.hpp>
#include <xproxy/base/text.hpp>
#include <xproxy/wire/trace_header.hpp>

namespace {

using namespace xproxy;

using Options = std::map<std::string, std::string>;

bool parse_options(const std::vector<std::string_view>& args, const std::set<std::string>& known, Options& out) {
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string k(args[i]);
        if (k.rfind("--", 0) != 0 || !known.count(k.substr(2)) || i + 1 >= args.size()) {
            std::fprintf(stderr, "xproxy-wire: unknown or incomplete option '%s'\n", escape(k).c_str());
            return false;
        }
        out[k.substr(2)] = std::string(args[++i]);
    }
    return true;
}

std::optional<std::int64_t> number(const Options& o, const char* name, std::int64_t dflt) {
    auto it = o.find(name);
    if (it == o.end()) return dflt;
    std::int64_t v = 0;
    const auto& s = it->second;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size()) {
        std::fprintf(stderr, "xproxy-wire: --%s needs a number\n", name);
        return std::nullopt;
    }
    return v;
}

std::optional<KeyRing> load_keys(const Options& o) {
    auto it = o.find("keyring");
    if (it == o.end()) {
        std::fprintf(stderr, "xproxy-wire: --keyring FILE is required\n");
        return std::nullopt;
    }
    auto k = KeyRing::load_file(it->second);
    if (!k) {
        std::fprintf(stderr, "xproxy-wire: %s\n", k.error().c_str());
        return std::nullopt;
    }
    return std::move(*k);
}

std::string get(const Options& o, const char* name) {
    auto it = o.find(name);
    return it == o.end() ? std::string() : it->second;
}

// --tls VERSION/CIPHER/BITS[/FINGERPRINT]
bool parse_tls(const std::string& s, TlsInfo& tls) {
    const auto a = s.find('/');
    const auto b = a == std::string::npos ? a : s.find('/', a + 1);
    if (b == std::string::npos) return false;
    const auto c = s.find('/', b + 1);
    tls.version = s.substr(0, a);
    tls.cipher = s.substr(a + 1, b - a - 1);
    const std::string bits = s.substr(b + 1, c == std::string::npos ? std::string::npos : c - b - 1);
    if (c != std::string::npos) tls.peer_fingerprint = s.substr(c + 1);
    const auto v = parse_decimal<unsigned>(bits);
    tls.bits = v.value_or(0);
    return !tls.version.empty() && v;
}

int trace_sign(const std::vector<std::string_view>& args) {
    Options o;
    if (!parse_options(args,
                       {"keyring", "ip", "port", "helo", "name", "proto", "tls", "login", "sid", "by", "time", "sender",
                        "message-id", "binding"},
                       o))
        return 2;
    auto ip = IpAddress::parse_mta(get(o, "ip"));
    auto port = number(o, "port", -1);
    auto t = number(o, "time", static_cast<std::int64_t>(std::time(nullptr)));
    if (!ip || !port || *port < 0 || *port > 65535) {
        std::fprintf(stderr, "xproxy-wire: --ip IP and --port N (0-65535) are required\n");
        return 2;
    }
    if (!t || *t < 0) {
        std::fprintf(stderr, "xproxy-wire: --time must be unix seconds\n");
        return 2;
    }
    MessageBinding binding;
    const std::string kind = o.count("binding") ? get(o, "binding") : "mid";
    if (kind != "mid" && kind != "env") {
        std::fprintf(stderr, "xproxy-wire: --binding is mid or env\n");
        return 2;
    }
    binding.kind = kind == "env" ? TraceBinding::envelope : TraceBinding::message_id;
    if (!o.count("sender") || (binding.kind == TraceBinding::message_id && !o.count("message-id"))) {
        std::fprintf(stderr, "xproxy-wire: --sender S is required, and --message-id M with --binding mid\n");
        return 2;
    }
    binding.sender = get(o, "sender");
    binding.message_id = get(o, "message-id");
    SourceInfo si;
    si.client = Endpoint{*ip, static_cast<std::uint16_t>(*port)};
    si.helo = get(o, "helo");
    si.ptr_name = get(o, "name");
    si.protocol = get(o, "proto");
    si.login = get(o, "login");
    si.session_id = get(o, "sid");
    if (o.count("tls") && !parse_tls(get(o, "tls"), si.tls)) {
        std::fprintf(stderr, "xproxy-wire: --tls is VERSION/CIPHER/BITS[/FINGERPRINT]\n");
        return 2;
    }
    auto keys = load_keys(o);
    if (!keys) return 2;
    const std::string value = sign_trace_header(si, o.count("by") ? get(o, "by") : "xproxy-wire", *t, binding, *keys);
    if (value.empty()) {
        std::fprintf(stderr, "xproxy-wire: cannot sign (time out of range)\n");
        return 2;
    }
    std::printf("%s\n", format_field(value).c_str());
    return 0;
}

int trace_verify(const std::vector<std::string_view>& args) {
    Options o;
    if (!parse_options(args, {"keyring", "sender", "message-id", "now", "max-age", "max-future"}, o)) return 2;
    if (!o.count("sender")) {
        std::fprintf(stderr, "xproxy-wire: --sender S is required (the envelope sender, '' for <>)\n");
        return 2;
    }
    auto now = number(o, "now", static_cast<std::int64_t>(std::time(nullptr)));
    auto max_age = number(o, "max-age", 7 * 86400);
    auto max_future = number(o, "max-future", kTraceMaxFuture);
    if (!now || !max_age || !max_future) return 2;
    auto keys = load_keys(o);
    if (!keys) return 2;
    std::string in((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    while (!in.empty() && (in.back() == '\n' || in.back() == '\r')) in.pop_back();
    const MessageBinding binding{TraceBinding::message_id, get(o, "message-id"), get(o, "sender")};
    const TraceVerifyResult r = verify_trace_header(in, binding, *keys, *now, *max_age, *max_future);
    std::printf("result=%s\nreason=%s\n", to_string(r.verdict), escape(r.reason).c_str());
    if (!r.key_id.empty())
        std::printf("kid=%s\nt=%lld\nb=%s\n", r.key_id.c_str(), static_cast<long long>(r.time), to_string(r.binding));
    if (!r.ok()) return 1;
    const SourceInfo& s = r.source;
    std::printf("ip=%s\nport=%s\n", s.client ? s.client->addr.to_string().c_str() : "",
                s.client ? std::to_string(s.client->port).c_str() : "");
    const std::pair<const char*, const std::string*> text[] = {
        {"helo", &s.helo},
        {"name", &s.ptr_name},
        {"proto", &s.protocol},
        {"login", &s.login},
        {"sid", &s.session_id},
        {"by", &r.by},
        {"tls_version", &s.tls.version},
        {"tls_cipher", &s.tls.cipher},
        {"tls_fingerprint", &s.tls.peer_fingerprint},
    };
    for (const auto& [name, value] : text) std::printf("%s=%s\n", name, escape(*value, 0).c_str());
    std::printf("tls_bits=%u\n", s.tls.bits);
    return 0;
}

// The file, whole (a message header is read up to its limit; the body is not needed).
std::optional<std::string> read_message(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) {
        std::fprintf(stderr, "xproxy-wire: cannot open %s\n", escape(path).c_str());
        return std::nullopt;
    }
    std::string out;
    char buf[65536];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0 && out.size() < 4 * 1024 * 1024) out.append(buf, n);
    std::fclose(f);
    return out;
}

int trace_message_cmd(const std::vector<std::string_view>& args) {
    if (args.empty() || args[0].rfind("--", 0) == 0) {
        std::fprintf(stderr, "xproxy-wire: trace MESSAGE_FILE --keyring F [--sender S] [--now T] [--max-age S]\n");
        return 2;
    }
    Options o;
    const std::vector<std::string_view> rest(args.begin() + 1, args.end());
    if (!parse_options(rest, {"keyring", "sender", "now", "max-age", "max-future"}, o)) return 2;
    auto now = number(o, "now", static_cast<std::int64_t>(std::time(nullptr)));
    auto max_age = number(o, "max-age", 7 * 86400);
    auto max_future = number(o, "max-future", kTraceMaxFuture);
    if (!now || !max_age || !max_future) return 2;
    auto keys = load_keys(o);
    if (!keys) return 2;
    auto message = read_message(std::string(args[0]));
    if (!message) return 2;
    xproxy::tools::TraceOptions opts{*now, *max_age, *max_future, std::nullopt};
    if (o.count("sender")) opts.sender = get(o, "sender");
    auto report = xproxy::tools::trace_message(*message, *keys, opts);
    if (!report) {
        std::fprintf(stderr, "xproxy-wire: %s\n", escape(report.error(), 300).c_str());
        return 2;
    }
    std::fputs(xproxy::tools::format_report(*report).c_str(), stdout);
    return report->verified() ? 0 : 1;
}

const xproxy::wire::Registrar trace_cmd(
    {"trace",
     "trace MESSAGE_FILE --keyring F [--sender S] [--now T] [--max-age S] [--max-future S] - list the "
     "X-Original-Source fields and Received chain of a message; exit 0 only when the topmost field verifies",
     trace_message_cmd});
const xproxy::wire::Registrar sign_cmd(
    {"trace-sign",
     "trace-sign --keyring F --ip IP --port N --sender S [--message-id M] [--binding mid|env] [--helo H] "
     "[--name N] [--proto P] [--tls V/C/BITS[/FP]] [--login L] [--sid S] [--by B] [--time T] - print a signed "
     "X-Original-Source field",
     trace_sign});
const xproxy::wire::Registrar verify_cmd(
    {"trace-verify",
     "trace-verify --keyring F --sender S [--message-id M] [--now T] [--max-age S] [--max-future S] - verify the "
     "header read from stdin; exit 0 only when ok",
     trace_verify});

}  // namespace
