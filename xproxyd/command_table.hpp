// command_table.hpp: the front-side SMTP commands, one row per verb, as Postfix's
// smtpd_cmd_table: the Session method that handles the verb, what its argument must look
// like, and flags that say in which state it may be used. The Session's dispatcher
// looks the verb up and checks the row once, before the handler runs, so that a handler
// only ever runs in a state its row allows. The refusals are fixed replies (upstream
// MTAs, the e2e tests and Postfix interoperation read them), checked in this order:
//
//   needs_tls_offered    502 5.5.1 Error: command not implemented   (no --tls-cert)
//   plain_text_only      554 5.5.1 Error: TLS already active
//   ArgRule none/required 501 5.5.4 Syntax: <usage>   (counts towards --max-errors
//                                                      with counts_bad_syntax)
//   needs_helo           503 5.5.1 Error: send HELO/EHLO first
//   starts_transaction   503 5.5.1 Error: nested MAIL command
//   needs_mail           503 5.5.1 Error: need MAIL command
//   needs_recipients     503 5.5.1 Error: need RCPT command, then
//                        554 5.5.1 Error: no valid recipients
//   outside_transaction  503 5.5.1 Error: MAIL transaction in progress
//   needs_submission     502 5.5.1 Error: command not implemented   (AUTH off mode=submission)
//   not_in_submission    502 5.5.1 Error: command not implemented   (the source commands
//                        on a mode=submission listener: its clients are mail users)
//   once_per_session     503 5.5.1 Error: already authenticated     (RFC 4954 4)
//   needs_tls_for_auth   538 5.7.11 Encryption required for requested authentication mechanism
//   needs_auth           530 5.7.0 Authentication required   (MAIL on a mode=submission listener)
//
// continues_sequence is no check: every other command (known or not) abandons an
// unfinished XPROXYFROM sequence. chunk_follows (BDAT) is none either: the command is
// followed by as many bytes as its argument says, so a refused one still has its chunk
// read and dropped before the refusal (the session ends when the size is unknown). There is no front-side "TLS required" mode: every
// command is allowed before STARTTLS.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <xproxy/wire/smtp_command.hpp>

#include "conn.hpp"

namespace xproxy::xproxyd {

class Session;

// The session's state as far as the rows' flags are concerned.
struct FrontState {
    bool helo = false;           // HELO/EHLO since the greeting, STARTTLS or XCLIENT
    bool transaction = false;    // MAIL accepted (routed or not)
    bool recipients = false;     // at least one RCPT accepted
    bool tls_offered = false;    // front-side STARTTLS configured
    bool tls = false;            // STARTTLS done
    bool submission = false;     // a mode=submission listener
    bool authenticated = false;  // AUTH succeeded
};

enum class ArgRule : std::uint8_t { any, none, required };

namespace command_flags {
inline constexpr unsigned needs_tls_offered = 1u << 0;
inline constexpr unsigned plain_text_only = 1u << 1;
inline constexpr unsigned counts_bad_syntax = 1u << 2;
inline constexpr unsigned needs_helo = 1u << 3;
inline constexpr unsigned starts_transaction = 1u << 4;
inline constexpr unsigned needs_mail = 1u << 5;
inline constexpr unsigned needs_recipients = 1u << 6;
inline constexpr unsigned outside_transaction = 1u << 7;
inline constexpr unsigned continues_sequence = 1u << 8;
inline constexpr unsigned chunk_follows = 1u << 9;
inline constexpr unsigned needs_submission = 1u << 10;
inline constexpr unsigned not_in_submission = 1u << 11;
inline constexpr unsigned once_per_session = 1u << 12;
inline constexpr unsigned needs_tls_for_auth = 1u << 13;
inline constexpr unsigned needs_auth = 1u << 14;
}  // namespace command_flags

// A handler gets the split command and the line as read; false ends the session.
using CommandHandler = asio::awaitable<bool> (Session::*)(const smtp::CommandLine& c, const std::string& line);

struct CommandRow {
    std::string_view verb;  // upper case, as smtp::split_command() gives it
    CommandHandler handler;
    ArgRule arg;
    std::string_view usage;  // after "501 5.5.4 Syntax: " when the argument is refused
    unsigned flags;
    bool has(unsigned flag) const { return (flags & flag) != 0; }
};

struct Refusal {
    std::string reply;
    bool counts_as_error = false;  // towards --max-errors
};

class CommandTable {
public:
    static std::span<const CommandRow> rows();
    // The row of a verb; nullptr for a command xproxyd does not know.
    static const CommandRow* find(std::string_view verb);
    // The reply instead of the handler when the row does not allow the command now.
    static std::optional<Refusal> check(const CommandRow& row, const smtp::CommandLine& c, const FrontState& s);
};

}  // namespace xproxy::xproxyd
