// deposit_client.hpp: one deposit over HTTPS as xproxy-deposit(1) makes it (doc/deposit.md):
// find an endpoint that answers, POST the message, follow the 303 to the receipt over the
// same connection, and verify the receipt against the message bytes.
//
// Promises: a token goes only to an endpoint its "aud" claim names (an https URL of the
// endpoint's host and port, token_audience.hpp), unless allow_any_audience: endpoints it
// does not name are dropped before any connection, and with none left nothing is sent
// (kExitNoPerm, naming the audience a token would need). Endpoints are tried in order,
// each of its addresses in turn, until a TLS connection with a certificate valid for the
// endpoint's host name opens; nothing is sent before that. The POST carries the token (never logged nor put in a failure text), the
// recipients and sender as query parameters (percent-encoded) and the Idempotency-Key; a
// POST that fails on the network is sent once more with the same key (the server then
// answers the first deposit's receipt instead of delivering twice). The receipt is fetched
// from the Location of the 303 (a path, or an https URL of the same host and port: the
// token goes nowhere else) and verified with the given public key, or with the key named
// by its kid in the server's /.well-known/dmail/receipt-keys, fetched over the same
// verified connection; it must cover the message's SHA-256 and list every recipient
// given. The outcome carries a sysexits code (below) and a text that names what failed.
#pragma once

#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <xproxy/jose/public_key.hpp>

namespace xproxy::deposit {

// sysexits.h
enum ExitCode : int {
    kExitOk = 0,
    kExitUsage = 64,
    kExitData = 65,         // the server refused the message: 400, 413, 414, 415, 422, 431
    kExitNoInput = 66,      // a file cannot be read
    kExitUnavailable = 69,  // no deposit service for the domain (no SRV, 404, 405)
    kExitSoftware = 70,     // the receipt is missing or does not verify (the message WAS delivered)
    kExitCantCreate = 73,   // --receipt-out cannot be written
    kExitTempFail = 75,     // network, 408, 409, 429, 5xx: try again later with the same key
    kExitProtocol = 76,     // an answer the protocol does not have
    kExitNoPerm = 77,       // 401, 403; a token whose audience names no endpoint (not sent)
    kExitConfig = 78,       // a bad option value or file (mode, format)
};

struct Endpoint {
    std::string url;                     // https://HOST:PORT/v1/deposit
    std::vector<std::string> addresses;  // to connect to (the name is still verified); empty: resolve HOST
};

struct DepositJob {
    std::vector<Endpoint> endpoints;
    std::string message;
    std::vector<std::string> recipients;  // may be empty: the server reads the header fields
    std::string from;                     // may be empty: the From: address
    std::string token;                    // may be empty when a client certificate is used
    // false: the token goes only to endpoints its "aud" names (token_audience.hpp); the
    // others are dropped, and with none left nothing is sent (kExitNoPerm).
    bool allow_any_audience = false;
    std::string idempotency_key;
    std::string ca_file;  // "" = system store
    std::string cert_file;
    std::string key_file;
    std::optional<jose::PublicKey> receipt_key;  // none: the server's receipt-keys JWK set
    std::chrono::milliseconds timeout{60000};    // per request
};

struct DepositOutcome {
    int exit_code = kExitTempFail;
    bool delivered = false;  // the server answered 303: the message is on its way
    std::string error;       // not ok: what failed (escaped)
    std::string endpoint;    // the URL used
    std::string queue_id;
    std::string receipt;  // the compact JWS as received
    std::string kid;
};

boost::asio::awaitable<DepositOutcome> run_deposit(boost::asio::any_io_executor ex, DepositJob job);

// The query of a POST: "?rcpt=a%40b&from=..." (RFC 3986 unreserved bytes kept).
std::string deposit_query(const std::vector<std::string>& recipients, const std::string& from);

}  // namespace xproxy::deposit
