// deposit_service.hpp: the routes of doc/deposit.md on a request already read (the HTTPS
// transport is server.hpp): POST /v1/deposit, GET /v1/receipts/ID, GET
// /.well-known/dmail/receipt-keys, and the error answers (application/problem+json).
//
// A deposit runs in two halves so that a request that is refused anyway is refused
// before its body is read: admit() (route, method, the identity from the bearer token or
// a mapped client certificate, the rate limit, Content-Type, Content-Length against
// --max-message-size, Idempotency-Key syntax), then deposit() on the whole body
// (envelope, authorization, idempotency, the signed trace header, injection into the
// MTA, the signed receipt). The 303 is answered only when the MTA accepted the final dot.
//
// Promises: never throws on any request; every answer other than 2xx/3xx is a problem
// document with a reason word of doc/deposit.md; a 401 has WWW-Authenticate (RFC 6750);
// 429 and 503 have Retry-After; one log line per request (event=deposit for POST,
// event=http otherwise) with everything the client sent escaped and never the token;
// runs on one thread (the io_context of the TokenVerifier).
#pragma once

#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xproxy/base/keyring.hpp>
#include <xproxy/base/source_info.hpp>
#include <xproxy/jose/signing_key.hpp>
#include <xproxy/ldap/directory_backend.hpp>

#include "config.hpp"
#include "idempotency.hpp"
#include "rate_limiter.hpp"
#include "receipt_store.hpp"
#include "smtp_injector.hpp"
#include "token_verifier.hpp"

namespace xproxy::depositd {

struct Request {
    std::string method;
    std::string target;  // path and query
    std::string authorization, content_type, idempotency_key;
    std::optional<std::uint64_t> content_length;
    std::string body;
    std::optional<Endpoint> client, server;
    TlsInfo tls;  // peer_fingerprint: a client certificate that verified against --client-ca (SHA-256 hex)
};

struct Response {
    int status = 200;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    bool close = false;  // end the connection after it
};

// What admit() found out, carried to deposit().
struct Admission {
    std::optional<Response> answer;  // set: answer this, do not read the body
    std::string identity;
    std::vector<std::string> rcpt;    // query rcpt= (decoded)
    std::optional<std::string> from;  // query from=
};

// The parts a reload replaces (SIGHUP): the trace header's key ring, the receipt key.
struct Keys {
    std::shared_ptr<const KeyRing> keyring;
    std::shared_ptr<const jose::SigningKey> receipt_key;
};

class DepositService {
public:
    DepositService(const Config& cfg, TokenVerifier& tokens, const SmtpInjector& injector, DirectoryBackend& directory,
                   Keys keys);

    // Routes and answers everything but the body of a deposit. For POST /v1/deposit with
    // no answer set, read the body, then call deposit().
    boost::asio::awaitable<Admission> admit(const Request& req);
    boost::asio::awaitable<Response> deposit(boost::asio::any_io_executor ex, const Request& req, Admission adm);
    // An answer made by the transport (408, 413, 414, 431, 400 of a request that did not
    // parse), logged as event=http.
    Response transport_error(const Request& req, int status, std::string_view reason, std::string_view detail);

    void set_keys(Keys keys) { keys_ = std::move(keys); }
    const Keys& keys() const { return keys_; }

private:
    boost::asio::awaitable<std::optional<std::string>> authenticate(const Request& req, Response& refusal,
                                                                    std::string& reason);
    Response receipt_keys() const;
    boost::asio::awaitable<Response> get_receipt(const Request& req, std::string_view id);
    Response accepted(const std::string& receipt_id, const std::string& queue_id) const;

    const Config& cfg_;
    TokenVerifier& tokens_;
    const SmtpInjector& injector_;
    DirectoryBackend& directory_;
    Keys keys_;
    IdempotencyCache idempotency_;
    RateLimiter rate_;
    ReceiptStore receipts_;
};

// A problem document (RFC 9457) answer; `detail` is text for the client (escaped here).
Response problem(int status, std::string_view reason, std::string_view detail);

// "a%40b.example" -> "a@b.example"; nullopt for a bad escape or a decoded control byte.
std::optional<std::string> percent_decode(std::string_view in);

// The query of a deposit target: rcpt= (repeatable) and from=, percent-decoded and in
// canonical form; anything else, or a malformed item, is a failure.
struct DepositQuery {
    std::vector<std::string> rcpt;
    std::optional<std::string> from;
};
Expected<DepositQuery> parse_deposit_query(std::string_view query, std::size_t max_rcpt);

}  // namespace xproxy::depositd
