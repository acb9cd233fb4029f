// front_side.hpp: the session's side towards its client (the upstream): the connection
// and the replies not yet written. Replies are collected and written together when no
// further complete command is buffered (PIPELINING, RFC 2920), or at once where a step
// must be answered before the next read (354, the 220 to STARTTLS, 421). Session,
// TransactionRelay and DataRelay answer through it.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "conn.hpp"

namespace xproxy::xproxyd {

class FrontSide {
public:
    FrontSide(std::shared_ptr<Conn> conn, Seconds timeout) : conn_(std::move(conn)), timeout_(timeout) {}

    Conn& conn() { return *conn_; }
    const Conn& conn() const { return *conn_; }
    std::shared_ptr<Conn> conn_ptr() { return conn_; }
    // One reply line of our own, without CRLF.
    void reply(std::string_view line) {
        out_ += line;
        out_ += "\r\n";
    }
    // A downstream's reply passed on as the downstream wrote it.
    void relay(const Reply& r) { out_ += r.wire(); }
    // Writes what is queued; false when the client cannot be written to.
    asio::awaitable<bool> flush();

private:
    std::shared_ptr<Conn> conn_;
    Seconds timeout_;
    std::string out_;
};

}  // namespace xproxy::xproxyd
