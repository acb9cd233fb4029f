// xproxy-deposit: deposit a message with a deposit service (xproxy-depositd) and verify
// its receipt (doc/man/xproxy-deposit.1, doc/deposit.md "The client command").
//
// The endpoint is --endpoint, or found through SRV _dmail._tcp.DOMAIN for the domain of
// the first --to (srv_lookup.hpp). The token comes from a file (mode 0600 or 0640), is
// never printed, and goes only to an endpoint its "aud" names (token_audience.hpp) unless
// --allow-any-audience. Prints "result=delivered queue_id=Q receipt=verified" and exits 0, or
// says what failed and exits with a sysexits code (deposit_client.hpp).
#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "deposit_client.hpp"
#include "srv_lookup.hpp"
#include <xproxy/base/escape.hpp>
#include <xproxy/base/file_loader.hpp>
#include <xproxy/base/secret_file.hpp>
#include <xproxy/base/text.hpp>
#include <xproxy/daemon/https_client.hpp>
#include <xproxy/jose/base64url.hpp>

namespace {

using namespace xproxy;
using namespace xproxy::deposit;
namespace po = boost::program_options;

constexpr std::size_t kMaxMessageBytes = std::size_t{64} << 20;

struct Options {
    std::string token_file;
    std::vector<std::string> to;
    std::string from;
    std::string endpoint;
    std::vector<std::string> dns_servers;
    std::vector<std::string> dns_options;
    std::string trust_anchor;
    std::string ca_file;
    std::string cert_file;
    std::string key_file;
    std::string receipt_key;
    std::string receipt_out;
    std::string idempotency_key;
    unsigned timeout = 60;
    bool allow_any_audience = false;
    std::string message_file;
};

int fail(int code, const std::string& message) {
    std::fprintf(stderr, "xproxy-deposit: %s\n", message.c_str());
    return code;
}

bool printable_ascii(std::string_view s) {
    for (char c : s)
        if (c < 0x21 || c > 0x7e) return false;
    return true;
}

std::string random_key() {
    unsigned char bytes[16];
    if (RAND_bytes(bytes, sizeof bytes) != 1) return {};
    return jose::base64url_encode(std::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
}

bool write_file(const std::string& path, const std::string& text) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    std::size_t off = 0;
    while (off < text.size()) {
        const ssize_t n = ::write(fd, text.data() + off, text.size() - off);
        if (n <= 0) {
            ::close(fd);
            return false;
        }
        off += static_cast<std::size_t>(n);
    }
    return ::close(fd) == 0;
}

// Parses the command line; returns an exit code to stop with, or -1 to go on.
int parse_options(int argc, char** argv, Options& o) {
    po::options_description desc("xproxy-deposit [OPTIONS] MESSAGE-FILE");
    desc.add_options()("help,h", "this text")("token-file", po::value(&o.token_file),
                                              "the bearer token (a JWT), mode 0600 or 0640")(
        "to", po::value(&o.to)->composing(), "an envelope recipient (repeatable)")(
        "from", po::value(&o.from), "the envelope sender (default: the From: address)")(
        "endpoint", po::value(&o.endpoint), "https://HOST[:PORT]/v1/deposit (default: SRV discovery)")(
        "dns-server", po::value(&o.dns_servers)->composing(), "forward DNS queries to IP[@PORT] (repeatable)")(
        "dns-option", po::value(&o.dns_options)->composing(), "a libunbound option \"NAME: VALUE\" (repeatable)")(
        "trust-anchor", po::value(&o.trust_anchor), "DNSSEC trust anchor file (DS or DNSKEY records)")(
        "ca-file", po::value(&o.ca_file), "CA certificates for the server (default: the system's)")(
        "cert", po::value(&o.cert_file), "client certificate chain (PEM)")("key", po::value(&o.key_file),
                                                                           "client certificate key (PEM, mode 0600)")(
        "receipt-key", po::value(&o.receipt_key), "the server's receipt public key (PEM)")(
        "receipt-out", po::value(&o.receipt_out), "write the verified receipt here")(
        "idempotency-key", po::value(&o.idempotency_key), "1 to 255 printable ASCII characters (default: random)")(
        "timeout", po::value(&o.timeout)->default_value(60), "seconds per request")(
        "allow-any-audience", po::bool_switch(&o.allow_any_audience),
        "DANGEROUS: send the token to any endpoint, even one its \"aud\" does not name (a hostile "
        "endpoint can then capture and replay it)");
    po::options_description hidden;
    hidden.add_options()("message", po::value(&o.message_file));
    po::options_description all;
    all.add(desc).add(hidden);
    po::positional_options_description pos;
    pos.add("message", 1);
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
        po::notify(vm);
    } catch (const std::exception& e) {
        return fail(kExitUsage, std::string(e.what()) + " (--help lists the options)");
    }
    if (vm.count("help")) {
        std::cout << desc << "\n";
        return kExitOk;
    }
    if (o.message_file.empty()) return fail(kExitUsage, "no MESSAGE-FILE given");
    if (o.token_file.empty() && o.cert_file.empty()) return fail(kExitUsage, "--token-file (or --cert) is required");
    if (o.cert_file.empty() != o.key_file.empty()) return fail(kExitUsage, "--cert and --key go together");
    if (o.endpoint.empty() && o.to.empty())
        return fail(kExitUsage, "discovery needs a --to recipient (its domain); or give --endpoint");
    if (o.timeout == 0 || o.timeout > 3600) return fail(kExitUsage, "--timeout must be 1 to 3600 seconds");
    if (!o.idempotency_key.empty() && (o.idempotency_key.size() > 255 || !printable_ascii(o.idempotency_key)))
        return fail(kExitUsage, "--idempotency-key must be 1 to 255 printable ASCII characters");
    return -1;
}

// The endpoints of --endpoint, or of the SRV records of the first recipient's domain.
int find_endpoints(const Options& o, std::vector<Endpoint>& out) {
    if (!o.endpoint.empty()) {
        if (auto u = http::parse_https_url(o.endpoint); !u) return fail(kExitUsage, "--endpoint: " + u.error());
        out.push_back(Endpoint{o.endpoint, {}});
        return -1;
    }
    const std::string& rcpt = o.to.front();
    const auto at = rcpt.rfind('@');
    if (at == std::string::npos) return fail(kExitUsage, "--to " + escape(rcpt) + " has no domain");
    std::string domain = to_lower(rcpt.substr(at + 1));
    if (!domain.empty() && domain.back() == '.') domain.pop_back();
    DnsConfig dns;
    dns.forwarders = o.dns_servers;
    dns.trust_anchor_file = o.trust_anchor;
    for (const auto& opt : o.dns_options) {
        const auto colon = opt.find(':');
        if (colon == std::string::npos)
            return fail(kExitUsage, "--dns-option " + escape(opt) + ": want \"NAME: VALUE\"");
        dns.options.emplace_back(opt.substr(0, colon + 1), std::string(trim(std::string_view(opt).substr(colon + 1))));
    }
    Discovery d = discover_deposit_service(domain, dns);
    switch (d.status) {
        case Discovery::Status::ok: break;
        case Discovery::Status::no_service:
        case Discovery::Status::refused: return fail(kExitUnavailable, d.error);
        case Discovery::Status::temporary: return fail(kExitTempFail, "discovery: " + d.error);
    }
    if (!d.notes.empty()) std::fprintf(stderr, "xproxy-deposit: note: %s\n", d.notes.c_str());
    for (auto& t : d.targets)
        out.push_back(Endpoint{"https://" + t.host + ":" + std::to_string(t.port) + "/v1/deposit", t.addresses});
    return -1;
}

int run(int argc, char** argv) {
    Options o;
    if (int rc = parse_options(argc, argv, o); rc >= 0) return rc;
    DepositJob job;
    auto message = load_text_file(o.message_file, FileRules{kMaxMessageBytes, 0, true, false});
    if (!message) return fail(kExitNoInput, message.error());
    job.message = std::move(*message);
    if (!o.token_file.empty()) {
        auto token = read_secret_file(o.token_file, 1, /*group_may_read=*/true);
        if (!token) return fail(kExitConfig, "--token-file: " + token.error());
        job.token.assign(trim(token->view()));  // the one copy, wiped once the request is made
        if (job.token.empty() || !printable_ascii(job.token))
            return fail(kExitConfig, "--token-file " + escape(o.token_file) + " holds bytes a token cannot have");
    }
    if (!o.receipt_key.empty()) {
        auto pem = load_text_file(o.receipt_key, kConfigFileRules);
        if (!pem) return fail(kExitNoInput, pem.error());
        auto key = jose::PublicKey::from_pem(*pem);
        if (!key) return fail(kExitConfig, "--receipt-key " + escape(o.receipt_key) + ": " + key.error());
        job.receipt_key = std::move(*key);
    }
    if (int rc = find_endpoints(o, job.endpoints); rc >= 0) return rc;
    job.recipients = o.to;
    job.from = o.from;
    job.idempotency_key = o.idempotency_key.empty() ? random_key() : o.idempotency_key;
    if (job.idempotency_key.empty()) return fail(kExitSoftware, "no random bytes for the Idempotency-Key");
    job.ca_file = o.ca_file;
    job.cert_file = o.cert_file;
    job.key_file = o.key_file;
    job.allow_any_audience = o.allow_any_audience;
    job.timeout = std::chrono::seconds(o.timeout);
    const std::string key = job.idempotency_key;

    boost::asio::io_context io;
    DepositOutcome out;
    boost::asio::co_spawn(
        io, [&]() -> boost::asio::awaitable<void> { out = co_await run_deposit(io.get_executor(), std::move(job)); },
        boost::asio::detached);
    io.run();

    if (out.exit_code == kExitOk && !o.receipt_out.empty() && !write_file(o.receipt_out, out.receipt + "\n"))
        return fail(kExitCantCreate, "cannot write --receipt-out " + escape(o.receipt_out));
    if (out.delivered) {
        std::printf("result=delivered queue_id=%s receipt=%s\n", escape(out.queue_id).c_str(),
                    out.exit_code == kExitOk ? "verified" : "failed");
        std::fflush(stdout);
    }
    if (out.exit_code == kExitOk) return kExitOk;
    fail(out.exit_code, out.error);
    if (out.exit_code == kExitTempFail)
        std::fprintf(stderr, "xproxy-deposit: to retry without delivering twice: --idempotency-key %s\n", key.c_str());
    return out.exit_code;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        return fail(kExitSoftware, std::string("unexpected failure: ") + e.what());
    }
}
