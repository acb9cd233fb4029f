// deposit_client.cpp: see deposit_client.hpp.
#include "deposit_client.hpp"

#include <openssl/crypto.h>

#include <nlohmann/json.hpp>

#include <xproxy/base/escape.hpp>
#include <xproxy/base/text.hpp>
#include <xproxy/daemon/https_client.hpp>
#include <xproxy/jose/jwks.hpp>
#include <xproxy/jose/jws.hpp>
#include <xproxy/jose/receipt.hpp>

#include "token_audience.hpp"

namespace xproxy::deposit {

namespace asio = boost::asio;

namespace {

constexpr std::size_t kMaxAnswerBytes = std::size_t{64} << 10;

bool unreserved(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || ascii_digit(c) || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

std::string percent_encode(std::string_view s) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (char c : s) {
        if (unreserved(c)) {
            out += c;
        } else {
            const auto u = static_cast<unsigned char>(c);
            out += '%';
            out += kHex[u >> 4];
            out += kHex[u & 15];
        }
    }
    return out;
}

// "https://host:port" of a parsed URL (IPv6 in brackets).
std::string origin(const http::HttpsUrl& u) {
    const std::string host = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
    return "https://" + host + ":" + std::to_string(u.port);
}

// The exit code for an answer other than 303.
int exit_code_for(int status) {
    switch (status) {
        case 400:
        case 413:
        case 414:
        case 415:
        case 422:
        case 431: return kExitData;
        case 401:
        case 403: return kExitNoPerm;
        case 404:
        case 405: return kExitUnavailable;
        case 408:
        case 409:
        case 429: return kExitTempFail;
        default: return status >= 500 && status <= 599 ? kExitTempFail : kExitProtocol;
    }
}

// "answered 403 (sender_not_allowed: DETAIL)" from a problem+json body, escaped.
std::string describe_answer(const http::HttpsResponse& r) {
    std::string out = "answered " + std::to_string(r.status);
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_object()) {
        std::string reason;
        std::string detail;
        if (auto it = j.find("reason"); it != j.end() && it->is_string()) reason = it->get<std::string>();
        if (auto it = j.find("detail"); it != j.end() && it->is_string()) detail = it->get<std::string>();
        if (!reason.empty() || !detail.empty())
            out += " (" + escape(reason, 100) + (detail.empty() ? "" : ": " + escape(detail, 400)) + ")";
    }
    if (auto retry = r.header("Retry-After"); !retry.empty()) out += ", retry after " + escape(retry, 40) + " s";
    return out;
}

bool listed(const std::vector<std::string>& list, const std::string& address) {
    for (const auto& a : list)
        if (iequals(a, address)) return true;
    return false;
}

void wipe(std::string& s) {
    if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
    s.clear();
}

// A string holding the token, wiped when it goes (every co_return included).
struct WipedString {
    std::string text;
    WipedString() = default;
    WipedString(const WipedString&) = delete;
    WipedString& operator=(const WipedString&) = delete;
    ~WipedString() { wipe(text); }
};

}  // namespace

std::string deposit_query(const std::vector<std::string>& recipients, const std::string& from) {
    std::string q;
    for (const auto& r : recipients) q += (q.empty() ? "?" : "&") + std::string("rcpt=") + percent_encode(r);
    if (!from.empty()) q += (q.empty() ? "?" : "&") + std::string("from=") + percent_encode(from);
    return q;
}

asio::awaitable<DepositOutcome> run_deposit(asio::any_io_executor ex, DepositJob job) {
    DepositOutcome out;
    WipedString bearer;
    if (!job.token.empty()) bearer.text = "Bearer " + job.token;
    // 0. The token goes only to an endpoint its audience names (token_audience.hpp).
    if (!job.token.empty() && !job.allow_any_audience) {
        auto audiences = token_audiences(job.token);
        wipe(job.token);
        if (!audiences) {
            out.exit_code = kExitNoPerm;
            out.error = audiences.error() + ": its audience cannot be checked, so it is not sent";
            co_return out;
        }
        std::vector<Endpoint> named;
        std::string needed;
        for (auto& ep : job.endpoints) {
            auto u = http::parse_https_url(ep.url);
            if (!u) continue;  // connect() says why below, were it kept
            bool ok = false;
            for (const auto& a : *audiences) ok = ok || audience_names_endpoint(a, *u);
            if (ok) named.push_back(std::move(ep));
            else needed += (needed.empty() ? "\"" : ", \"") + endpoint_audience(*u) + "\"";
        }
        if (named.empty()) {
            std::string have;
            for (const auto& a : *audiences) have += (have.empty() ? "\"" : ", \"") + escape(a, 200) + "\"";
            out.exit_code = kExitNoPerm;
            out.error = "the token is not for this deposit service, so it is not sent: its audience is " + have +
                        "; a token for it needs the audience " + (needed.empty() ? "of the endpoint" : needed) +
                        " (or --allow-any-audience, which lets any endpoint capture the token)";
            co_return out;
        }
        job.endpoints = std::move(named);
    }
    wipe(job.token);
    http::HttpsSession session(ex, job.ca_file, job.cert_file, job.key_file);

    // 1. An endpoint that answers, with a certificate for its name.
    std::string url;
    std::string address;
    std::string failures;
    for (const auto& ep : job.endpoints) {
        std::vector<std::string> addresses = ep.addresses;
        if (addresses.empty()) addresses.emplace_back();
        for (const auto& a : addresses) {
            std::string ep_url = ep.url;
            std::string ep_address = a;
            auto connected = co_await session.connect(ep_url, ep_address, job.timeout);
            if (connected) {
                url = ep.url;
                address = a;
                break;
            }
            if (!failures.empty()) failures += "; ";
            failures += connected.error() + (a.empty() ? "" : " (address " + a + ")");
        }
        if (!url.empty()) break;
    }
    if (url.empty()) {
        out.exit_code = kExitTempFail;
        out.error = "no deposit endpoint could be reached: " + (failures.empty() ? "none given" : failures);
        co_return out;
    }
    out.endpoint = url;
    auto parsed = http::parse_https_url(url);
    if (!parsed) {  // connect() parsed it already
        out.error = parsed.error();
        co_return out;
    }
    const std::string base = origin(*parsed);

    // 2. The deposit.
    http::HttpsRequest post;
    post.method = "POST";
    std::string query = deposit_query(job.recipients, job.from);
    if (!query.empty() && parsed->target.find('?') != std::string::npos) query[0] = '&';
    post.url = base + parsed->target + query;
    post.headers = {{"Content-Type", "message/rfc822"}, {"Idempotency-Key", job.idempotency_key}};
    if (!bearer.text.empty()) post.headers.emplace_back("Authorization", bearer.text);
    post.body = job.message;
    post.ca_file = job.ca_file;
    post.timeout = job.timeout;
    post.max_body_bytes = kMaxAnswerBytes;
    post.connect_address = address;
    http::HttpsRequest again = post;
    auto answer = co_await session.request(std::move(post));
    if (!answer) {
        // Sent once more with the same Idempotency-Key: never delivered twice.
        auto retried = co_await session.request(std::move(again));
        if (!retried) {
            out.exit_code = kExitTempFail;
            out.error = "deposit failed: " + answer.error() + "; once more: " + retried.error();
            co_return out;
        }
        answer = std::move(retried);
    } else {
        for (auto& [name, value] : again.headers) wipe(value);
    }
    if (answer->status != 303) {
        out.exit_code = exit_code_for(answer->status);
        out.error = base + " " + describe_answer(*answer);
        co_return out;
    }
    out.delivered = true;
    if (auto j = nlohmann::json::parse(answer->body, nullptr, false); j.is_object())
        if (auto it = j.find("queue_id"); it != j.end() && it->is_string()) out.queue_id = it->get<std::string>();

    // 3. The receipt, over the same connection; the token goes to the same server only.
    out.exit_code = kExitSoftware;
    const std::string location = answer->header("Location");
    std::string receipt_url;
    if (!location.empty() && location.front() == '/') {
        receipt_url = base + location;
    } else if (auto loc = http::parse_https_url(location);
               loc && loc->host == parsed->host && loc->port == parsed->port) {
        receipt_url = location;
    } else {
        out.error = "delivered, but the receipt's Location is not on " + base + ": " + escape(location, 200);
        co_return out;
    }
    http::HttpsRequest get;
    get.url = receipt_url;
    if (!bearer.text.empty()) get.headers.emplace_back("Authorization", bearer.text);
    get.timeout = job.timeout;
    get.max_body_bytes = jose::kMaxReceiptBytes;
    get.connect_address = address;
    auto receipt = co_await session.request(std::move(get));
    wipe(bearer.text);
    if (!receipt) {
        out.error = "delivered, but the receipt could not be fetched: " + receipt.error();
        co_return out;
    }
    if (receipt->status != 200) {
        out.error = "delivered, but the receipt could not be fetched: " + escape(receipt_url, 300) + " " +
                    describe_answer(*receipt);
        co_return out;
    }
    out.receipt = std::string(trim(receipt->body));

    // 4. Its key, and the check.
    std::optional<jose::PublicKey> key = job.receipt_key;
    if (!key) {
        http::HttpsRequest keys_get;
        keys_get.url = base + "/.well-known/dmail/receipt-keys";
        keys_get.timeout = job.timeout;
        keys_get.max_body_bytes = jose::kMaxJwksBytes;
        keys_get.connect_address = address;
        auto keys = co_await session.request(std::move(keys_get));
        if (!keys || keys->status != 200) {
            out.error = "delivered, but the receipt keys could not be fetched: " +
                        (keys ? base + "/.well-known/dmail/receipt-keys " + describe_answer(*keys) : keys.error());
            co_return out;
        }
        auto set = jose::Jwks::parse(keys->body);
        if (!set) {
            out.error = "delivered, but the server's receipt keys are unusable: " + set.error();
            co_return out;
        }
        auto chosen = jose::verify_jws(out.receipt, *set, jose::kMaxReceiptBytes);
        if (!chosen) {
            out.error = "delivered, but the receipt does not verify with the server's keys: " + chosen.error();
            co_return out;
        }
        const jose::Jwk* jwk = chosen->kid.empty() ? set->only_key_for(chosen->alg) : set->find(chosen->kid);
        if (!jwk) {
            out.error = "delivered, but no receipt key matches the receipt";
            co_return out;
        }
        key = jwk->key;
    }
    jose::Refusal why = jose::Refusal::malformed;
    auto verified = jose::verify_receipt(out.receipt, *key, jose::sha256(job.message), &why);
    if (!verified) {
        out.error = "delivered, but the receipt does not verify (" + std::string(jose::reason_name(why)) +
                    "): " + verified.error();
        co_return out;
    }
    for (const auto& r : job.recipients) {
        if (!listed(verified->receipt.recipients, r)) {
            out.error = "delivered, but the receipt does not list the recipient " + escape(r, 300);
            co_return out;
        }
    }
    out.queue_id = verified->receipt.queue_id;
    out.kid = verified->kid;
    out.exit_code = kExitOk;
    co_return out;
}

}  // namespace xproxy::deposit
