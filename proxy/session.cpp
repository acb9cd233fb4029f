// session.cpp: the front-side SMTP state machine and the per-transaction relay.
#include "session.hpp"

#include <ctime>
#include <memory>
#include <optional>

#include "body_buffer.hpp"
#include "command.hpp"
#include "data_decoder.hpp"
#include "downstream.hpp"
#include "source.hpp"
#include "xproxy/daemon/log.hpp"
#include "xproxy/escape.hpp"

namespace xproxy::proxyd {

namespace {

using asio::awaitable;

std::string endpoint_text(const std::optional<Endpoint>& e) { return e ? e->to_string() : "unknown"; }

bool has_8bit(std::string_view s) {
    for (char c : s)
        if (static_cast<unsigned char>(c) >= 128) return true;
    return false;
}

struct Transaction {
    bool active = false;
    PathArg mail;
    MailParams params;
    std::string mail_line;                 // as sent downstream
    std::vector<std::string> rcpt_lines;   // accepted downstream, for replay on failover
    unsigned rcpts = 0;                    // RCPT commands seen
    SourceInfo source;
};

class Session {
public:
    Session(std::shared_ptr<Conn> c, const DownstreamConfig& dcfg, Shared& sh)
        : conn_(std::move(c)), cfg_(sh.cfg), sh_(sh), ds_(conn_->socket().get_executor(), dcfg, sh.client_tls) {}

    awaitable<void> run();

private:
    void reply(std::string_view line) {
        out_ += line;
        out_ += "\r\n";
    }
    awaitable<bool> flush();
    // Returns false when the session must end.
    awaitable<bool> dispatch(const std::string& line);
    awaitable<void> cmd_ehlo(const CommandLine& c);
    awaitable<bool> cmd_starttls(const CommandLine& c);
    awaitable<void> cmd_source(const CommandLine& c, const std::string& line);
    awaitable<void> cmd_mail(const CommandLine& c);
    awaitable<void> cmd_rcpt(const CommandLine& c);
    awaitable<bool> cmd_data();
    awaitable<void> cmd_rset();
    awaitable<void> release_downstream();
    awaitable<bool> open_from(std::size_t start, const SourceInfo& src, bool& reused);
    awaitable<bool> restore(std::size_t start);
    awaitable<Reply> send_mail();
    void end_transaction();
    bool syntax_error() { return ++errors_ < cfg_.max_errors; }
    bool fast_path() const;

    std::shared_ptr<Conn> conn_;
    const Config& cfg_;
    Shared& sh_;
    Downstream ds_;
    std::string sid_;
    std::string out_;
    std::optional<SourceTracker> src_;
    std::string helo_;
    bool esmtp_ = false;
    Transaction txn_;
    unsigned txn_count_ = 0;
    unsigned commands_ = 0;
    unsigned errors_ = 0;
    bool closing_ = false;
};

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
        reply("500 5.5.2 Error: NUL in command");
        syntax_error();
        co_return true;
    }
    CommandLine c = split_command(line);
    const std::string& v = c.verb;
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
            co_return co_await cmd_data();
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
        co_return co_await cmd_starttls(c);
    } else if (v == "XCLIENT" || v == "XFORWARD" || v == "XPROXYFROM") {
        co_await cmd_source(c, line);
    } else if (v == "VRFY") {
        reply("252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
    } else if (v == "HELP") {
        reply("214 2.0.0 See RFC 5321");
    } else {
        reply("502 5.5.2 Error: command not recognized");
        log::info("event=unknown_command sid=%s command=\"%s\"", sid_.c_str(), escape(line, 64).c_str());
        syntax_error();
    }
    co_return true;
}

awaitable<void> Session::cmd_ehlo(const CommandLine& c) {
    if (c.arg.empty()) {
        reply("501 5.5.4 Syntax: " + c.verb + " hostname");
        syntax_error();
        co_return;
    }
    if (txn_.active) end_transaction();
    helo_ = c.arg;
    esmtp_ = c.verb == "EHLO";
    src_->set_peer_helo(helo_);
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

awaitable<bool> Session::cmd_starttls(const CommandLine& c) {
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
    conn_->in.clear();
    conn_->in_pos = 0;
    error_code ec;
    co_await conn_->handshake(*sh_.front_tls, true, std::string(), cfg_.client_timeout, ec);
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

awaitable<void> Session::cmd_source(const CommandLine& c, const std::string& line) {
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
                      endpoint_text(s.client).c_str(), escape(s.helo, 128).c_str());
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
awaitable<void> Session::release_downstream() {
    if (!ds_.connected()) co_return;
    if (sh_.pool.enabled()) {
        if (auto pc = ds_.detach()) {
            sh_.pool.put(ds_.config().name, std::move(*pc));
            co_return;
        }
    }
    co_await ds_.quit();
}

awaitable<bool> Session::open_from(std::size_t start, const SourceInfo& src, bool& reused) {
    std::string id = identity(ds_.config().encoding, src);
    reused = false;
    if (ds_.connected() && start == 0 && ds_.identity() == id) {
        if (ds_.dirty) {
            Reply r = co_await ds_.command("RSET\r\n");
            if (r.ok()) {
                ds_.dirty = false;
                reused = true;
                co_return true;
            }
            ds_.close();
        } else {
            reused = true;
            co_return true;
        }
    }
    if (ds_.connected() && start == 0 && ds_.config().encoding == Encoding::xclient && !ds_.dirty) {
        // XCLIENT may announce the next client on the same connection, if the downstream
        // still authorizes us after the previous XCLIENT; otherwise a new connection.
        std::string why;
        if (co_await ds_.reannounce(src, id, why)) {
            log::info("event=downstream_reannounce sid=%s destination=%s", sid_.c_str(), ds_.where().c_str());
            reused = true;
            co_return true;
        }
        log::info("event=reannounce_refused sid=%s error=\"%s\"", sid_.c_str(), escape(why, 200).c_str());
    }
    co_await release_downstream();
    if (start == 0 && sh_.pool.enabled()) {
        if (auto pc = sh_.pool.take(ds_.config().name, id); pc && ds_.adopt(std::move(*pc))) {
            log::debug("event=downstream_reuse sid=%s destination=%s", sid_.c_str(), ds_.where().c_str());
            reused = true;
            co_return true;
        }
    }
    const auto& dests = ds_.config().destinations;
    for (std::size_t i = start; i < dests.size(); ++i) {
        std::string why;
        if (co_await ds_.open(i, src, id, why)) {
            log::info("event=downstream_open sid=%s destination=%s encoding=%s tls=%s", sid_.c_str(),
                      dests[i].to_string().c_str(), to_string(ds_.config().encoding), ds_.tls() ? "yes" : "no");
            co_return true;
        }
        log::warning("event=downstream_failed sid=%s destination=%s error=\"%s\"", sid_.c_str(),
                     dests[i].to_string().c_str(), escape(why, 200).c_str());
    }
    co_return false;
}

awaitable<Reply> Session::send_mail() {
    std::string why;
    Reply r = co_await ds_.mail(txn_.source, txn_.mail_line, why);
    if (!why.empty())
        log::warning("event=downstream_failed sid=%s destination=%s error=\"%s\"", sid_.c_str(), ds_.where().c_str(),
                     escape(why, 200).c_str());
    if (r.ok()) ds_.dirty = true;
    co_return r;
}

// Re-establishes the current transaction (MAIL and every accepted RCPT) on the first
// destination from `start` on that accepts all of it.
awaitable<bool> Session::restore(std::size_t start) {
    const std::size_t n = ds_.config().destinations.size();
    while (start < n) {
        bool reused = false;
        if (!co_await open_from(start, txn_.source, reused)) co_return false;
        start = ds_.index() + 1;
        if (refuse_for_downstream(txn_.params, ds_.ehlo(), ds_.tls())) continue;
        txn_.mail_line = downstream_mail_line(txn_.mail, txn_.params, ds_.ehlo());
        Reply r = co_await send_mail();
        bool ok = r.ok();
        for (std::size_t i = 0; ok && i < txn_.rcpt_lines.size(); ++i) ok = (co_await ds_.command(txn_.rcpt_lines[i])).ok();
        if (ok) {
            log::info("event=failover sid=%s destination=%s", sid_.c_str(), ds_.where().c_str());
            co_return true;
        }
        log::warning("event=failover_refused sid=%s destination=%s", sid_.c_str(), ds_.where().c_str());
        ds_.close();
    }
    co_return false;
}

awaitable<void> Session::cmd_mail(const CommandLine& c) {
    if (helo_.empty()) {
        reply("503 5.5.1 Error: send HELO/EHLO first");
        co_return;
    }
    if (txn_.active) {
        reply("503 5.5.1 Error: nested MAIL command");
        co_return;
    }
    std::string err;
    auto mail = parse_path(c.arg, "FROM", true, true, &err);
    if (!mail) {
        reply(err);
        syntax_error();
        co_return;
    }
    MailLimits lim{cfg_.max_message_size, conn_->tls()};
    auto params = check_mail_params(*mail, lim, &err);
    if (!params) {
        reply(err);
        syntax_error();
        co_return;
    }
    if (!esmtp_ && !mail->params.empty()) {
        reply("555 5.5.4 Error: MAIL parameters need EHLO");
        co_return;
    }
    if (has_8bit(mail->path) && !params->smtputf8) {
        reply("553 5.6.7 Error: non-ASCII address without SMTPUTF8");
        co_return;
    }
    txn_.mail = *mail;
    txn_.params = *params;
    txn_.source = src_->effective();
    std::size_t start = 0;
    bool retried_stale = false;
    for (;;) {
        bool reused = false;
        if (!co_await open_from(start, txn_.source, reused)) {
            reply("451 4.4.1 Error: no downstream destination available, try again later");
            co_return;
        }
        if (auto refusal = refuse_for_downstream(txn_.params, ds_.ehlo(), ds_.tls())) {
            log::info("event=refused sid=%s reason=\"%s\"", sid_.c_str(), refusal->c_str());
            reply(*refusal);
            co_return;
        }
        txn_.mail_line = downstream_mail_line(txn_.mail, txn_.params, ds_.ehlo());
        Reply r = co_await send_mail();
        if (!r.failed()) {
            out_ += r.wire();
            if (r.ok()) txn_.active = true;
            co_return;
        }
        log::warning("event=downstream_lost sid=%s destination=%s stage=MAIL error=\"%s\"", sid_.c_str(),
                     ds_.where().c_str(), escape(r.error, 120).c_str());
        // A cached connection may simply have timed out: one fresh try at the same place.
        if (reused && !retried_stale) {
            retried_stale = true;
        } else {
            start = ds_.index() + 1;
        }
        ds_.close();
    }
}

awaitable<void> Session::cmd_rcpt(const CommandLine& c) {
    if (!txn_.active) {
        reply("503 5.5.1 Error: need MAIL command");
        co_return;
    }
    std::string err;
    auto rcpt = parse_path(c.arg, "TO", false, txn_.params.smtputf8, &err);
    if (!rcpt) {
        reply(err);
        syntax_error();
        co_return;
    }
    if (!rcpt->params.empty()) {
        reply("555 5.5.4 Unsupported option: " + rcpt->params.front().first);
        co_return;
    }
    if (++txn_.rcpts > cfg_.max_recipients) {
        reply("452 4.5.3 Error: too many recipients");
        co_return;
    }
    std::string line = "RCPT TO:<" + rcpt->path + ">\r\n";
    if (!ds_.connected() && !co_await restore(0)) {
        reply("451 4.4.1 Error: no downstream destination available, try again later");
        co_return;
    }
    Reply r = co_await ds_.command(line);
    if (r.failed()) {
        log::warning("event=downstream_lost sid=%s destination=%s stage=RCPT error=\"%s\"", sid_.c_str(),
                     ds_.where().c_str(), escape(r.error, 120).c_str());
        std::size_t next = ds_.index() + 1;
        ds_.close();
        if (co_await restore(next)) r = co_await ds_.command(line);
    }
    if (r.failed()) {
        ds_.close();
        reply("451 4.4.1 Error: downstream unavailable, try again later");
        co_return;
    }
    if (r.ok()) txn_.rcpt_lines.push_back(line);
    out_ += r.wire();
}

awaitable<void> Session::cmd_rset() {
    if (txn_.active && ds_.connected()) {
        Reply r = co_await ds_.command("RSET\r\n");
        if (r.ok()) ds_.dirty = false;
        else ds_.close();
    }
    end_transaction();
    reply("250 2.0.0 Ok");
}

awaitable<bool> Session::cmd_data() {
    if (!txn_.active) {
        reply("503 5.5.1 Error: need RCPT command");
        co_return true;
    }
    if (txn_.rcpt_lines.empty()) {
        reply("554 5.5.1 Error: no valid recipients");
        co_return true;
    }
    const bool fast = fast_path();
    Reply r;
    if (ds_.connected()) r = co_await ds_.command("DATA\r\n");
    if (r.failed() && fast) {
        std::size_t next = ds_.connected() ? ds_.index() + 1 : 0;
        ds_.close();
        while (r.failed() && co_await restore(next)) {
            next = ds_.index() + 1;
            r = co_await ds_.command("DATA\r\n");
            if (r.failed()) ds_.close();
        }
    }
    if (r.failed()) {
        ds_.close();
        reply("451 4.4.1 Error: downstream unavailable, try again later");
        end_transaction();
        co_return true;
    }
    if (r.code != 354) {
        out_ += r.wire();
        end_transaction();
        co_return true;
    }
    reply("354 End data with <CR><LF>.<CR><LF>");
    if (!co_await flush()) co_return false;

    DataDecoder dec;
    std::optional<BodyBuffer> buf;
    if (fast) buf.emplace(cfg_.fast_path_threshold, cfg_.spool_dir);
    bool ds_ok = true, too_big = false, dot_sent = false;
    std::string chunk;
    error_code ec;
    // Body reads go to a 64 KiB buffer that lives only for this transaction; what follows
    // the end of data (pipelined commands) goes back to the connection's line buffer.
    constexpr std::size_t kBodyRead = 65536;
    std::unique_ptr<char[]> rbuf(new char[kBodyRead]);
    while (!dec.done()) {
        const char* p = nullptr;
        std::size_t n = 0;
        bool from_line_buffer = conn_->in_pos < conn_->in.size();
        if (from_line_buffer) {
            p = conn_->in.data() + conn_->in_pos;
            n = conn_->in.size() - conn_->in_pos;
        } else {
            conn_->in.clear();
            conn_->in_pos = 0;
            n = co_await conn_->read_some(rbuf.get(), kBodyRead, cfg_.client_timeout, ec);
            if (ec) {
                // The client is gone or stalled: no final dot goes downstream, so nothing is
                // delivered; the client never saw a 250 either.
                log::warning("event=data_aborted sid=%s reason=\"%s\" bytes=%llu", sid_.c_str(),
                             ec == asio::error::timed_out ? "client timeout" : "client disconnected",
                             static_cast<unsigned long long>(dec.size()));
                if (ec == asio::error::timed_out) {
                    reply("421 4.4.2 " + cfg_.hostname + " Error: timeout exceeded");
                    co_await flush();
                }
                ds_.close();
                end_transaction();
                co_return false;
            }
            p = rbuf.get();
        }
        std::size_t used = dec.feed(p, n, chunk);
        if (from_line_buffer) {
            conn_->in_pos += used;
        } else if (used < n) {
            conn_->in.assign(p + used, n - used);
        }
        if (cfg_.max_message_size && dec.size() > cfg_.max_message_size) too_big = true;
        if (!chunk.empty() && !too_big && buf && !buf->failed()) {
            std::string err;
            if (!buf->append(chunk, &err))
                log::warning("event=spill_failed sid=%s error=\"%s\"", sid_.c_str(), err.c_str());
        }
        if (dec.done() && ds_ok && !too_big) {
            chunk += ".\r\n";  // the last piece and the final dot in one write
            dot_sent = true;
        }
        if (!chunk.empty() && !too_big) {
            if (ds_ok && !co_await ds_.send(chunk)) {
                ds_ok = false;
                log::warning("event=downstream_lost sid=%s destination=%s stage=DATA", sid_.c_str(),
                             ds_.where().c_str());
            }
        }
        chunk.clear();
    }
    conn_->compact();
    const std::uint64_t size = dec.size();
    if (too_big) {
        ds_.close();  // no final dot: the downstream discards the partial message
        reply("552 5.3.4 Error: message file too big");
        end_transaction();
        co_return true;
    }
    Reply fin;
    if (ds_ok && (dot_sent || co_await ds_.send(".\r\n"))) fin = co_await ds_.reply();
    bool failed_over = false;
    if (fin.failed() && buf && !buf->failed()) {
        std::size_t next = ds_.index() + 1;
        log::warning("event=downstream_lost sid=%s destination=%s stage=end-of-data error=\"%s\"", sid_.c_str(),
                     ds_.where().c_str(), escape(fin.error, 120).c_str());
        ds_.close();
        while (fin.failed() && co_await restore(next)) {
            next = ds_.index() + 1;
            failed_over = true;
            Reply d = co_await ds_.command("DATA\r\n");
            if (d.code != 354) {
                ds_.close();
                continue;
            }
            std::vector<char> tmp(65536);
            std::uint64_t off = 0;
            bool ok = true;
            while (ok && off < buf->size()) {
                long n = buf->read_at(off, tmp.data(), tmp.size());
                if (n <= 0) {
                    ok = false;
                    break;
                }
                ok = co_await ds_.send(std::string_view(tmp.data(), static_cast<std::size_t>(n)));
                off += static_cast<std::uint64_t>(n);
            }
            if (ok && co_await ds_.send(".\r\n")) fin = co_await ds_.reply();
            if (fin.failed()) ds_.close();
        }
    }
    const bool spilled = buf && buf->spilled();
    if (buf) buf->clear();
    ++txn_count_;
    if (fin.failed()) {
        ds_.close();
        reply("451 4.4.2 Error: downstream failed during DATA, try again later");
        log::warning("event=deferred sid=%s txn=%u client=%s size=%llu fast_path=%s", sid_.c_str(), txn_count_,
                     endpoint_text(txn_.source.client).c_str(), static_cast<unsigned long long>(size),
                     fast ? "yes" : "no");
    } else {
        ds_.dirty = false;
        out_ += fin.wire();
        log::info("event=relayed sid=%s txn=%u client=%s destination=%s code=%d size=%llu fast_path=%s spilled=%s "
                  "failover=%s",
                  sid_.c_str(), txn_count_, endpoint_text(txn_.source.client).c_str(), ds_.where().c_str(), fin.code,
                  static_cast<unsigned long long>(size), fast ? "yes" : "no", spilled ? "yes" : "no",
                  failed_over ? "yes" : "no");
    }
    end_transaction();
    co_return true;
}

}  // namespace

asio::awaitable<void> run_session(std::shared_ptr<Conn> conn, const DownstreamConfig& ds, Shared& shared) {
    Session s(std::move(conn), ds, shared);
    co_await s.run();
}

}  // namespace xproxy::proxyd
