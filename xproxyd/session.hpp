// session.hpp: one front-side SMTP session (RFC 5321 server) and its cut-through relay.
//
// The session reads commands (pipelined or not) and looks each verb up in its
// CommandTable, which refuses what the session's state does not allow; it answers what it
// can itself (EHLO, NOOP, RSET, QUIT, VRFY, HELP, syntax errors, STARTTLS, the source
// commands) and hands the downstream half of each transaction to its TransactionRelay,
// which opens the downstream lazily at the first MAIL with the transaction's source:
// MAIL and RCPT replies are the downstream's. For DATA it runs a DataRelay: with a
// connected downstream, DATA is sent down and 354 answered at once, and the downstream's
// answer is read while the body comes in (a refusal becomes the reply to the final dot);
// without one, 354 waits until a destination has taken MAIL, RCPT and DATA. The reply to
// the final dot is the downstream's reply to it: xproxyd never answers 250 to a message
// the downstream did not accept. With the fast path the body is also kept (BodyBuffer)
// so that a destination failing before its final reply is replaced by the next one
// without asking the client to resend.
//
// Session owns its FrontSide (the client connection and pending replies), its
// SourceTracker and its TransactionRelay (the downstream connection); a DataRelay lives
// for one DATA command.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <xproxy/wire/smtp_command.hpp>
#include <xproxy/wire/xproxy_commands.hpp>

#include "bdat_relay.hpp"
#include "command_table.hpp"
#include "front_side.hpp"
#include "session_shared.hpp"
#include "source.hpp"
#include "submission.hpp"
#include "transaction_relay.hpp"

namespace xproxy::xproxyd {

class Session {
public:
    Session(std::shared_ptr<Conn> conn, const Listener& listener, Shared& sh);

    asio::awaitable<void> run();

private:
    friend class CommandTable;  // its rows name the handlers below

    void start();
    // The command loop; returns why the session ended (for the disconnect log line).
    asio::awaitable<const char*> serve_commands();
    // A 421 written at once; the session ends after it.
    asio::awaitable<void> close_with(const char* code, const char* text);
    // Returns false when the session must end.
    asio::awaitable<bool> dispatch(const std::string& line);
    FrontState state() const;
    static bool looks_like_bdat(std::string_view line);
    // 501 and 421: a BDAT whose chunk size cannot be read ends the session (RFC 3030).
    asio::awaitable<void> refuse_unreadable_bdat(std::string line);
    // A BDAT that is not taken: its chunk is read and dropped, then `reply`; without a
    // size the end of the chunk is unknown and the session ends (RFC 3030, 2).
    asio::awaitable<bool> refuse_chunk(const smtp::CommandLine& c, const std::string& reply, bool bad_syntax);
    void end_transaction();
    // The submission mode: the SASL exchange after AUTH (334 challenges until the client's
    // credentials are whole); nullopt when it ended without them (the client has its reply)
    // or the session must end (*go_on false).
    asio::awaitable<std::optional<sasl::Credentials>> sasl_exchange(const smtp::CommandLine& c, bool* go_on);
    // After a successful AUTH: the user's home MTA replaces the listener's downstream.
    void route_home(const std::string& login);
    // A failed login: counted by the throttle (user empty: for the address only; the
    // attempt in flight released then), logged without the secret, answered 535 after the
    // throttle's delay.
    asio::awaitable<void> refuse_login(std::string_view user, std::string_view mechanism, std::string_view reason,
                                       ThrottleAttempt* attempt);
    asio::awaitable<void> pause(std::chrono::milliseconds d);
    bool syntax_error() { return ++errors_ < cfg_.max_errors; }

    // Handlers (rows of the CommandTable): called only when their row allows the command.
    asio::awaitable<bool> cmd_helo(const smtp::CommandLine& c, const std::string& line);
    asio::awaitable<bool> cmd_mail(const smtp::CommandLine& c, const std::string& line);
    asio::awaitable<bool> cmd_rcpt(const smtp::CommandLine& c, const std::string& line);
    asio::awaitable<bool> cmd_data(const smtp::CommandLine& c, const std::string& line);
    asio::awaitable<bool> cmd_bdat(const smtp::CommandLine& c, const std::string& line);
    asio::awaitable<bool> cmd_rset(const smtp::CommandLine& c, const std::string& line);
    asio::awaitable<bool> cmd_noop(const smtp::CommandLine& c, const std::string& line);
    asio::awaitable<bool> cmd_quit(const smtp::CommandLine& c, const std::string& line);
    asio::awaitable<bool> cmd_starttls(const smtp::CommandLine& c, const std::string& line);
    asio::awaitable<bool> cmd_source(const smtp::CommandLine& c, const std::string& line);
    asio::awaitable<bool> cmd_xproxyto(const smtp::CommandLine& c, const std::string& line);
    asio::awaitable<bool> cmd_auth(const smtp::CommandLine& c, const std::string& line);
    asio::awaitable<bool> cmd_vrfy(const smtp::CommandLine& c, const std::string& line);
    asio::awaitable<bool> cmd_help(const smtp::CommandLine& c, const std::string& line);

    const Config& cfg_;
    Shared& sh_;
    const Listener& listener_;
    std::string sid_;  // set by start(); the relays keep a reference
    // The submission mode, after AUTH: the login, the directory it was checked against and
    // the home MTA (declared before relay_, whose downstream refers to it).
    std::string login_;
    std::shared_ptr<const Directory> directory_;
    std::unique_ptr<DownstreamConfig> home_;
    std::string home_error_;  // no route to the user's home MTA: MAIL gets 451
    FrontSide front_;
    std::optional<SourceTracker> src_;  // set by start()
    TransactionRelay relay_;
    std::optional<BdatRelay> bdat_;  // from a transaction's first BDAT to its end
    std::string helo_;
    bool esmtp_ = false;
    unsigned commands_ = 0;
    unsigned errors_ = 0;
    bool closing_ = false;
    smtp::XproxyAccumulator xproxyto_;  // an XPROXYTO sequence (LAST=False) being read
    const bool splice_;                 // the listener's xproxyto=splice
};

// The entry point for an accepted connection.
asio::awaitable<void> run_session(std::shared_ptr<Conn> conn, const Listener& listener, Shared& shared);

}  // namespace xproxy::xproxyd
