// access_decision.hpp: whether a login may use a mail service (IMAP, POP3, submission
// ...), from the directory alone: the mailbox access decision the auth policy service
// (auth_policy.hpp) answers Dovecot with. doc/directory.md, "Mailbox access".
//
// Promises: a pure function of the directory snapshot and its arguments; refuses every
// login the directory does not map to a user (Directory::find_by_login), a domain or user
// that is not active, and a service the domain does not list. `reason` is a static word
// for the log, `text` the sentence the client is shown.
#pragma once

#include <string>
#include <string_view>

#include <xproxy/policy/directory.hpp>

namespace xproxy::policyd {

struct AccessDecision {
    enum class Kind { allow, refuse, tempfail } kind = Kind::allow;
    std::string_view reason;  // "" when allowed
    std::string text;         // "" when allowed
};

AccessDecision decide_access(const Directory& dir, std::string_view login, Service service);

}  // namespace xproxy::policyd
