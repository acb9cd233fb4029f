// https_client.cpp: HTTP/1.1 over TLS with Boost.Beast; see https_client.hpp.
//
// One deadline per request: the resolver is cancelled by a timer when it passes, and
// the tcp_stream's own timer (expires_at) covers connect, handshake, write and read;
// when it fires the socket is closed and the pending operation fails with
// beast::error::timeout. Beast's response_parser enforces the header (16 KiB) and body
// limits. The server name is checked by OpenSSL during the handshake (SSL_set1_host, or
// the IP address of a literal), so a wrong certificate never gets a request written.
// A reused keep-alive connection that the server closed meanwhile is retried once on a
// fresh connection, and only when no byte of a response arrived.
#include <xproxy/daemon/https_client.hpp>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <exception>
#include <optional>

#include <xproxy/base/escape.hpp>
#include <xproxy/base/text.hpp>
#include <xproxy/daemon/tls.hpp>

namespace xproxy::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kMaxHeaderBytes = 16 * 1024;

// "host:port" as failure texts and the Host field show it ([v6]:port).
std::string authority(const HttpsUrl& url, bool always_port) {
    std::string out = url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
    if (always_port || url.port != 443) out += ":" + std::to_string(url.port);
    return out;
}

std::string describe(const error_code& ec) {
    if (ec == beast::error::timeout) return "timed out";
    return ec.message();
}

// A header name is an RFC 9110 token; a value has no control characters (no CR, LF).
bool valid_field(const std::string& name, const std::string& value) {
    if (name.empty()) return false;
    for (char c : name) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f || std::string_view("\"(),/:;<=>?@[\\]{}").find(c) != std::string_view::npos)
            return false;
    }
    for (char c : value) {
        const auto u = static_cast<unsigned char>(c);
        if ((u < 0x20 && c != '\t') || u == 0x7f) return false;
    }
    return true;
}

}  // namespace

std::string HttpsResponse::header(std::string_view name) const {
    for (const auto& [n, v] : headers)
        if (iequals(n, name)) return v;
    return {};
}

namespace {

// One TLS connection and what it was opened for.
struct Connection {
    Connection(const asio::any_io_executor& ex, ssl::context& ctx) : stream(ex, ctx) {}
    beast::ssl_stream<beast::tcp_stream> stream;
    beast::flat_buffer buffer;
    std::string host;
    std::uint16_t port = 0;
    std::string connect_address;
    bool usable = false;  // connected and the last response allowed keep-alive
};

// Resolves (or takes connect_address), connects, and completes the TLS handshake with
// the server's certificate checked for url.host.
asio::awaitable<Expected<void>> open_connection(Connection& c, const HttpsUrl& url, const std::string& connect_address,
                                                Clock::time_point deadline) {
    const std::string where = "https://" + authority(url, false);
    auto ex = co_await asio::this_coro::executor;
    std::vector<tcp::endpoint> endpoints;
    error_code ec;
    if (!connect_address.empty()) {
        auto addr = asio::ip::make_address(connect_address, ec);
        if (ec) co_return Failure{where + ": bad connect address " + escape(connect_address)};
        endpoints.emplace_back(addr, url.port);
    } else if (is_address_literal(url.host)) {
        endpoints.emplace_back(asio::ip::make_address(url.host, ec), url.port);
    } else {
        // Shared with the timer's handler, which may already be queued when the
        // resolver completes.
        struct Lookup {
            explicit Lookup(const asio::any_io_executor& e) : resolver(e) {}
            tcp::resolver resolver;
            bool timed_out = false;
        };
        auto lookup = std::make_shared<Lookup>(ex);
        asio::steady_timer timer(ex);
        timer.expires_at(deadline);
        timer.async_wait([lookup](error_code wait_ec) {
            if (wait_ec) return;
            lookup->timed_out = true;
            lookup->resolver.cancel();
        });
        const std::string port = std::to_string(url.port);
        auto results = co_await lookup->resolver.async_resolve(url.host, port,
                                                               asio::redirect_error(asio::use_awaitable, ec));
        timer.cancel();
        if (lookup->timed_out) co_return Failure{where + ": resolving the name timed out"};
        if (ec) co_return Failure{where + ": cannot resolve the name: " + ec.message()};
        for (const auto& r : results) endpoints.push_back(r.endpoint());
        if (endpoints.empty()) co_return Failure{where + ": the name has no address"};
    }

    auto& tcp_layer = beast::get_lowest_layer(c.stream);
    tcp_layer.expires_at(deadline);
    co_await tcp_layer.async_connect(endpoints, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return Failure{where + ": cannot connect: " + describe(ec)};

    SSL* ssl_handle = c.stream.native_handle();
    SSL_set_hostflags(ssl_handle, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (is_address_literal(url.host)) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_handle), url.host.c_str()) != 1)
            co_return Failure{where + ": cannot set the address to verify"};
    } else {
        // SNI (SSL_set_tlsext_host_name, without its C cast), then the name to verify.
        if (SSL_ctrl(ssl_handle, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                     const_cast<char*>(url.host.c_str())) != 1 ||
            SSL_set1_host(ssl_handle, url.host.c_str()) != 1)
            co_return Failure{where + ": cannot set the name to verify"};
    }
    co_await c.stream.async_handshake(ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
        const long verify = SSL_get_verify_result(ssl_handle);
        if (verify != X509_V_OK)
            co_return Failure{where + ": server certificate not accepted: " + X509_verify_cert_error_string(verify)};
        co_return Failure{where + ": TLS handshake failed: " + describe(ec)};
    }
    c.host = url.host;
    c.port = url.port;
    c.connect_address = connect_address;
    c.buffer.clear();
    c.usable = true;
    co_return Expected<void>{};
}

struct Exchange {
    Expected<HttpsResponse> response;
    bool response_started = false;  // some bytes of a response arrived
};

// Writes the request and reads the response on an open connection.
asio::awaitable<Exchange> exchange(Connection& c, const HttpsUrl& url, const HttpsRequest& request,
                                   Clock::time_point deadline) {
    const std::string where = "https://" + authority(url, false);
    bhttp::request<bhttp::string_body> req;
    req.method(bhttp::string_to_verb(request.method));
    req.target(url.target);
    req.version(11);
    req.set(bhttp::field::host, authority(url, false));
    req.set(bhttp::field::user_agent, "xproxy");
    for (const auto& [name, value] : request.headers) req.set(name, value);
    req.body() = request.body;
    req.prepare_payload();

    auto& tcp_layer = beast::get_lowest_layer(c.stream);
    tcp_layer.expires_at(deadline);
    error_code ec;
    co_await bhttp::async_write(c.stream, req, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
        c.usable = false;
        co_return Exchange{Failure{where + ": cannot send the request: " + describe(ec)}, false};
    }

    bhttp::response_parser<bhttp::string_body> parser;
    parser.header_limit(kMaxHeaderBytes);
    parser.body_limit(request.max_body_bytes);
    if (req.method() == bhttp::verb::head) parser.skip(true);
    const std::size_t buffered_before = c.buffer.size();
    // The header block first, then the body: Beast 1.74's eager parse (async_read alone)
    // loses the body_limit error of a Content-Length when body bytes arrived with the
    // header, and reads the whole body anyway.
    co_await bhttp::async_read_header(c.stream, c.buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (!ec && !parser.is_done())
        co_await bhttp::async_read(c.stream, c.buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    const bool started = parser.got_some() || c.buffer.size() > buffered_before || buffered_before > 0;
    if (ec) {
        c.usable = false;
        if (ec == bhttp::error::body_limit)
            co_return Exchange{
                Failure{where + ": response body larger than " + std::to_string(request.max_body_bytes) + " bytes"},
                true};
        if (ec == bhttp::error::header_limit)
            co_return Exchange{
                Failure{where + ": response header block larger than " + std::to_string(kMaxHeaderBytes) + " bytes"},
                true};
        co_return Exchange{Failure{where + ": cannot read the response: " + describe(ec)}, started};
    }
    auto msg = parser.release();
    HttpsResponse out;
    out.status = static_cast<int>(msg.result_int());
    for (const auto& field : msg)
        out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    out.body = std::move(msg.body());
    c.usable = msg.keep_alive();
    co_return Exchange{std::move(out), true};
}

// The checks of a request before any I/O.
Expected<HttpsUrl> check_request(const HttpsRequest& request) {
    auto url = parse_https_url(request.url);
    if (!url) return url;
    if (bhttp::string_to_verb(request.method) == bhttp::verb::unknown)
        return Failure{"https://" + authority(*url, false) + ": unknown method " + escape(request.method)};
    for (const auto& [name, value] : request.headers)
        if (!valid_field(name, value))
            return Failure{"https://" + authority(*url, false) + ": request header field " + escape(name) +
                           " has a bad name or value"};
    return url;
}

// A client context as tls.hpp builds it, with the optional client certificate. Never throws.
Expected<std::unique_ptr<ssl::context>> client_context(const std::string& ca_file, const std::string& cert_file,
                                                       const std::string& key_file) {
    std::unique_ptr<ssl::context> ctx;
    try {
        ctx = daemon::tls_client_context(true, ca_file);
    } catch (const std::exception& e) {
        return Failure{"cannot use the CA file " + escape(ca_file) + ": " + e.what()};
    }
    if (cert_file.empty() != key_file.empty()) return Failure{"a client certificate needs both its chain and its key"};
    if (!cert_file.empty()) {
        if (auto mode = daemon::check_private_key_file(key_file); !mode) return Failure{mode.error()};
        try {
            ctx->use_certificate_chain_file(cert_file);
            ctx->use_private_key_file(key_file, ssl::context::pem);
        } catch (const std::exception& e) {
            return Failure{"cannot use the client certificate " + escape(cert_file) + ": " + e.what()};
        }
    }
    return ctx;
}

void close_connection(Connection& c) {
    error_code ignored;
    beast::get_lowest_layer(c.stream).socket().close(ignored);
    c.usable = false;
}

}  // namespace

boost::asio::awaitable<Expected<HttpsResponse>> https_request(boost::asio::any_io_executor ex, HttpsRequest request) {
    HttpsSession session(std::move(ex), request.ca_file, request.cert_file, request.key_file);
    co_return co_await session.request(std::move(request));
}

struct HttpsSession::Impl {
    asio::any_io_executor ex;
    std::string ca_file;
    std::string cert_file;
    std::string key_file;
    std::unique_ptr<ssl::context> ctx;
    std::unique_ptr<Connection> conn;
};

HttpsSession::HttpsSession(boost::asio::any_io_executor ex, std::string ca_file, std::string cert_file,
                           std::string key_file)
    : impl_(std::make_unique<Impl>()) {
    impl_->ex = std::move(ex);
    impl_->ca_file = std::move(ca_file);
    impl_->cert_file = std::move(cert_file);
    impl_->key_file = std::move(key_file);
}

HttpsSession::~HttpsSession() {
    if (impl_->conn) close_connection(*impl_->conn);
}

boost::asio::awaitable<Expected<void>> HttpsSession::connect(std::string url, std::string connect_address,
                                                             std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    auto parsed = parse_https_url(url);
    if (!parsed) co_return Failure{parsed.error()};
    if (!impl_->ctx) {
        auto ctx = client_context(impl_->ca_file, impl_->cert_file, impl_->key_file);
        if (!ctx) co_return Failure{ctx.error()};
        impl_->ctx = std::move(*ctx);
    }
    auto& conn = impl_->conn;
    if (conn) close_connection(*conn);
    conn = std::make_unique<Connection>(impl_->ex, *impl_->ctx);
    auto opened = co_await open_connection(*conn, *parsed, connect_address, deadline);
    if (!opened) close_connection(*conn);
    co_return opened;
}

boost::asio::awaitable<Expected<HttpsResponse>> HttpsSession::request(HttpsRequest request) {
    const auto deadline = Clock::now() + request.timeout;
    auto url = check_request(request);
    if (!url) co_return Failure{url.error()};
    if (!impl_->ctx) {
        auto ctx = client_context(impl_->ca_file, impl_->cert_file, impl_->key_file);
        if (!ctx) co_return Failure{ctx.error()};
        impl_->ctx = std::move(*ctx);
    }
    auto& conn = impl_->conn;
    bool reused = conn && conn->usable && conn->host == url->host && conn->port == url->port &&
                  conn->connect_address == request.connect_address;
    for (;;) {
        if (!reused) {
            if (conn) close_connection(*conn);
            conn = std::make_unique<Connection>(impl_->ex, *impl_->ctx);
            auto opened = co_await open_connection(*conn, *url, request.connect_address, deadline);
            if (!opened) {
                close_connection(*conn);
                co_return Failure{opened.error()};
            }
        }
        auto result = co_await exchange(*conn, *url, request, deadline);
        if (!result.response) {
            close_connection(*conn);
            // The server closed an idle keep-alive connection: try once more, fresh.
            if (reused && !result.response_started && Clock::now() < deadline) {
                reused = false;
                continue;
            }
            co_return std::move(result.response);
        }
        if (!conn->usable) close_connection(*conn);
        co_return std::move(result.response);
    }
}

}  // namespace xproxy::http
