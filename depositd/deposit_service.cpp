// deposit_service.cpp: the routes and the deposit flow; see deposit_service.hpp.
#include "deposit_service.hpp"

#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>

#include <xproxy/base/escape.hpp>
#include <xproxy/base/text.hpp>
#include <xproxy/daemon/log.hpp>
#include <xproxy/daemon/metrics.hpp>
#include <xproxy/jose/receipt.hpp>
#include <xproxy/wire/mail_address.hpp>
#include <xproxy/wire/trace_header.hpp>

#include "authorization.hpp"
#include "envelope.hpp"
#include "receipt_keys.hpp"

namespace xproxy::depositd {

namespace asio = boost::asio;

namespace {

constexpr std::string_view kDepositPath = "/v1/deposit";
constexpr std::string_view kReceiptPrefix = "/v1/receipts/";
constexpr std::string_view kKeysPath = "/.well-known/dmail/receipt-keys";
constexpr std::size_t kMaxReceipts = 100000;
constexpr std::size_t kMaxRateIdentities = 100000;

const char* title(int status) {
    switch (status) {
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 409: return "Conflict";
        case 413: return "Content Too Large";
        case 414: return "URI Too Long";
        case 415: return "Unsupported Media Type";
        case 422: return "Unprocessable Content";
        case 429: return "Too Many Requests";
        case 431: return "Request Header Fields Too Large";
        case 503: return "Service Unavailable";
        default: return "Error";
    }
}

std::int64_t unix_now() { return static_cast<std::int64_t>(std::time(nullptr)); }

// deposits by result, token refusals by reason (metrics.hpp: a small fixed set of labels).
metrics::Family<metrics::Counter>& deposits() {
    return metrics::registry().counter("xproxy_depositd_deposits_total",
                                       "Deposit requests by result (accepted, replayed, refused, mta_refused, "
                                       "mta_tempfail, unavailable).",
                                       {"result"});
}
metrics::Family<metrics::Counter>& token_refusals() {
    return metrics::registry().counter("xproxy_depositd_token_refusals_total",
                                       "Bearer tokens refused, by reason (doc/deposit.md).", {"reason"});
}

const char* result_of(int status, std::string_view reason) {
    if (status == 303) return reason == "replayed" ? "replayed" : "accepted";
    if (reason == "mta_refused") return "mta_refused";
    if (reason == "mta_tempfail") return "mta_tempfail";
    if (status >= 500) return "unavailable";
    return "refused";
}

struct LogFields {
    std::string identity, reason, queue_id, receipt, detail;
    std::size_t bytes = 0, recipients = 0;
};

std::string client_text(const Request& r) { return r.client ? r.client->to_string() : "-"; }

void log_deposit(const Request& req, const Response& res, const LogFields& f) {
    const auto status = res.status;
    log::write(status >= 500 ? log::Level::warning : log::Level::info,
               "event=deposit client=" + client_text(req) + " identity=" + escape_value(f.identity, 320) +
                   " status=" + std::to_string(status) + " reason=" + (f.reason.empty() ? "-" : f.reason) +
                   " queue_id=" + escape_value(f.queue_id.empty() ? "-" : f.queue_id, 64, false) +
                   " receipt=" + (f.receipt.empty() ? "-" : f.receipt) + " bytes=" + std::to_string(f.bytes) +
                   " recipients=" + std::to_string(f.recipients) +
                   (f.detail.empty() ? "" : " detail=" + escape_value(f.detail, 512)));
    deposits().with({result_of(status, f.reason)}).inc();
}

void log_http(const Request& req, int status, std::string_view reason, std::string_view identity) {
    const auto q = req.target.find('?');
    log::info("event=http client=%s method=%s path=%s status=%d reason=%s identity=%s", client_text(req).c_str(),
              escape_value(req.method, 16, false).c_str(), escape_value(req.target.substr(0, q), 128).c_str(), status,
              reason.empty() ? "-" : std::string(reason).c_str(), escape_value(identity, 320).c_str());
}

std::string_view path_of(std::string_view target) { return target.substr(0, target.find('?')); }

bool receipt_id_syntax(std::string_view id) {
    if (id.size() != 22) return false;
    for (char c : id)
        if (!(ascii_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_')) return false;
    return true;
}

Response with_retry_after(Response r, unsigned seconds) {
    r.headers.emplace_back("Retry-After", std::to_string(seconds));
    return r;
}

Response unauthorized(std::string_view reason, std::string_view detail) {
    Response r = problem(401, reason, detail);
    r.headers.emplace_back("WWW-Authenticate", reason == "missing_token"
                                                   ? "Bearer realm=\"xproxy\""
                                                   : "Bearer realm=\"xproxy\", error=\"invalid_token\"");
    return r;
}

// What an Idempotency-Key stands for: the message (its digest, 32 bytes) and the
// envelope (sender, recipients in sorted order), NUL-separated (no address holds a NUL).
std::string request_digest(const std::string& message_digest, const DepositEnvelope& de) {
    std::vector<std::string> rcpt = de.recipients;
    std::sort(rcpt.begin(), rcpt.end());
    std::string what = message_digest;
    what += '\0';
    what += de.sender;
    for (const auto& r : rcpt) {
        what += '\0';
        what += r;
    }
    return jose::sha256(what);
}

bool is_rfc822(std::string_view content_type) {
    const auto semi = content_type.find(';');
    return iequals(trim(content_type.substr(0, semi)), "message/rfc822");
}

}  // namespace

Response problem(int status, std::string_view reason, std::string_view detail) {
    Response r;
    r.status = status;
    nlohmann::json j = {{"type", "about:blank"},
                        {"title", title(status)},
                        {"status", status},
                        {"detail", escape(detail, 1024)},
                        {"reason", std::string(reason)}};
    r.body = j.dump();
    r.headers.emplace_back("Content-Type", "application/problem+json");
    return r;
}

std::optional<std::string> percent_decode(std::string_view in) {
    std::string out;
    out.reserve(in.size());
    auto hex = [](char c) -> int {
        if (ascii_digit(c)) return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    for (std::size_t i = 0; i < in.size(); ++i) {
        char c = in[i];
        if (c == '%') {
            if (i + 2 >= in.size()) return std::nullopt;
            const int h = hex(in[i + 1]), l = hex(in[i + 2]);
            if (h < 0 || l < 0) return std::nullopt;
            c = static_cast<char>(h * 16 + l);
            i += 2;
        }
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7F) return std::nullopt;
        out.push_back(c);
    }
    return out;
}

Expected<DepositQuery> parse_deposit_query(std::string_view query, std::size_t max_rcpt) {
    DepositQuery q;
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view item = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (item.empty()) continue;
        const auto eq = item.find('=');
        const std::string_view name = item.substr(0, eq);
        auto value = percent_decode(eq == std::string_view::npos ? std::string_view{} : item.substr(eq + 1));
        if (!value) return Failure{"a malformed percent-encoding in the query"};
        std::string address = canonical_address(*value);
        if (name == "rcpt") {
            if (!usable_address(address)) return Failure{"rcpt= is not an address"};
            if (q.rcpt.size() >= max_rcpt) return Failure{"more than " + std::to_string(max_rcpt) + " recipients"};
            q.rcpt.push_back(std::move(address));
        } else if (name == "from") {
            if (q.from) return Failure{"from= given twice"};
            if (!usable_address(address)) return Failure{"from= is not an address"};
            q.from = std::move(address);
        } else {
            return Failure{"an unknown query parameter"};
        }
    }
    return q;
}

DepositService::DepositService(const Config& cfg, TokenVerifier& tokens, const SmtpInjector& injector,
                               DirectoryBackend& directory, Keys keys)
    : cfg_(cfg),
      tokens_(tokens),
      injector_(injector),
      directory_(directory),
      keys_(std::move(keys)),
      idempotency_(cfg.max_idempotency_entries, cfg.idempotency_ttl),
      rate_(cfg.rate_limit, kMaxRateIdentities),
      receipts_(cfg.max_receipts ? cfg.max_receipts : kMaxReceipts, cfg.receipt_ttl) {
    (void)deposits();
    (void)token_refusals();
}

asio::awaitable<std::optional<std::string>> DepositService::authenticate(const Request& req, Response& refusal,
                                                                         std::string& reason) {
    const std::string_view auth = trim(req.authorization);
    if (auth.empty()) {
        if (!req.tls.peer_fingerprint.empty()) {
            const auto dir = directory_.get();
            if (auto user = dir->find_by_fingerprint(req.tls.peer_fingerprint))
                if (auto id = canonical_identity(std::string(user->local_part) + "@" + std::string(user->domain)))
                    co_return id;
        }
        reason = "missing_token";
        token_refusals().with({reason}).inc();
        refusal = unauthorized(reason, "a bearer token (or a client certificate of a directory user) is required");
        co_return std::nullopt;
    }
    if (auth.size() < 7 || !istarts_with(auth, "bearer ") || trim(auth.substr(7)).empty()) {
        reason = "malformed";
        token_refusals().with({reason}).inc();
        refusal = unauthorized(reason, "the Authorization field is not \"Bearer TOKEN\"");
        co_return std::nullopt;
    }
    std::string token(trim(auth.substr(7)));
    const std::int64_t now = unix_now();
    TokenOutcome out = co_await tokens_.verify(std::move(token), now);
    if (out.identity) {
        // One form for every table and comparison from here on (authorization.hpp).
        if (auto id = canonical_identity(out.identity->identity)) co_return id;
        reason = "no_identity";
        token_refusals().with({reason}).inc();
        refusal = unauthorized(reason, "the token's identity is not a plain address (local@domain)");
        co_return std::nullopt;
    }
    if (out.unavailable || !out.refusal) {
        reason = "keys_unavailable";
        refusal = with_retry_after(problem(503, reason, "the identity provider's keys are not available yet"), 30);
        co_return std::nullopt;
    }
    reason = std::string(jose::reason_name(*out.refusal));
    token_refusals().with({reason}).inc();
    refusal = unauthorized(reason, "the token was refused: " + reason);
    co_return std::nullopt;
}

asio::awaitable<Admission> DepositService::admit(const Request& req) {
    Admission adm;
    const std::string_view path = path_of(req.target);
    if (path == kKeysPath || istarts_with(path, kReceiptPrefix)) {
        Response r;
        if (req.method != "GET") {
            r = problem(405, "method_not_allowed", "use GET");
            r.headers.emplace_back("Allow", "GET");
            log_http(req, r.status, "method_not_allowed", "");
        } else if (path == kKeysPath) {
            r = receipt_keys();
            log_http(req, r.status, "", "");
        } else {
            r = co_await get_receipt(req, path.substr(kReceiptPrefix.size()));
        }
        adm.answer = std::move(r);
        co_return adm;
    }
    if (path != kDepositPath) {
        adm.answer = problem(404, "not_found", "no such resource");
        log_http(req, 404, "not_found", "");
        co_return adm;
    }
    LogFields f;
    auto refuse = [&](Response r, std::string reason) {
        f.reason = std::move(reason);
        r.close = true;  // the body is not read
        log_deposit(req, r, f);
        adm.answer = std::move(r);
    };
    if (req.method != "POST") {
        Response r = problem(405, "method_not_allowed", "use POST");
        r.headers.emplace_back("Allow", "POST");
        refuse(std::move(r), "method_not_allowed");
        co_return adm;
    }
    Response refusal;
    std::string reason;
    auto identity = co_await authenticate(req, refusal, reason);
    if (!identity) {
        refuse(std::move(refusal), reason);
        co_return adm;
    }
    f.identity = *identity;
    if (const unsigned wait = rate_.take(*identity, RateLimiter::Clock::now()); wait > 0) {
        refuse(with_retry_after(problem(429, "rate_limited", "too many deposits; try again later"), wait),
               "rate_limited");
        co_return adm;
    }
    if (!is_rfc822(req.content_type)) {
        refuse(problem(415, "unsupported_media_type", "the body must be message/rfc822"), "unsupported_media_type");
        co_return adm;
    }
    if (req.content_length && *req.content_length > cfg_.max_message_size) {
        refuse(
            problem(413, "too_large", "the message is larger than " + std::to_string(cfg_.max_message_size) + " bytes"),
            "too_large");
        co_return adm;
    }
    const auto q = req.target.find('?');
    auto query = parse_deposit_query(
        q == std::string::npos ? std::string_view{} : std::string_view(req.target).substr(q + 1), cfg_.max_recipients);
    if (!query) {
        refuse(problem(400, "bad_request", query.error()), "bad_request");
        co_return adm;
    }
    if (!req.idempotency_key.empty() && !IdempotencyCache::valid_key(req.idempotency_key)) {
        refuse(problem(400, "bad_request", "an Idempotency-Key is 1 to 255 printable ASCII characters"), "bad_request");
        co_return adm;
    }
    adm.identity = std::move(*identity);
    adm.rcpt = std::move(query->rcpt);
    adm.from = std::move(query->from);
    co_return adm;
}

Response DepositService::accepted(const std::string& receipt_id, const std::string& queue_id) const {
    Response r;
    r.status = 303;
    const std::string location = std::string(kReceiptPrefix) + receipt_id;
    r.headers.emplace_back("Location", location);
    r.headers.emplace_back("Content-Type", "application/json");
    r.body = nlohmann::json{{"receipt", location}, {"queue_id", queue_id}}.dump(
        -1, ' ', false, nlohmann::json::error_handler_t::replace);
    return r;
}

asio::awaitable<Response> DepositService::deposit(asio::any_io_executor ex, const Request& req, Admission adm) {
    LogFields f;
    f.identity = adm.identity;
    f.bytes = req.body.size();
    auto finish = [&](Response r, std::string reason, std::string detail = {}) {
        f.reason = std::move(reason);
        f.detail = std::move(detail);
        log_deposit(req, r, f);
        return r;
    };
    EnvelopeLimits limits;
    limits.max_addresses = cfg_.max_recipients;
    auto env = extract_envelope(req.body, limits);
    if (!env) co_return finish(problem(400, "bad_request", env.error()), "bad_request", env.error());
    DepositEnvelope de{
        adm.identity, adm.from ? *adm.from : env->from, env->from, adm.rcpt.empty() ? env->recipients : adm.rcpt, {}};
    for (auto& o : env->senders) de.other_senders.emplace_back(std::move(o.field), std::move(o.address));
    f.recipients = de.recipients.size();
    if (de.recipients.empty())
        co_return finish(problem(400, "bad_request", "no recipient (no rcpt= and no To, Cc or Bcc address)"),
                         "bad_request");
    if (de.recipients.size() > cfg_.max_recipients)
        co_return finish(
            problem(400, "bad_request", "more than " + std::to_string(cfg_.max_recipients) + " recipients"),
            "bad_request");
    const auto dir = directory_.get();
    const Authorization authz = authorize(de, *dir);
    if (!authz.allowed()) {
        const std::string detail = authz.detail + (authz.address.empty() ? "" : " <" + authz.address + ">");
        Response r = problem(authz.status, authz.reason, detail);
        if (authz.status == 503) r = with_retry_after(std::move(r), 60);
        co_return finish(std::move(r), authz.reason, detail);
    }
    const std::string digest = jose::sha256(req.body);
    const bool keyed = !req.idempotency_key.empty();
    const auto now = IdempotencyCache::Clock::now();
    if (keyed) {
        auto begun = idempotency_.begin(adm.identity, req.idempotency_key, request_digest(digest, de), now);
        switch (begun.verdict) {
            case IdempotencyCache::Verdict::fresh: break;
            case IdempotencyCache::Verdict::in_progress:
                co_return finish(problem(409, "in_progress", "a deposit with this Idempotency-Key is in progress"),
                                 "in_progress");
            case IdempotencyCache::Verdict::reused:
                co_return finish(
                    problem(422, "idempotency_key_reused", "the Idempotency-Key was used for another message"),
                    "idempotency_key_reused");
            case IdempotencyCache::Verdict::replay: {
                f.receipt = begun.receipt_id;
                f.queue_id = begun.queue_id;
                Response r = accepted(begun.receipt_id, begun.queue_id);
                f.reason = "replayed";
                log_deposit(req, r, f);
                co_return r;
            }
            case IdempotencyCache::Verdict::full:
                co_return finish(with_retry_after(problem(503, "busy", "too many deposits in progress"), 10), "busy");
        }
    }
    auto give_up = [&](Response r, std::string reason, std::string detail = {}) {
        if (keyed) idempotency_.abandon(adm.identity, req.idempotency_key);
        return finish(std::move(r), std::move(reason), std::move(detail));
    };
    const Keys keys = keys_;  // a reload while the MTA answers does not change this deposit's
    const std::string receipt_id = ReceiptStore::new_id();
    const std::int64_t t = unix_now();
    SourceInfo source;
    source.client = req.client;
    source.server = req.server;
    source.protocol = "HTTPS";
    source.tls = req.tls;
    source.login = adm.identity;
    source.session_id = receipt_id;
    source.time = t;
    MessageBinding binding;
    binding.kind = env->message_id.empty() ? TraceBinding::envelope : TraceBinding::message_id;
    binding.message_id = env->message_id;
    binding.sender = de.sender;
    const std::string value = sign_trace_header(source, cfg_.server_name, t, binding, *keys.keyring);
    if (receipt_id.empty() || value.empty())
        co_return give_up(with_retry_after(problem(503, "mta_tempfail", "the trace header could not be signed"), 60),
                          "mta_tempfail", "signing failed");
    InjectRequest ir;
    ir.source = source;
    ir.sender = de.sender;
    ir.recipients = de.recipients;
    ir.trace_header = format_field(value) + "\r\n";
    ir.message = req.body;
    const InjectResult result = co_await injector_.inject(ex, ir);
    const std::string mta_text = (result.code ? std::to_string(result.code) + " " : std::string()) +
                                 (result.enhanced.empty() ? "" : result.enhanced + " ") + result.text;
    if (result.outcome == InjectOutcome::tempfail)
        co_return give_up(with_retry_after(problem(503, "mta_tempfail", "the mail system answered: " + mta_text), 60),
                          "mta_tempfail", result.stage + ": " + mta_text);
    if (result.outcome == InjectOutcome::permfail)
        co_return give_up(problem(422, "mta_refused", "the mail system answered: " + mta_text), "mta_refused",
                          result.stage + ": " + mta_text);
    // Accepted by the MTA: from here on, whatever happens, the answer is 303 (a client
    // told otherwise would deposit again).
    f.queue_id = result.queue_id;
    f.receipt = receipt_id;
    jose::Receipt rc;
    rc.issuer = cfg_.server_name;
    rc.issued_at = t;
    rc.sha256 = digest;
    rc.recipients = de.recipients;
    rc.queue_id = result.queue_id;
    auto signed_receipt = jose::sign_receipt(*keys.receipt_key, rc);
    if (signed_receipt) receipts_.put(receipt_id, adm.identity, std::move(*signed_receipt), ReceiptStore::Clock::now());
    else
        log::error("event=receipt_error receipt=%s detail=%s", receipt_id.c_str(),
                   escape_value(signed_receipt.error(), 256).c_str());
    if (keyed)
        idempotency_.complete(adm.identity, req.idempotency_key, receipt_id, result.queue_id,
                              IdempotencyCache::Clock::now());
    co_return finish(accepted(receipt_id, result.queue_id), "");
}

Response DepositService::receipt_keys() const {
    auto jwks = receipt_jwk_set(*keys_.receipt_key);
    if (!jwks) return problem(503, "keys_unavailable", jwks.error());
    Response r;
    r.headers.emplace_back("Content-Type", "application/jwk-set+json");
    r.headers.emplace_back("Cache-Control", "max-age=3600");
    r.body = std::move(*jwks);
    return r;
}

asio::awaitable<Response> DepositService::get_receipt(const Request& req, std::string_view id) {
    Response refusal;
    std::string reason;
    auto identity = co_await authenticate(req, refusal, reason);
    if (!identity) {
        log_http(req, refusal.status, reason, "");
        co_return refusal;
    }
    std::optional<std::string> jws;
    if (receipt_id_syntax(id)) jws = receipts_.get(id, *identity, ReceiptStore::Clock::now());
    if (!jws) {
        log_http(req, 404, "not_found", *identity);
        co_return problem(404, "not_found", "no such receipt");
    }
    Response r;
    r.headers.emplace_back("Content-Type", "application/jose");
    r.body = std::move(*jws);
    log_http(req, 200, "", *identity);
    co_return r;
}

Response DepositService::transport_error(const Request& req, int status, std::string_view reason,
                                         std::string_view detail) {
    log_http(req, status, reason, "");
    if (path_of(req.target) == kDepositPath && req.method == "POST") deposits().with({"refused"}).inc();
    Response r = problem(status, reason, detail);
    r.close = true;
    return r;
}

}  // namespace xproxy::depositd
