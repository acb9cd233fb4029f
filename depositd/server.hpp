// server.hpp: the HTTPS side of xproxy-depositd: TLS (1.2 or later, the hardened context
// of tls.hpp; client certificates asked for, not required, with --client-ca), HTTP/1.1
// with keep-alive on Boost.Beast, one coroutine per connection, the limits of
// doc/deposit.md ("Limits"), and the requests handed to DepositService.
//
// Limits: at most --max-connections-per-client connections from one client address
// (an IPv6 client counted per /64; one more is closed at once), at most
// --max-connections in all: when full, the connection waiting longest without a request
// in progress (in its TLS handshake or between requests) is closed to make room, and only
// when every one has a request in progress is the newcomer closed at once. Refusals and
// evictions are logged once per burst (the first one, then their number when it ends);
// the TLS handshake and each request's header block within --header-timeout
// (an idle keep-alive connection is closed silently when it passes, a started request
// gets 408), a header block over 16 KiB 431, a target over 8 KiB 414, a body within
// --body-timeout (else 408) and no larger than --max-message-size (413, from
// Content-Length before a byte of it is read, or as it arrives for a chunked body). A
// request answered without reading its body ends the connection after a short
// lingering read, so that the client sees the answer rather than a reset.
//
// Promises: never throws out of a connection (every error ends that connection only);
// "Expect: 100-continue" is answered once the request is admitted, so a refused client
// does not send its body; nothing of a request is logged but by DepositService.
#pragma once

#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>

#include <xproxy/base/result.hpp>

#include "config.hpp"
#include "deposit_service.hpp"

namespace xproxy::depositd {

inline constexpr std::size_t kMaxHeaderBytes = 16 * 1024;
inline constexpr std::size_t kMaxTargetBytes = 8 * 1024;

// The server's TLS context: certificate and key, and with client_ca the request for a
// client certificate verified against it. A Failure names the option and OpenSSL's
// reason.
Expected<std::shared_ptr<boost::asio::ssl::context>> server_tls_context(const Config& cfg);

class Server {
public:
    Server(const Config& cfg, std::shared_ptr<boost::asio::ssl::context> tls, DepositService& service)
        : cfg_(cfg), tls_(std::move(tls)), service_(service) {}

    // A new certificate (SIGHUP): new connections use it, open ones keep theirs.
    void set_tls(std::shared_ptr<boost::asio::ssl::context> tls) { tls_ = std::move(tls); }

    // The acceptor's handler: a connection over --max-connections-per-client is closed at
    // once; one over --max-connections makes room by closing the longest idle one, or is
    // closed at once when none is idle.
    void accept(boost::asio::ip::tcp::socket sock);
    unsigned active() const { return active_; }

    // The key a client's connections are counted under: its address, an IPv6 address's
    // first 64 bits (an IPv4-mapped IPv6 address counts as the IPv4 address).
    static std::string client_key(const boost::asio::ip::address& a);

    // One open connection (one thread: no locks).
    struct Conn {
        std::string client;  // client_key()
        bool busy = false;   // a request in progress (header read, not yet answered)
        bool evicted = false;
        std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now();
        std::function<void()> cancel;  // ends its pending operation; empty before the session runs
    };

private:
    boost::asio::awaitable<void> session(boost::asio::ip::tcp::socket sock, std::shared_ptr<Conn> conn);
    bool evict_one();
    void release(const std::shared_ptr<Conn>& conn);

    const Config& cfg_;
    std::shared_ptr<boost::asio::ssl::context> tls_;
    DepositService& service_;
    unsigned active_ = 0;  // one thread: no atomics needed
    std::list<std::shared_ptr<Conn>> conns_;
    std::unordered_map<std::string, unsigned> per_client_;
    std::size_t refused_ = 0, refused_client_ = 0, evicted_ = 0;  // in the current burst
};

}  // namespace xproxy::depositd
