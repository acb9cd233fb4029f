// session_impl.hpp: the Session class shared by session.cpp (front-side commands),
// transaction.cpp (MAIL, RCPT, RSET and the downstream connection) and data_relay.cpp
// (DATA: the body relay, the fast path and failover). Internal to xproxyd-core.
#pragma once

#include <ctime>
#include <memory>
#include <optional>

#include "body_buffer.hpp"
#include <xproxy/wire/smtp_command.hpp>
#include <xproxy/wire/data_decoder.hpp>
#include "downstream.hpp"
#include "session.hpp"
#include "source.hpp"
#include <xproxy/daemon/log.hpp>
#include <xproxy/base/escape.hpp>

namespace xproxy::xproxyd::session_detail {

using asio::awaitable;

inline std::string endpoint_text(const std::optional<Endpoint>& e) { return e ? e->to_string() : "unknown"; }

inline bool has_8bit(std::string_view s) {
    for (char c : s)
        if (static_cast<unsigned char>(c) >= 128) return true;
    return false;
}
struct Transaction {
    bool active = false;
    smtp::PathArg mail;
    smtp::MailParams params;
    std::string mail_line;                 // as sent downstream
    std::vector<std::string> rcpt_lines;   // accepted downstream, for replay on failover
    unsigned rcpts = 0;                    // RCPT commands seen
    // No destination could take MAIL: MAIL and RCPT are answered 250 without a downstream,
    // DATA tries every destination once more (replaying MAIL and RCPT) and answers 451
    // when none takes it, so the upstream keeps the message queued (doc/design.md, "No destination at MAIL").
    bool unrouted = false;
    SourceInfo source;
};

class Session {
public:
    Session(std::shared_ptr<Conn> c, const DownstreamConfig& dcfg, Shared& sh)
        : conn_(std::move(c)), cfg_(sh.cfg), sh_(sh), ds_(conn_->socket().get_executor(), dcfg, sh.client_tls_for(dcfg)) {}

    awaitable<void> run();

private:
    void reply(std::string_view line) {
        out_ += line;
        out_ += "\r\n";
    }
    awaitable<bool> flush();
    // Returns false when the session must end.
    awaitable<bool> dispatch(const std::string& line);
    awaitable<void> cmd_ehlo(const smtp::CommandLine& c);
    awaitable<bool> cmd_starttls(const smtp::CommandLine& c);
    awaitable<void> cmd_source(const smtp::CommandLine& c, const std::string& line);
    awaitable<void> cmd_mail(const smtp::CommandLine& c);
    awaitable<void> cmd_rcpt(const smtp::CommandLine& c);
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

}  // namespace xproxy::xproxyd::session_detail
