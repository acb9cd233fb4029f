// conn.hpp: one TCP connection, plain or after STARTTLS, with a deadline on every read
// and write, and the SMTP line and reply readers built on it. Used for both sides.
// A timed-out operation fails with boost::asio::error::timed_out. Conn lives in a
// shared_ptr so that a deadline firing after its end cannot touch a freed socket.
#pragma once

#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <xproxy/base/source_info.hpp>

namespace xproxy::xproxyd {

namespace asio = boost::asio;
using boost::system::error_code;
using Seconds = std::chrono::seconds;

// A reply: code 0 means the connection failed (error set) instead of answering.
struct Reply {
    int code = 0;
    std::vector<std::string> lines;  // text after "NNN-"/"NNN ", without CRLF
    std::string error;
    bool ok() const { return code >= 200 && code < 300; }
    bool failed() const { return code == 0; }
    // The reply in wire form, for relaying to the client.
    std::string wire() const;
};

class Conn : public std::enable_shared_from_this<Conn> {
public:
    explicit Conn(asio::ip::tcp::socket s) : sock_(std::move(s)), timer_(sock_.get_executor()) {}
    asio::ip::tcp::socket& socket() { return sock_; }
    bool tls() const { return tls_ != nullptr; }
    TlsInfo tls_info() const;

    asio::awaitable<void> connect(const asio::ip::tcp::endpoint& ep, Seconds timeout, error_code& ec);
    asio::awaitable<std::size_t> read_some(char* p, std::size_t n, Seconds timeout, error_code& ec);
    asio::awaitable<void> write(std::string_view data, Seconds timeout, error_code& ec);
    // STARTTLS. Refuses (errc::protocol_error, nothing consumed) while plain-text input is
    // still buffered: bytes read before the handshake must never pass for protected ones.
    // Client side: `peer` is the name (sent as SNI, and checked when `verify`) or the IP
    // address (checked when `verify`) expected in the server's certificate. With verify
    // and an empty peer the handshake is refused, unless verify_chain_only() was called:
    // then only the chain is verified and the caller checks a name later (peer_matches).
    asio::awaitable<void> handshake(asio::ssl::context& ctx, bool server, const std::string& peer, bool verify,
                                    Seconds timeout, error_code& ec);
    void verify_chain_only() { chain_only_ = true; }
    // After a client handshake: the server's certificate is valid for this DNS name.
    bool peer_matches(const std::string& name) const;
    // After a failed client handshake: why the certificate was refused, or empty.
    std::string verify_error() const;
    void close();

    // One line (without LF; a CR before it removed). Lines longer than max are
    // discarded up to their LF and reported with *too_long (line: their first
    // kLongLinePrefix bytes, enough to tell what command it was).
    static constexpr std::size_t kLongLinePrefix = 32;
    asio::awaitable<bool> read_line(std::string& line, std::size_t max, Seconds timeout, error_code& ec,
                                    bool* too_long = nullptr);
    // A whole (multi-line) reply, at most 100 lines of 1000 bytes.
    asio::awaitable<Reply> read_reply(Seconds timeout);

    // Input read from the socket and not yet consumed, shared by the line and reply
    // readers and the DATA relay (which reads the body past them).
    std::size_t buffered() const { return in_.size() - in_pos_; }
    bool has_line() const { return in_.find('\n', in_pos_) != std::string::npos; }
    std::string_view peek() const { return std::string_view(in_).substr(in_pos_); }
    // Drops the first n bytes of peek() (n <= buffered()).
    void consume(std::size_t n);
    // Gives bytes read past a reader's end (with read_some) back to the line reader; only
    // when nothing is buffered.
    void unread(std::string_view data);
    // Before a front-side STARTTLS: what was pipelined after it came in plain text and is
    // discarded, never read as a command of the TLS session (CVE-2011-0411). Returns how
    // many bytes that was.
    std::size_t discard_buffered();
    // Releases the consumed part of the buffer (and its memory, when it grew large).
    void compact();

private:
    // Deadlines without a timer operation per read or write: arm() only moves deadline_;
    // the timer runs while an operation is pending and, when it fires, either cancels the
    // socket (deadline passed) or sleeps again until the current deadline.
    void arm(Seconds t);
    void disarm() { pending_ = false; }
    void start_timer(std::chrono::steady_clock::time_point at);
    asio::ip::tcp::socket sock_;
    std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket&>> tls_;
    asio::steady_timer timer_;
    std::chrono::steady_clock::time_point deadline_{};
    std::chrono::steady_clock::time_point timer_at_{};
    unsigned timer_gen_ = 0;
    bool timer_running_ = false;
    bool pending_ = false;
    bool timed_out_ = false;
    bool chain_only_ = false;
    std::string in_;
    std::size_t in_pos_ = 0;
};

}  // namespace xproxy::xproxyd
