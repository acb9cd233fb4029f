// conn.cpp: deadlines, STARTTLS and SMTP line/reply reading; see conn.hpp.
#include "conn.hpp"

#include <xproxy/base/invariant.hpp>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace xproxy::xproxyd {

using asio::use_awaitable;

std::string Reply::wire() const {
    std::string out;
    if (code == 0) return out;
    std::string c = std::to_string(code);
    for (std::size_t i = 0; i < lines.size(); ++i) {
        out += c;
        out += i + 1 < lines.size() ? '-' : ' ';
        out += lines[i];
        out += "\r\n";
    }
    if (lines.empty()) out = c + "\r\n";
    return out;
}

void Conn::start_timer(std::chrono::steady_clock::time_point at) {
    timer_running_ = true;
    timer_at_ = at;
    unsigned gen = ++timer_gen_;
    timer_.expires_at(at);
    timer_.async_wait([weak = weak_from_this(), gen](error_code ec) {
        auto self = weak.lock();
        if (!self || gen != self->timer_gen_) return;  // gone, or replaced by an earlier deadline
        self->timer_running_ = false;
        if (ec || !self->pending_) return;
        if (std::chrono::steady_clock::now() >= self->deadline_) {
            self->timed_out_ = true;
            error_code ignored;
            self->sock_.cancel(ignored);
        } else {
            self->start_timer(self->deadline_);
        }
    });
}

void Conn::arm(Seconds t) {
    timed_out_ = false;
    pending_ = true;
    deadline_ = std::chrono::steady_clock::now() + t;
    if (!timer_running_ || deadline_ < timer_at_) start_timer(deadline_);
}

asio::awaitable<void> Conn::connect(const asio::ip::tcp::endpoint& ep, Seconds timeout, error_code& ec) {
    arm(timeout);
    co_await sock_.async_connect(ep, asio::redirect_error(use_awaitable, ec));
    disarm();
    if (ec && timed_out_) ec = asio::error::timed_out;
    if (!ec) {
        error_code ignored;
        sock_.set_option(asio::ip::tcp::no_delay(true), ignored);
    }
}

asio::awaitable<std::size_t> Conn::read_some(char* p, std::size_t n, Seconds timeout, error_code& ec) {
    arm(timeout);
    std::size_t got = 0;
    if (tls_) got = co_await tls_->async_read_some(asio::buffer(p, n), asio::redirect_error(use_awaitable, ec));
    else got = co_await sock_.async_read_some(asio::buffer(p, n), asio::redirect_error(use_awaitable, ec));
    disarm();
    if (ec && timed_out_) ec = asio::error::timed_out;
    co_return got;
}

asio::awaitable<void> Conn::write(std::string_view data, Seconds timeout, error_code& ec) {
    arm(timeout);
    if (tls_) co_await asio::async_write(*tls_, asio::buffer(data), asio::redirect_error(use_awaitable, ec));
    else co_await asio::async_write(sock_, asio::buffer(data), asio::redirect_error(use_awaitable, ec));
    disarm();
    if (ec && timed_out_) ec = asio::error::timed_out;
}

asio::awaitable<void> Conn::handshake(asio::ssl::context& ctx, bool server, const std::string& peer, bool verify,
                                      Seconds timeout, error_code& ec) {
    if (buffered() > 0) {  // plain text read before the handshake: never carried across it
        ec = boost::system::errc::make_error_code(boost::system::errc::protocol_error);
        co_return;
    }
    in_.clear();
    in_pos_ = 0;
    tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket&>>(sock_, ctx);
    SSL* ssl = tls_->native_handle();
    if (!server) {
        error_code bad;
        const bool is_ip = !peer.empty() && (asio::ip::make_address(peer, bad), !bad);
        if (!peer.empty() && !is_ip)  // SNI (SSL_set_tlsext_host_name, without its C cast); none for an address
            SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(peer.c_str()));
        if (verify) {
            X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
            X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            const int set = peer.empty() ? (chain_only_ ? 1 : 0)
                            : is_ip      ? X509_VERIFY_PARAM_set1_ip_asc(param, peer.c_str())
                                         : X509_VERIFY_PARAM_set1_host(param, peer.c_str(), peer.size());
            if (set != 1) {  // no identity to check: refuse rather than accept any certificate
                ec = boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
                tls_.reset();
                co_return;
            }
            SSL_set_verify(ssl, SSL_VERIFY_PEER, nullptr);
        } else {
            SSL_set_verify(ssl, SSL_VERIFY_NONE, nullptr);
        }
    }
    arm(timeout);
    co_await tls_->async_handshake(server ? asio::ssl::stream_base::server : asio::ssl::stream_base::client,
                                   asio::redirect_error(use_awaitable, ec));
    disarm();
    if (ec && timed_out_) ec = asio::error::timed_out;
}

bool Conn::peer_matches(const std::string& name) const {
    if (!tls_ || name.empty()) return false;
    X509* cert = SSL_get0_peer_certificate(tls_->native_handle());
    return cert && SSL_get_verify_result(tls_->native_handle()) == X509_V_OK &&
           X509_check_host(cert, name.data(), name.size(), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, nullptr) == 1;
}

std::string Conn::verify_error() const {
    if (!tls_) return {};
    const long r = SSL_get_verify_result(tls_->native_handle());
    return r == X509_V_OK ? std::string() : X509_verify_cert_error_string(r);
}

TlsInfo Conn::tls_info() const {
    TlsInfo t;
    if (!tls_) return t;
    SSL* ssl = tls_->native_handle();
    t.version = SSL_get_version(ssl);
    if (const SSL_CIPHER* c = SSL_get_current_cipher(ssl)) {
        t.cipher = SSL_CIPHER_get_name(c);
        t.bits = static_cast<unsigned>(SSL_CIPHER_get_bits(c, nullptr));
    }
    return t;
}

void Conn::close() {
    error_code ignored;
    timer_.cancel();
    sock_.close(ignored);  // sends FIN: the descriptor is never shared
}

void Conn::consume(std::size_t n) {
    XPROXY_INVARIANT(n <= buffered());
    in_pos_ += n;
}

void Conn::unread(std::string_view data) {
    XPROXY_INVARIANT(buffered() == 0);
    in_.assign(data);
    in_pos_ = 0;
}

std::size_t Conn::discard_buffered() {
    const std::size_t n = buffered();
    in_.clear();
    in_pos_ = 0;
    return n;
}

void Conn::compact() {
    if (in_pos_ == 0) return;
    if (in_pos_ >= in_.size()) {
        in_.clear();
    } else {
        in_.erase(0, in_pos_);
    }
    in_pos_ = 0;
    if (in_.capacity() > 65536 && in_.size() < 4096) in_.shrink_to_fit();
}

asio::awaitable<bool> Conn::read_line(std::string& line, std::size_t max, Seconds timeout, error_code& ec,
                                      bool* too_long) {
    bool skipping = false;
    if (too_long) *too_long = false;
    for (;;) {
        auto lf = in_.find('\n', in_pos_);
        if (lf != std::string::npos) {
            if (skipping || lf - in_pos_ > max) {
                if (!skipping) line.assign(in_, in_pos_, kLongLinePrefix);
                in_pos_ = lf + 1;
                if (too_long) *too_long = true;
                co_return true;
            }
            std::size_t end = lf;
            if (end > in_pos_ && in_[end - 1] == '\r') --end;
            line.assign(in_, in_pos_, end - in_pos_);
            in_pos_ = lf + 1;
            co_return true;
        }
        if (in_.size() - in_pos_ > max) {  // drop what we have, keep looking for the LF
            if (!skipping) line.assign(in_, in_pos_, kLongLinePrefix);
            skipping = true;
            in_.clear();
            in_pos_ = 0;
        }
        compact();
        char buf[4096];
        std::size_t n = co_await read_some(buf, sizeof buf, timeout, ec);
        if (ec) co_return false;
        in_.append(buf, n);
    }
}

asio::awaitable<Reply> Conn::read_reply(Seconds timeout) {
    Reply r;
    for (int i = 0; i < 100; ++i) {
        std::string line;
        error_code ec;
        bool too_long = false;
        if (!co_await read_line(line, 1000, timeout, ec, &too_long)) {
            r.code = 0;
            r.error = ec == asio::error::eof ? "connection closed" : ec.message();
            co_return r;
        }
        if (too_long || line.size() < 3 || !std::isdigit(static_cast<unsigned char>(line[0])) ||
            !std::isdigit(static_cast<unsigned char>(line[1])) || !std::isdigit(static_cast<unsigned char>(line[2])) ||
            (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
            r.code = 0;
            r.error = "malformed reply";
            co_return r;
        }
        int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        if (i > 0 && code != r.code) {
            r.code = 0;
            r.error = "inconsistent reply codes";
            co_return r;
        }
        r.code = code;
        std::string text = line.size() > 4 ? line.substr(4) : std::string();
        for (auto& c : text)
            if (static_cast<unsigned char>(c) < 32 || c == 127) c = ' ';
        r.lines.push_back(text);
        if (line.size() == 3 || line[3] == ' ') {
            if (code < 200 || code > 599) {
                r.code = 0;
                r.error = "unexpected reply code";
            }
            co_return r;
        }
    }
    r.code = 0;
    r.error = "reply too long";
    co_return r;
}

}  // namespace xproxy::xproxyd
