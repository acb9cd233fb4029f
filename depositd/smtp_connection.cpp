// smtp_connection.cpp: deadlines and reply reading for the MTA connection; see
// smtp_connection.hpp.
#include "smtp_connection.hpp"

#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace xproxy::depositd {

namespace asio = boost::asio;
using boost::system::error_code;

void SmtpConnection::arm(Seconds t) {
    timed_out_ = false;
    const unsigned gen = ++gen_;
    timer_.expires_after(t);
    timer_.async_wait([weak = weak_from_this(), gen](error_code ec) {
        auto self = weak.lock();
        if (!self || ec || gen != self->gen_) return;
        self->timed_out_ = true;
        error_code ignored;
        self->sock_.cancel(ignored);
    });
}

void SmtpConnection::disarm() {
    ++gen_;
    timer_.cancel();
}

std::string SmtpConnection::describe(const error_code& ec) const {
    if (timed_out_) return "timeout";
    if (ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::broken_pipe)
        return "connection closed by the MTA";
    return ec.message();
}

asio::awaitable<std::string> SmtpConnection::connect(daemon::ListenSpec spec, Seconds timeout) {
    error_code ec;
    asio::generic::stream_protocol::endpoint ep;
    const bool tcp = spec.kind == daemon::ListenSpec::Kind::inet;
    if (tcp) {
        const auto addr = asio::ip::make_address(spec.host, ec);
        if (ec) co_return "bad MTA address " + spec.text;
        ep = asio::generic::stream_protocol::endpoint(asio::ip::tcp::endpoint(addr, spec.port));
    } else if (spec.kind == daemon::ListenSpec::Kind::unix_) {
        ep = asio::generic::stream_protocol::endpoint(asio::local::stream_protocol::endpoint(spec.path));
    } else {
        co_return "the MTA address must be inet:, inet6: or unix: (" + spec.text + ")";
    }
    arm(timeout);
    co_await sock_.async_connect(ep, asio::redirect_error(asio::use_awaitable, ec));
    disarm();
    if (ec) co_return "connect to " + spec.text + ": " + (timed_out_ ? std::string("timeout") : ec.message());
    if (tcp) sock_.set_option(asio::ip::tcp::no_delay(true), ec);  // commands are small and waited for
    co_return std::string();
}

asio::awaitable<std::string> SmtpConnection::write(Seconds timeout, std::string_view a, std::string_view b,
                                                   std::string_view c) {
    const std::array<asio::const_buffer, 3> bufs = {asio::buffer(a), asio::buffer(b), asio::buffer(c)};
    error_code ec;
    arm(timeout);
    co_await asio::async_write(sock_, bufs, asio::redirect_error(asio::use_awaitable, ec));
    disarm();
    co_return ec ? describe(ec) : std::string();
}

asio::awaitable<ReplyRead> SmtpConnection::read_reply(Seconds timeout) {
    ReplyRead out;
    for (;;) {
        const DecodeResult d = smtp::decode_reply(std::string_view(in_).substr(in_pos_), out.reply);
        if (d.complete()) {
            in_pos_ += d.consumed;
            co_return out;
        }
        if (d.invalid()) {
            out.error = std::string(d.reason);
            co_return out;
        }
        in_.erase(0, in_pos_);
        in_pos_ = 0;
        std::array<char, 4096> buf{};
        error_code ec;
        arm(timeout);
        const std::size_t n = co_await sock_.async_read_some(asio::buffer(buf),
                                                             asio::redirect_error(asio::use_awaitable, ec));
        disarm();
        if (ec) {
            out.error = describe(ec);
            co_return out;
        }
        in_.append(buf.data(), n);
    }
}

void SmtpConnection::close() {
    error_code ignored;
    disarm();
    sock_.close(ignored);
}

}  // namespace xproxy::depositd
