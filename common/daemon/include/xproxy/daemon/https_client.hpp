// https_client.hpp: one HTTPS request (HTTP/1.1 over TLS, Boost.Beast) from a coroutine,
// for fetching an identity provider's documents and for the deposit client command.
//
// Promises: only https:// URLs (host, optional port, path and query; no user info);
// the server's certificate is verified against ca_file (or the system store) and the
// URL's host name (SNI sent, SSL_set1_host; an address literal is matched as an IP
// address), TLS 1.2 or later (tls.hpp); the whole exchange (resolve, connect, handshake,
// request, response) has one deadline; a response body over max_body_bytes or a header
// block over 16 KiB is a failure, not truncated; redirects are not followed (the caller
// sees 3xx and Location). Failure texts name the URL's host and what failed, never a
// request header value (an Authorization token stays out of every message). Never throws.
#pragma once

#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <xproxy/base/result.hpp>
#include <xproxy/daemon/https_url.hpp>

namespace xproxy::http {

struct HttpsRequest {
    std::string method = "GET";
    std::string url;                                           // https://...
    std::vector<std::pair<std::string, std::string>> headers;  // extra request header fields
    std::string body;
    std::string ca_file;  // "" = the system's store
    // Client certificate (PEM files), optional.
    std::string cert_file;
    std::string key_file;
    std::chrono::milliseconds timeout{10000};
    std::size_t max_body_bytes = std::size_t{1} << 20;
    // Connect to this address instead of resolving the URL's host (the name is still the
    // one verified); for SRV targets already resolved and tests. "" = resolve.
    std::string connect_address;
};

struct HttpsResponse {
    int status = 0;
    std::vector<std::pair<std::string, std::string>> headers;  // as received (names as sent)
    std::string body;
    // The first header field named `name` (any case), or "".
    std::string header(std::string_view name) const;
};

boost::asio::awaitable<Expected<HttpsResponse>> https_request(boost::asio::any_io_executor ex, HttpsRequest request);

// Several requests over one keep-alive TLS connection (the deposit client: POST, then
// GET of the receipt). Not thread-safe; one request at a time.
class HttpsSession {
public:
    HttpsSession(boost::asio::any_io_executor ex, std::string ca_file, std::string cert_file = {},
                 std::string key_file = {});
    ~HttpsSession();
    HttpsSession(const HttpsSession&) = delete;
    HttpsSession& operator=(const HttpsSession&) = delete;
    // Connects on first use (to request.url's host:port, or connect_address) and reuses the
    // connection while the URL's host and port stay the same and the server keeps it open.
    boost::asio::awaitable<Expected<HttpsResponse>> request(HttpsRequest request);
    // Opens the connection that request() will use for this URL's host and port and this
    // connect_address (TLS handshake and name check included) without sending anything:
    // a caller with several addresses or servers to try finds one that answers before it
    // sends a request that must not be sent twice.
    boost::asio::awaitable<Expected<void>> connect(std::string url, std::string connect_address,
                                                   std::chrono::milliseconds timeout);

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace xproxy::http
