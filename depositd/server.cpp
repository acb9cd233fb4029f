// server.cpp: HTTPS connections of xproxy-depositd; see server.hpp.
#include "server.hpp"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <limits>
#include <utility>

#include <xproxy/base/text.hpp>
#include <xproxy/daemon/log.hpp>
#include <xproxy/daemon/metrics.hpp>
#include <xproxy/daemon/tls.hpp>

namespace xproxy::depositd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using Stream = beast::ssl_stream<beast::tcp_stream>;
using boost::system::error_code;

namespace {

const metrics::ListenerMetrics& connection_metrics() {
    static const metrics::ListenerMetrics m = metrics::listener_metrics("xproxy_depositd", "https");
    return m;
}

std::optional<Endpoint> endpoint_of(const asio::ip::tcp::endpoint& e) {
    return Endpoint::from_sockaddr(e.data(), static_cast<unsigned>(e.size()));
}

// Version, cipher and a client certificate that verified (its SHA-256, lower-case hex).
TlsInfo tls_info(SSL* ssl) {
    TlsInfo t;
    t.version = SSL_get_version(ssl);
    if (const SSL_CIPHER* c = SSL_get_current_cipher(ssl)) {
        t.cipher = SSL_CIPHER_get_name(c);
        t.bits = static_cast<unsigned>(SSL_CIPHER_get_bits(c, nullptr));
    }
    X509* cert = SSL_get0_peer_certificate(ssl);
    if (cert && SSL_get_verify_result(ssl) == X509_V_OK) {
        std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
        unsigned len = 0;
        if (X509_digest(cert, EVP_sha256(), md.data(), &len) == 1) {
            static constexpr char hex[] = "0123456789abcdef";
            for (unsigned i = 0; i < len; ++i) {
                t.peer_fingerprint.push_back(hex[md[i] >> 4]);
                t.peer_fingerprint.push_back(hex[md[i] & 15]);
            }
        }
        if (char* s = X509_NAME_oneline(X509_get_subject_name(cert), nullptr, 0)) {
            t.peer_subject = s;
            OPENSSL_free(s);
        }
    }
    return t;
}

Request request_of(const bhttp::request_parser<bhttp::string_body>& parser) {
    const auto& h = parser.get();
    Request r;
    r.method = std::string(h.method_string());
    r.target = std::string(h.target());
    r.authorization = std::string(h[bhttp::field::authorization]);
    r.content_type = std::string(h[bhttp::field::content_type]);
    r.idempotency_key = std::string(h["Idempotency-Key"]);
    if (auto n = parser.content_length()) r.content_length = *n;
    return r;
}

bhttp::response<bhttp::string_body> message_of(Response r, unsigned version, bool keep_alive) {
    bhttp::response<bhttp::string_body> m{static_cast<bhttp::status>(r.status), version};
    for (auto& [name, value] : r.headers) m.set(name, value);
    if (m[bhttp::field::cache_control].empty()) m.set(bhttp::field::cache_control, "no-store");
    m.body() = std::move(r.body);
    m.keep_alive(keep_alive);
    m.prepare_payload();
    return m;
}

// The transport's own refusals of a request that did not arrive whole.
struct ReadFailure {
    int status = 0;  // 0: close without an answer
    const char* reason = "";
};

ReadFailure classify(const error_code& ec, bool started, bool expired) {
    if (expired || ec == beast::error::timeout) return started ? ReadFailure{408, "timeout"} : ReadFailure{};
    if (ec == bhttp::error::header_limit) return {431, "header_too_large"};
    if (ec == bhttp::error::body_limit) return {413, "too_large"};
    if (ec == bhttp::error::end_of_stream || ec == asio::error::eof || ec == asio::ssl::error::stream_truncated ||
        ec == asio::error::connection_reset || ec == asio::error::operation_aborted)
        return {};
    return started ? ReadFailure{400, "bad_request"} : ReadFailure{};
}

asio::awaitable<bool> write(Stream& s, Response r, unsigned version, bool keep_alive, std::chrono::seconds timeout) {
    auto m = message_of(std::move(r), version, keep_alive);
    beast::get_lowest_layer(s).expires_after(timeout);
    error_code ec;
    co_await bhttp::async_write(s, m, asio::redirect_error(asio::use_awaitable, ec));
    co_return !ec;
}

// A read's deadline that leaves the connection open (beast::tcp_stream's own closes the
// socket, and a started request is still owed its 408): on expiry the socket's
// operations are cancelled and expired() says why.
class ReadDeadline {
public:
    explicit ReadDeadline(Stream& s) : state_(std::make_shared<State>(s)) {}
    void arm(std::chrono::seconds d) {
        state_->fired = false;
        state_->timer.expires_after(d);
        state_->timer.async_wait([w = std::weak_ptr<State>(state_)](const error_code& ec) {
            auto st = w.lock();
            if (ec || !st) return;
            st->fired = true;
            error_code ignored;
            st->stream.next_layer().socket().cancel(ignored);
        });
    }
    void disarm() { state_->timer.cancel(); }
    bool expired() const { return state_->fired; }

private:
    struct State {
        explicit State(Stream& s) : stream(s), timer(s.get_executor()) {}
        Stream& stream;
        asio::steady_timer timer;
        bool fired = false;
    };
    std::shared_ptr<State> state_;
};

// After an answer to a request whose body was not read: read and drop what the client
// still sends for a moment (at most 4 MiB or 1 s), then close.
asio::awaitable<void> linger(Stream& s) {
    beast::get_lowest_layer(s).expires_after(std::chrono::seconds(1));
    std::array<char, 16384> sink{};
    error_code ec;
    for (std::size_t drained = 0; drained < 4 * 1024 * 1024 && !ec;)
        drained += co_await s.async_read_some(asio::buffer(sink), asio::redirect_error(asio::use_awaitable, ec));
}

}  // namespace

Expected<std::shared_ptr<asio::ssl::context>> server_tls_context(const Config& cfg) {
    if (auto key = daemon::check_private_key_file(cfg.tls_key); !key) return Failure{"--tls-key: " + key.error()};
    std::shared_ptr<asio::ssl::context> ctx;
    try {
        ctx = daemon::tls_server_context(cfg.tls_cert, cfg.tls_key);
    } catch (const std::exception& e) {
        return Failure{"--tls-cert/--tls-key: " + std::string(e.what())};
    }
    if (cfg.client_ca.empty()) return ctx;
    try {
        ctx->load_verify_file(cfg.client_ca);
    } catch (const std::exception& e) {
        return Failure{"--client-ca " + cfg.client_ca + ": " + e.what()};
    }
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(cfg.client_ca.c_str()))
        SSL_CTX_set_client_CA_list(ctx->native_handle(), names);
    // Asked for, not required: a client without one presents a token instead. A
    // certificate that does not verify fails the handshake (the client meant to use it).
    ctx->set_verify_mode(asio::ssl::verify_peer);
    return ctx;
}

std::string Server::client_key(const asio::ip::address& a) {
    if (a.is_v4()) return a.to_string();
    const auto v6 = a.to_v6();
    if (v6.is_v4_mapped()) return asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_string();
    auto bytes = v6.to_bytes();
    std::fill(bytes.begin() + 8, bytes.end(), static_cast<unsigned char>(0));
    return asio::ip::address_v6(bytes).to_string() + "/64";
}

bool Server::evict_one() {
    std::shared_ptr<Conn> victim;
    for (const auto& c : conns_)
        if (!c->busy && !c->evicted && (!victim || c->since < victim->since)) victim = c;
    if (!victim) return false;
    victim->evicted = true;
    if (victim->cancel) victim->cancel();
    return true;
}

void Server::release(const std::shared_ptr<Conn>& conn) {
    conns_.remove(conn);
    if (auto it = per_client_.find(conn->client); it != per_client_.end() && --it->second == 0) per_client_.erase(it);
    --active_;
}

void Server::accept(asio::ip::tcp::socket sock) {
    error_code ec;
    const auto peer = sock.remote_endpoint(ec);
    if (ec) {  // gone already
        sock.close(ec);
        return;
    }
    const std::string key = client_key(peer.address());
    auto refuse = [&](std::size_t& burst, const char* limit, unsigned max) {
        if (burst++ == 0)
            log::warning(
                "event=limit limit=%s max=%u client=%s (further refusals are counted until a connection "
                "is admitted)",
                limit, max, endpoint_of(peer) ? endpoint_of(peer)->to_string().c_str() : "-");
        error_code ignored;
        sock.close(ignored);
    };
    unsigned& mine = per_client_[key];
    if (mine >= cfg_.max_connections_per_client) {
        refuse(refused_client_, "max-connections-per-client", cfg_.max_connections_per_client);
        return;
    }
    if (active_ >= cfg_.max_connections) {
        if (!evict_one()) {
            if (mine == 0) per_client_.erase(key);
            refuse(refused_, "max-connections", cfg_.max_connections);
            return;
        }
        if (evicted_++ == 0)
            log::warning(
                "event=limit limit=max-connections max=%u action=evict detail=\"the connection waiting "
                "longest without a request closed to make room\" (further evictions are counted until "
                "one is not needed)",
                cfg_.max_connections);
    } else if (evicted_ > 0) {
        log::warning("event=limit_end limit=max-connections action=evict evicted=%zu", evicted_);
        evicted_ = 0;
    }
    if (refused_ > 0) log::warning("event=limit_end limit=max-connections refused=%zu", std::exchange(refused_, 0));
    if (refused_client_ > 0)
        log::warning("event=limit_end limit=max-connections-per-client refused=%zu", std::exchange(refused_client_, 0));
    ++mine;
    ++active_;  // counted here, not when the coroutine starts: a burst of accepts sees it
    auto conn = std::make_shared<Conn>();
    conn->client = key;
    conns_.push_back(conn);
    auto ex = sock.get_executor();
    asio::co_spawn(ex, session(std::move(sock), std::move(conn)), asio::detached);
}

asio::awaitable<void> Server::session(asio::ip::tcp::socket sock, std::shared_ptr<Conn> conn) {
    struct Release {
        Server& server;
        const std::shared_ptr<Conn>& conn;
        ~Release() {
            conn->cancel = nullptr;
            server.release(conn);
        }
    } release{*this, conn};
    if (conn->evicted) co_return;  // made room before it began
    const metrics::SessionCount counted(connection_metrics());
    error_code ec;
    const auto peer = sock.remote_endpoint(ec);
    const auto local = sock.local_endpoint(ec);
    auto ex = sock.get_executor();
    const std::shared_ptr<asio::ssl::context> tls_context = tls_;  // kept for the connection's life
    Stream stream(beast::tcp_stream(std::move(sock)), *tls_context);
    // Eviction: the pending handshake or read fails (operation_aborted) and the loop ends.
    struct Cancel {
        const std::shared_ptr<Conn>& conn;
        ~Cancel() { conn->cancel = nullptr; }
    } cancel_on_exit{conn};
    conn->cancel = [&stream] {
        error_code ignored;
        stream.next_layer().socket().cancel(ignored);
    };
    beast::get_lowest_layer(stream).expires_after(cfg_.header_timeout);
    co_await stream.async_handshake(asio::ssl::stream_base::server, asio::redirect_error(asio::use_awaitable, ec));
    const std::optional<Endpoint> client = endpoint_of(peer), server = endpoint_of(local);
    if (ec || conn->evicted) {
        log::debug("event=tls_failed client=%s detail=\"%s\"", client ? client->to_string().c_str() : "-",
                   ec.message().c_str());
        co_return;
    }
    const TlsInfo tls = tls_info(stream.native_handle());
    ReadDeadline deadline(stream);
    beast::flat_buffer buf;
    for (;;) {
        conn->busy = false;
        conn->since = std::chrono::steady_clock::now();
        if (conn->evicted) break;
        bhttp::request_parser<bhttp::string_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(kMaxHeaderBytes));
        // The body's limit is set once the request is admitted: a Content-Length over it is
        // then refused by DepositService (413 after the identity, logged as a deposit).
        parser.body_limit(std::numeric_limits<std::uint64_t>::max());
        beast::get_lowest_layer(stream).expires_never();
        deadline.arm(cfg_.header_timeout);
        co_await bhttp::async_read_header(stream, buf, parser, asio::redirect_error(asio::use_awaitable, ec));
        deadline.disarm();
        conn->busy = !ec;
        Request req;
        req.client = client;
        req.server = server;
        req.tls = tls;
        if (ec) {
            const ReadFailure f = classify(ec, parser.got_some() || buf.size() > 0, deadline.expired());
            if (f.status != 0) {
                Response refusal = service_.transport_error(req, f.status, f.reason, "the request could not be read");
                co_await write(stream, std::move(refusal), 11, false, cfg_.header_timeout);
                co_await linger(stream);
            }
            break;
        }
        {
            Request head = request_of(parser);
            head.client = client;
            head.server = server;
            head.tls = tls;
            req = std::move(head);
        }
        const unsigned version = parser.get().version();
        if (req.target.size() > kMaxTargetBytes) {
            Response refusal = service_.transport_error(req, 414, "uri_too_long", "the target is too long");
            co_await write(stream, std::move(refusal), version, false, cfg_.header_timeout);
            co_await linger(stream);
            break;
        }
        Admission adm = co_await service_.admit(req);
        if (adm.answer) {
            const bool close = adm.answer->close || !parser.is_done() || !parser.get().keep_alive();
            const bool written = co_await write(stream, std::move(*adm.answer), version, !close, cfg_.header_timeout);
            if (!written) break;
            if (close) {
                if (!parser.is_done()) co_await linger(stream);
                break;
            }
            continue;
        }
        const auto expect = parser.get()[bhttp::field::expect];
        if (iequals(trim(std::string_view(expect.data(), expect.size())), "100-continue")) {
            static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
            beast::get_lowest_layer(stream).expires_after(cfg_.body_timeout);
            co_await asio::async_write(stream, asio::buffer(kContinue), asio::redirect_error(asio::use_awaitable, ec));
            if (ec) break;
        }
        parser.body_limit(cfg_.max_message_size);  // a chunked body is counted as it arrives
        beast::get_lowest_layer(stream).expires_never();
        deadline.arm(cfg_.body_timeout);
        if (!parser.is_done())
            co_await bhttp::async_read(stream, buf, parser, asio::redirect_error(asio::use_awaitable, ec));
        deadline.disarm();
        if (ec) {
            const ReadFailure f = classify(ec, true, deadline.expired());
            if (f.status != 0) {
                Response refusal = service_.transport_error(req, f.status, f.reason, "the body could not be read");
                co_await write(stream, std::move(refusal), version, false, cfg_.header_timeout);
                if (f.status == 413) co_await linger(stream);
            }
            break;
        }
        req.body = std::move(parser.get().body());
        const bool keep_alive = parser.get().keep_alive();
        beast::get_lowest_layer(stream).expires_never();  // the injector has deadlines of its own
        Response res = co_await service_.deposit(ex, req, std::move(adm));
        const bool close = res.close || !keep_alive;
        const bool written = co_await write(stream, std::move(res), version, !close, cfg_.header_timeout);
        if (!written || close) break;
    }
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(1));
    co_await stream.async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
}

}  // namespace xproxy::depositd
