// session.cpp: the front-side SMTP state machine: greeting, the command loop with its
// bounds, EHLO/HELO, STARTTLS, the source commands. Transactions: transaction.cpp and
// data_relay.cpp.
#include "session_impl.hpp"

namespace xproxy::xproxyd {
namespace session_detail {

awaitable<bool> Session::flush() {
    if (out_.empty()) co_return true;
    error_code ec;
    co_await conn_->write(out_, cfg_.client_timeout, ec);
    out_.clear();
    if (out_.capacity() > 16384) out_.shrink_to_fit();
    co_return !ec;
}

bool Session::fast_path() const {
    for (const auto& c : cfg_.stream_through) {
        switch (c.kind) {
            case StreamThroughCondition::Kind::always: return false;
            case StreamThroughCondition::Kind::size_over:
                if (txn_.params.size > c.size) return false;
                break;
            case StreamThroughCondition::Kind::client:
                if (txn_.source.client && c.cidr->contains(txn_.source.client->addr)) return false;
                break;
        }
    }
    return true;
}

void Session::end_transaction() {
    txn_ = Transaction{};
    src_->end_transaction();
}

awaitable<void> Session::run() {
    char idbuf[32];
    std::snprintf(idbuf, sizeof idbuf, "%08llX%06llX", static_cast<unsigned long long>(std::time(nullptr)),
                  static_cast<unsigned long long>(++sh_.sessions & 0xFFFFFF));
    sid_ = idbuf;
    error_code ec;
    SourceInfo peer;
    auto rep = conn_->socket().remote_endpoint(ec);
    if (!ec) peer.client = Endpoint::from_sockaddr(rep.data(), static_cast<unsigned>(rep.size()));
    auto lep = conn_->socket().local_endpoint(ec);
    if (!ec) peer.server = Endpoint::from_sockaddr(lep.data(), static_cast<unsigned>(lep.size()));
    peer.protocol = "SMTP";
    peer.session_id = sid_;
    bool trusted = peer.client && cfg_.trusted.contains(peer.client->addr);
    src_.emplace(peer, trusted);
    log::info("event=connect sid=%s client=%s trusted=%s downstream=%s", sid_.c_str(),
              endpoint_text(peer.client).c_str(), trusted ? "yes" : "no", ds_.config().name.c_str());
    reply("220 " + cfg_.hostname + " ESMTP xproxyd");
    const char* why = "client quit";
    for (;;) {
        if (!conn_->has_line() && !co_await flush()) {
            why = "write error";
            break;
        }
        std::string line;
        bool too_long = false;
        if (!co_await conn_->read_line(line, cfg_.max_line, cfg_.client_timeout, ec, &too_long)) {
            if (ec == asio::error::timed_out) {
                why = "client timeout";
                reply("421 4.4.2 " + cfg_.hostname + " Error: timeout exceeded");
                co_await flush();
            } else {
                why = ec == asio::error::eof ? "client disconnected" : "read error";
            }
            break;
        }
        if (++commands_ > cfg_.max_commands) {
            reply("421 4.7.0 " + cfg_.hostname + " Error: too many commands");
            co_await flush();
            why = "too many commands";
            break;
        }
        if (too_long) {
            src_->abandon_sequence();
            reply("500 5.5.2 Error: line too long");
            log::warning("event=line_too_long sid=%s", sid_.c_str());
            if (!syntax_error()) {
                reply("421 4.7.0 " + cfg_.hostname + " Error: too many errors");
                co_await flush();
                why = "too many errors";
                break;
            }
            continue;
        }
        if (!co_await dispatch(line)) {
            co_await flush();
            why = closing_ ? "client quit" : "session ended";
            break;
        }
        if (errors_ >= cfg_.max_errors) {
            reply("421 4.7.0 " + cfg_.hostname + " Error: too many errors");
            co_await flush();
            why = "too many errors";
            break;
        }
    }
    co_await release_downstream();
    conn_->close();
    log::info("event=disconnect sid=%s reason=\"%s\" transactions=%u commands=%u", sid_.c_str(), why, txn_count_,
              commands_);
}

awaitable<bool> Session::dispatch(const std::string& line) {
    if (line.find('\0') != std::string::npos) {
        src_->abandon_sequence();
        reply("500 5.5.2 Error: NUL in command");
        syntax_error();
        co_return true;
    }
    smtp::CommandLine c = smtp::split_command(line);
    const std::string& v = c.verb;
    if (v != "XPROXYFROM") src_->abandon_sequence();  // LAST=False must be followed by its next line
    if (v == "EHLO" || v == "HELO") {
        co_await cmd_ehlo(c);
    } else if (v == "MAIL") {
        co_await cmd_mail(c);
    } else if (v == "RCPT") {
        co_await cmd_rcpt(c);
    } else if (v == "DATA") {
        if (!c.arg.empty()) {
            reply("501 5.5.4 Syntax: DATA");
            syntax_error();
        } else {
            const bool go_on = co_await cmd_data();
            co_return go_on;
        }
    } else if (v == "RSET") {
        co_await cmd_rset();
    } else if (v == "NOOP") {
        reply("250 2.0.0 Ok");
    } else if (v == "QUIT") {
        reply("221 2.0.0 Bye");
        closing_ = true;
        co_return false;
    } else if (v == "STARTTLS") {
        const bool go_on = co_await cmd_starttls(c);
        co_return go_on;
    } else if (v == "XCLIENT" || v == "XFORWARD" || v == "XPROXYFROM") {
        co_await cmd_source(c, line);
    } else if (v == "VRFY") {
        reply("252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
    } else if (v == "HELP") {
        reply("214 2.0.0 See RFC 5321");
    } else {
        reply("502 5.5.2 Error: command not recognized");
        log::info("event=unknown_command sid=%s command=\"%s\"", sid_.c_str(), escape_value(line, 64).c_str());
        syntax_error();
    }
    co_return true;
}

awaitable<void> Session::cmd_ehlo(const smtp::CommandLine& c) {
    if (c.arg.empty()) {
        reply("501 5.5.4 Syntax: " + c.verb + " hostname");
        syntax_error();
        co_return;
    }
    if (txn_.active) end_transaction();
    helo_ = c.arg;
    esmtp_ = c.verb == "EHLO";
    src_->ehlo(helo_, esmtp_);
    if (!esmtp_) {
        reply("250 " + cfg_.hostname);
        co_return;
    }
    std::vector<std::string> ext = {cfg_.hostname, "PIPELINING",
                                    cfg_.max_message_size ? "SIZE " + std::to_string(cfg_.max_message_size) : "SIZE"};
    if (sh_.front_tls && !conn_->tls()) ext.push_back("STARTTLS");
    if (conn_->tls()) ext.push_back("REQUIRETLS");
    ext.push_back("ENHANCEDSTATUSCODES");
    ext.push_back("8BITMIME");
    ext.push_back("SMTPUTF8");
    if (src_->trusted()) {
        ext.push_back("XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT");
        ext.push_back("XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE");
        ext.push_back("XPROXYFROM");
    }
    for (std::size_t i = 0; i < ext.size(); ++i) reply((i + 1 < ext.size() ? "250-" : "250 ") + ext[i]);
}

awaitable<bool> Session::cmd_starttls(const smtp::CommandLine& c) {
    if (!sh_.front_tls) {
        reply("502 5.5.1 Error: command not implemented");
        co_return true;
    }
    if (conn_->tls()) {
        reply("554 5.5.1 Error: TLS already active");
        co_return true;
    }
    if (!c.arg.empty()) {
        reply("501 5.5.4 Syntax: STARTTLS");
        co_return true;
    }
    if (txn_.active) {
        reply("503 5.5.1 Error: MAIL transaction in progress");
        co_return true;
    }
    reply("220 2.0.0 Ready to start TLS");
    if (!co_await flush()) co_return false;
    // Anything pipelined after STARTTLS was sent in clear text: discard it (CVE-2011-0411).
    if (conn_->buffered() > 0)
        log::warning("event=starttls_pipelining sid=%s discarded=%zu", sid_.c_str(), conn_->buffered());
    conn_->in.clear();
    conn_->in_pos = 0;
    error_code ec;
    co_await conn_->handshake(*sh_.front_tls, true, std::string(), false, cfg_.client_timeout, ec);
    if (ec) {
        log::warning("event=tls_failed sid=%s error=\"%s\"", sid_.c_str(), ec.message().c_str());
        co_return false;
    }
    TlsInfo t = conn_->tls_info();
    src_->set_peer_tls(t);
    helo_.clear();
    esmtp_ = false;
    log::info("event=tls sid=%s version=%s cipher=%s", sid_.c_str(), t.version.c_str(), t.cipher.c_str());
    co_return true;
}

awaitable<void> Session::cmd_source(const smtp::CommandLine& c, const std::string& line) {
    if (txn_.active) {
        reply("503 5.5.1 Error: MAIL transaction in progress");
        co_return;
    }
    SourceVerdict v = c.verb == "XCLIENT" ? src_->xclient(line)
                      : c.verb == "XFORWARD" ? src_->xforward(line)
                                             : src_->xproxyfrom(line);
    switch (v.kind) {
        case SourceVerdict::Kind::refused:
            log::warning("event=source_refused sid=%s command=%s client=%s", sid_.c_str(), c.verb.c_str(),
                         endpoint_text(src_->effective().client).c_str());
            reply(v.reply);
            syntax_error();
            break;
        case SourceVerdict::Kind::bad:
            reply(v.reply);
            syntax_error();
            break;
        case SourceVerdict::Kind::need_more:
            reply(v.reply);
            break;
        case SourceVerdict::Kind::accepted: {
            SourceInfo s = src_->effective();
            log::info("event=source sid=%s command=%s client=%s helo=\"%s\"", sid_.c_str(), c.verb.c_str(),
                      endpoint_text(s.client).c_str(), escape_value(s.helo, 128).c_str());
            if (c.verb == "XCLIENT") {
                helo_.clear();
                esmtp_ = false;
                reply("220 " + cfg_.hostname + " ESMTP xproxyd");
            } else {
                reply(v.reply);
            }
            break;
        }
    }
}

// Parks a clean downstream connection for another session, or says QUIT.

}  // namespace session_detail

asio::awaitable<void> run_session(std::shared_ptr<Conn> conn, const DownstreamConfig& ds, Shared& shared) {
    session_detail::Session s(std::move(conn), ds, shared);
    co_await s.run();
}

}  // namespace xproxy::xproxyd
