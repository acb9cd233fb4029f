// smtp_connection.hpp: the SMTP client connection of the deposit daemon: a TCP or
// unix-domain stream to the local MTA with a deadline on every read and write, and the
// reader of whole replies (xproxy/wire/smtp_reply.hpp) on top of it.
//
// Promises: never throws on anything the peer does; every operation ends by its deadline
// (the socket is cancelled, the error says "timeout"); input is buffered at most one
// reply plus one read (the decoder bounds a reply's size). Lives in a shared_ptr so that
// a deadline firing after the owner is gone cannot touch a freed socket.
#pragma once

#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include <xproxy/daemon/listen.hpp>
#include <xproxy/wire/smtp_reply.hpp>

namespace xproxy::depositd {

struct ReplyRead {
    smtp::SmtpReply reply;
    std::string error;  // empty: reply is valid; else why there is none
    bool ok() const { return error.empty(); }
};

class SmtpConnection : public std::enable_shared_from_this<SmtpConnection> {
public:
    using Seconds = std::chrono::seconds;
    explicit SmtpConnection(const boost::asio::any_io_executor& ex) : sock_(ex), timer_(ex) {}

    // inet (TCP, with TCP_NODELAY) or unix spec; "" on success, else why not.
    boost::asio::awaitable<std::string> connect(daemon::ListenSpec spec, Seconds timeout);
    // Writes a, b and c in one gathering write; "" on success.
    boost::asio::awaitable<std::string> write(Seconds timeout, std::string_view a, std::string_view b = {},
                                              std::string_view c = {});
    boost::asio::awaitable<ReplyRead> read_reply(Seconds timeout);
    void close();

private:
    void arm(Seconds t);
    void disarm();
    std::string describe(const boost::system::error_code& ec) const;
    boost::asio::generic::stream_protocol::socket sock_;
    boost::asio::steady_timer timer_;
    unsigned gen_ = 0;
    bool timed_out_ = false;
    std::string in_;
    std::size_t in_pos_ = 0;
};

}  // namespace xproxy::depositd
