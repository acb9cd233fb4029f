// downstream.hpp: the SMTP client side of xproxyd: one connection to one destination of
// a configured downstream, opened with the source announced in the downstream's encoding.
//
// open() connects, sends the PROXY header first (proxy-v1/v2), reads the greeting, sends
// EHLO, upgrades with STARTTLS when the downstream's tls mode asks for it (refusing any
// plain text that follows the 220, and with tls=verify a certificate that is not valid
// for tls-name= or the destination's address), then for
// XCLIENT sends the commands and EHLO again (Postfix restarts the session after XCLIENT),
// for XPROXYFROM sends its commands. XFORWARD is per transaction: mail() sends it before
// each MAIL (pipelined with it when PIPELINING is offered). Any failure closes the connection and says why; the caller
// moves on to the next destination.
#pragma once

#include <memory>
#include <string>

#include "config.hpp"
#include "conn.hpp"
#include "downstream_pool.hpp"
#include "egress.hpp"
#include <xproxy/base/invariant.hpp>
#include <xproxy/wire/smtp_command.hpp>

namespace xproxy::xproxyd {

// What one outbound route asks of TLS instead of the downstream's tls=.
struct RouteTls {
    std::optional<TlsMode> mode;  // REQUIRETLS: verify; XPROXYTO: its TLSAUTHLEVEL, SHOULDSKIPTLS
    bool chain_only = false;      // verify the chain, not a name (XPROXYTO names no host)
    bool force_helo = false;      // HELO instead of EHLO (XPROXYTO FORCEHELO): no STARTTLS then
};

class Downstream {
public:
    Downstream(asio::any_io_executor ex, const DownstreamConfig& cfg, asio::ssl::context* tls_ctx)
        : ex_(std::move(ex)), cfg_(&cfg), tls_ctx_(tls_ctx), dests_(cfg.destinations) {}

    // The outbound mode: the destinations of this transaction (the MX hosts of its
    // recipients' domain, or XPROXYTO's), the egress its connections are bound to and say
    // EHLO as (none: the system's choice and helo=), and what TLS it asks beyond tls=.
    // Closes a connection to the previous route.
    void route(std::vector<Destination> dests, const Egress* egress, const RouteTls& tls = {});
    // The same, keeping the open connection, which goes to dests[index].
    void retarget(std::vector<Destination> dests, std::size_t index) {
        XPROXY_INVARIANT(index < dests.size());
        dests_ = std::move(dests);
        index_ = index;
    }
    void retarget(std::vector<Destination> dests, std::size_t index, const RouteTls& tls) {
        retarget(std::move(dests), index);
        route_tls_ = tls;
    }
    // The submission mode: the user's home MTA replaces the listener's downstream (cfg must
    // outlive this object's use of it). Closes the connection to the previous one.
    void reconfigure(const DownstreamConfig& cfg, asio::ssl::context* tls_ctx) {
        close();
        cfg_ = &cfg;
        tls_ctx_ = tls_ctx;
        dests_ = cfg.destinations;
        index_ = 0;
        egress_ = nullptr;
        route_tls_ = {};
    }
    const std::vector<Destination>& destinations() const { return dests_; }
    // The egress of the route (its connections' source address); none outside the outbound mode.
    const Egress* egress() const { return egress_; }
    // The last open() failed because the egress address could not be bound.
    bool bind_failed() const { return bind_failed_; }
    // The last open() failed because the TLS its mode requires could not be had (no
    // STARTTLS, a refused one, or a certificate that does not verify).
    bool tls_failed() const { return tls_failed_; }
    ~Downstream() { close(); }

    asio::awaitable<bool> open(std::size_t index, const SourceInfo& src, const std::string& identity, std::string& why);
    // XCLIENT only: announces another source on this open, idle connection (XCLIENT, then
    // EHLO). false when the downstream refuses (Postfix re-checks its authorization
    // against the previous XCLIENT address): the connection is then closed, never left
    // half-announced.
    asio::awaitable<bool> reannounce(const SourceInfo& src, const std::string& identity, std::string& why);
    // XFORWARD (if that is the encoding) and MAIL, in one write when the downstream offers
    // PIPELINING. A refused XFORWARD gives a failed Reply with `why` set.
    asio::awaitable<Reply> mail(const SourceInfo& src, const std::string& mail_line, std::string& why);
    asio::awaitable<Reply> command(std::string_view line);  // line with CRLF
    asio::awaitable<bool> send(std::string_view data);
    // The next reply on the open connection (after send()).
    asio::awaitable<Reply> reply() {
        XPROXY_INVARIANT(conn_);
        return conn_->read_reply(cfg_->command_timeout);
    }
    // Sends QUIT without waiting long for the answer, then closes.
    asio::awaitable<void> quit();
    // The same in the background: the object is disconnected at once.
    void quit_later();
    void close();
    // Hands a clean, idle, plain-TCP connection over for parking (the object is then
    // disconnected): as it is when `live`, else its descriptor; nullopt when it cannot be
    // parked.
    std::optional<PooledConnection> detach(bool live);
    // Takes over a parked connection.
    bool adopt(PooledConnection c);

    bool connected() const { return conn_ != nullptr; }
    // Hands the open connection over (the layer-4 mode); the object is then disconnected.
    std::shared_ptr<Conn> take_connection() {
        auto c = std::move(conn_);
        close();
        return c;
    }
    bool tls() const { return conn_ && conn_->tls(); }
    // TLS with the certificate verified for the destination (tls=verify).
    bool tls_verified() const { return tls() && verified_; }
    const smtp::EhloKeywords& ehlo() const { return ehlo_; }
    // The lines of the last EHLO reply after the first (the keywords with parameters).
    const std::vector<std::string>& ehlo_lines() const { return ehlo_lines_; }
    // The server's certificate is valid for this name (TLS with a verified chain).
    bool peer_matches(const std::string& name) const { return conn_ && verified_ && conn_->peer_matches(name); }
    std::size_t index() const { return index_; }
    const std::string& identity() const { return identity_; }
    std::string where() const {
        XPROXY_INVARIANT(index_ < dests_.size());
        return dests_[index_].to_string();
    }
    const Destination& destination() const {
        XPROXY_INVARIANT(index_ < dests_.size());
        return dests_[index_];
    }
    const DownstreamConfig& config() const { return *cfg_; }
    bool dirty = false;  // a transaction was started and not finished downstream

private:
    // open()'s steps: the TCP connection to destination index_; then the PROXY header,
    // greeting, EHLO and STARTTLS; then the source commands of the encoding (XFORWARD,
    // sent per transaction, is only checked to be taken).
    asio::awaitable<bool> connect(std::string& why);
    asio::awaitable<bool> introduce(const SourceInfo& src, std::string& why);
    asio::awaitable<bool> announce_source(const SourceInfo& src, const Announcement& a, std::string& why);
    asio::awaitable<bool> ehlo(std::string& why, std::string name = std::string());
    // STARTTLS as the tls mode asks (true: go on, with or without TLS), then EHLO again.
    asio::awaitable<bool> starttls(std::string& why);
    // XCLIENT (restricted to the advertised attributes), then EHLO with the client's HELO.
    asio::awaitable<bool> send_xclient(const SourceInfo& src, std::string& why);
    asio::awaitable<bool> send_lines(const std::vector<std::string>& lines, int want_class, std::string& why);
    asio::any_io_executor ex_;
    const DownstreamConfig* cfg_;
    asio::ssl::context* tls_ctx_;
    std::shared_ptr<Conn> conn_;
    smtp::EhloKeywords ehlo_;
    std::vector<std::string> ehlo_lines_;
    std::size_t index_ = 0;
    std::string identity_;
    bool verified_ = false;
    std::vector<Destination> dests_;
    const Egress* egress_ = nullptr;
    RouteTls route_tls_;
    bool bind_failed_ = false;
    bool tls_failed_ = false;
};

}  // namespace xproxy::xproxyd
