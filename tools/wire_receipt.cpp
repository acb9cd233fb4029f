// wire_receipt.cpp: xproxy-wire subcommands for the deposit receipt (doc/wire-formats.md,
// "Deposit receipt"; doc/man/xproxy-wire.1).
//   receipt-sign   --key PRIV.pem --kid KID --message FILE --rcpt ADDR [--rcpt ADDR ...]
//                  --queue-id ID --issuer NAME [--time SECONDS]
//                  prints the receipt (a compact JWS) and a newline.
//   receipt-verify --key PUB.pem --message FILE [RECEIPT]
//                  the receipt as an argument or on stdin; prints result=ok and the decoded
//                  receipt (values escaped), or result=refused and the reason.
// The private key file must be of mode 0600 or tighter (signing_key.hpp).
// Exit status: 0 signed / verified, 1 verification failed, 2 usage or file error.
#include <cstdio>
#include <ctime>
#include <iostream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "wire_command.hpp"
#include <xproxy/base/escape.hpp>
#include <xproxy/base/file_loader.hpp>
#include <xproxy/base/text.hpp>
#include <xproxy/jose/base64url.hpp>
#include <xproxy/jose/receipt.hpp>

namespace {

using namespace xproxy;

struct Args {
    std::map<std::string, std::string> values;
    std::vector<std::string> rcpt;
    std::vector<std::string> positional;
};

int usage_error(const std::string& message, const char* usage) {
    std::fprintf(stderr, "xproxy-wire: %s\nusage: xproxy-wire %s\n", message.c_str(), usage);
    return 2;
}

// --NAME VALUE options (--rcpt may repeat) and positional arguments.
bool parse_args(const std::vector<std::string_view>& args, const std::set<std::string>& known, Args& out,
                std::string& error) {
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string a(args[i]);
        if (a.rfind("--", 0) != 0) {
            out.positional.push_back(a);
            continue;
        }
        const std::string name = a.substr(2);
        if (!known.count(name) || i + 1 >= args.size()) {
            error = "unknown or incomplete option '" + escape(a) + "'";
            return false;
        }
        const std::string value(args[++i]);
        if (name == "rcpt") {
            out.rcpt.push_back(value);
        } else if (!out.values.emplace(name, value).second) {
            error = "--" + name + " given twice";
            return false;
        }
    }
    return true;
}

constexpr const char* kSignUsage =
    "receipt-sign --key PRIV.pem --kid KID --message FILE --rcpt ADDR [--rcpt ADDR ...] --queue-id ID --issuer NAME "
    "[--time SECONDS]";
constexpr const char* kVerifyUsage = "receipt-verify --key PUB.pem --message FILE [RECEIPT]";

// The message's digest, or an empty string after saying why.
std::string message_digest(const std::string& path) {
    auto message = load_text_file(path, kConfigFileRules);
    if (!message) {
        std::fprintf(stderr, "xproxy-wire: %s\n", message.error().c_str());
        return {};
    }
    return jose::sha256(*message);
}

int receipt_sign(const std::vector<std::string_view>& argv) {
    Args a;
    std::string error;
    if (!parse_args(argv, {"key", "kid", "message", "rcpt", "queue-id", "issuer", "time"}, a, error))
        return usage_error(error, kSignUsage);
    for (const char* required : {"key", "kid", "message", "queue-id", "issuer"})
        if (!a.values.count(required)) return usage_error(std::string("--") + required + " is required", kSignUsage);
    if (a.rcpt.empty()) return usage_error("at least one --rcpt is required", kSignUsage);
    if (!a.positional.empty()) return usage_error("unexpected argument " + escape(a.positional[0]), kSignUsage);
    jose::Receipt r;
    r.issued_at = static_cast<std::int64_t>(std::time(nullptr));
    if (auto t = a.values.find("time"); t != a.values.end()) {
        auto v = parse_decimal<std::uint64_t>(t->second, std::uint64_t{1} << 53);
        if (!v) return usage_error("--time needs a number of seconds", kSignUsage);
        r.issued_at = static_cast<std::int64_t>(*v);
    }
    auto key = jose::SigningKey::load(a.values["key"], a.values["kid"]);
    if (!key) {
        std::fprintf(stderr, "xproxy-wire: %s\n", key.error().c_str());
        return 2;
    }
    r.sha256 = message_digest(a.values["message"]);
    if (r.sha256.empty()) return 2;
    r.issuer = a.values["issuer"];
    r.recipients = a.rcpt;
    r.queue_id = a.values["queue-id"];
    auto token = jose::sign_receipt(*key, r);
    if (!token) {
        std::fprintf(stderr, "xproxy-wire: %s\n", token.error().c_str());
        return 2;
    }
    std::printf("%s\n", token->c_str());
    return 0;
}

int receipt_verify(const std::vector<std::string_view>& argv) {
    Args a;
    std::string error;
    if (!parse_args(argv, {"key", "message"}, a, error)) return usage_error(error, kVerifyUsage);
    for (const char* required : {"key", "message"})
        if (!a.values.count(required)) return usage_error(std::string("--") + required + " is required", kVerifyUsage);
    if (a.positional.size() > 1) return usage_error("at most one receipt", kVerifyUsage);
    auto pem = load_text_file(a.values["key"], kConfigFileRules);
    if (!pem) {
        std::fprintf(stderr, "xproxy-wire: %s\n", pem.error().c_str());
        return 2;
    }
    auto key = jose::PublicKey::from_pem(*pem);
    if (!key) {
        std::fprintf(stderr, "xproxy-wire: %s: %s\n", a.values["key"].c_str(), key.error().c_str());
        return 2;
    }
    const std::string digest = message_digest(a.values["message"]);
    if (digest.empty()) return 2;
    std::string token;
    if (a.positional.empty()) {
        token.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    } else {
        token = a.positional[0];
    }
    token = std::string(trim(token));  // a trailing newline, as receipt-sign prints it
    jose::Refusal why = jose::Refusal::malformed;
    auto v = jose::verify_receipt(token, *key, digest, &why);
    if (!v) {
        std::printf("result=refused\nreason=%s\ndetail=%s\n", std::string(jose::reason_name(why)).c_str(),
                    escape(v.error()).c_str());
        return 1;
    }
    std::printf("result=ok\nalg=%s\nkid=%s\niss=%s\niat=%lld\nsha256=%s\nqueue_id=%s\n",
                std::string(jose::alg_name(v->alg)).c_str(), escape(v->kid).c_str(), escape(v->receipt.issuer).c_str(),
                static_cast<long long>(v->receipt.issued_at), jose::base64url_encode(v->receipt.sha256).c_str(),
                escape(v->receipt.queue_id).c_str());
    for (const auto& r : v->receipt.recipients) std::printf("rcpt=%s\n", escape(r).c_str());
    return 0;
}

const xproxy::wire::Registrar sign_cmd(
    {"receipt-sign",
     "receipt-sign --key PRIV.pem --kid KID --message FILE --rcpt ADDR... --queue-id "
     "ID --issuer NAME [--time S] - sign a deposit receipt",
     receipt_sign});
const xproxy::wire::Registrar verify_cmd({"receipt-verify",
                                          "receipt-verify --key PUB.pem --message FILE [RECEIPT] - verify a deposit "
                                          "receipt (argument or stdin) against the message",
                                          receipt_verify});

}  // namespace
