// command_table.cpp: the rows and their checks; see command_table.hpp.
#include "command_table.hpp"

#include <array>

#include "session.hpp"

namespace xproxy::xproxyd {

namespace {
using namespace command_flags;
}  // namespace

// A static member, so that it may name Session's private handlers (Session befriends
// CommandTable).
std::span<const CommandRow> CommandTable::rows() {
    static const std::array<CommandRow, 17> table{{
        {"EHLO", &Session::cmd_helo, ArgRule::required, "EHLO hostname", counts_bad_syntax},
        {"HELO", &Session::cmd_helo, ArgRule::required, "HELO hostname", counts_bad_syntax},
        {"MAIL", &Session::cmd_mail, ArgRule::any, {}, needs_helo | starts_transaction | needs_auth},
        {"RCPT", &Session::cmd_rcpt, ArgRule::any, {}, needs_mail},
        {"DATA", &Session::cmd_data, ArgRule::none, "DATA", counts_bad_syntax | needs_recipients},
        {"BDAT", &Session::cmd_bdat, ArgRule::any, {}, needs_helo | needs_recipients | chunk_follows},
        {"RSET", &Session::cmd_rset, ArgRule::any, {}, 0},
        {"NOOP", &Session::cmd_noop, ArgRule::any, {}, 0},
        {"QUIT", &Session::cmd_quit, ArgRule::any, {}, 0},
        {"STARTTLS", &Session::cmd_starttls, ArgRule::none, "STARTTLS",
         needs_tls_offered | plain_text_only | outside_transaction},
        {"AUTH", &Session::cmd_auth, ArgRule::required, "AUTH mechanism [initial-response]",
         needs_submission | counts_bad_syntax | needs_helo | outside_transaction | once_per_session |
             needs_tls_for_auth},
        {"XCLIENT", &Session::cmd_source, ArgRule::any, {}, not_in_submission | outside_transaction},
        {"XFORWARD", &Session::cmd_source, ArgRule::any, {}, not_in_submission | outside_transaction},
        {"XPROXYFROM",
         &Session::cmd_source,
         ArgRule::any,
         {},
         not_in_submission | outside_transaction | continues_sequence},
        {"XPROXYTO", &Session::cmd_xproxyto, ArgRule::required, "XPROXYTO DESTINATIONS=[ip],[ip] ... LAST=True",
         not_in_submission | counts_bad_syntax | needs_helo | outside_transaction},
        {"VRFY", &Session::cmd_vrfy, ArgRule::any, {}, 0},
        {"HELP", &Session::cmd_help, ArgRule::any, {}, 0},
    }};
    return table;
}

const CommandRow* CommandTable::find(std::string_view verb) {
    for (const CommandRow& row : rows())
        if (row.verb == verb) return &row;
    return nullptr;
}

std::optional<Refusal> CommandTable::check(const CommandRow& row, const smtp::CommandLine& c, const FrontState& s) {
    if (row.has(needs_tls_offered) && !s.tls_offered) return Refusal{"502 5.5.1 Error: command not implemented"};
    if ((row.has(needs_submission) && !s.submission) || (row.has(not_in_submission) && s.submission))
        return Refusal{"502 5.5.1 Error: command not implemented"};
    if (row.has(plain_text_only) && s.tls) return Refusal{"554 5.5.1 Error: TLS already active"};
    if ((row.arg == ArgRule::none && !c.arg.empty()) || (row.arg == ArgRule::required && c.arg.empty()))
        return Refusal{"501 5.5.4 Syntax: " + std::string(row.usage), row.has(counts_bad_syntax)};
    if (row.has(needs_helo) && !s.helo) return Refusal{"503 5.5.1 Error: send HELO/EHLO first"};
    if (row.has(starts_transaction) && s.transaction) return Refusal{"503 5.5.1 Error: nested MAIL command"};
    if (row.has(needs_mail) && !s.transaction) return Refusal{"503 5.5.1 Error: need MAIL command"};
    if (row.has(needs_recipients) && !s.transaction) return Refusal{"503 5.5.1 Error: need RCPT command"};
    if (row.has(needs_recipients) && !s.recipients) return Refusal{"554 5.5.1 Error: no valid recipients"};
    if (row.has(outside_transaction) && s.transaction) return Refusal{"503 5.5.1 Error: MAIL transaction in progress"};
    if (row.has(once_per_session) && s.authenticated) return Refusal{"503 5.5.1 Error: already authenticated"};
    if (row.has(needs_tls_for_auth) && !s.tls)
        return Refusal{"538 5.7.11 Encryption required for requested authentication mechanism"};
    if (row.has(needs_auth) && s.submission && !s.authenticated) return Refusal{"530 5.7.0 Authentication required"};
    return std::nullopt;
}

}  // namespace xproxy::xproxyd
