// access_decision.hpp: may a user log in to a service? The one answer xproxyd's
// submission login check and the access servers (IMAP, POP3 ... through the Dovecot
// auth-policy service of xproxy-policyd) give from the directory.
//
// Which states let a user in (doc/directory.md, "Access decision"): active and overquota
// (an over-quota user must be able to log in to delete mail, and may still send). Not
// inactive, disabled, deleted, nor hold (the messaging schema's hold: mail is held and
// access to the mailbox is not allowed). The domain comes first: its state, then its
// services, then the user's state; the first state that refuses decides.
//
// Promises: pure and thread-safe (no I/O, no state), never throws; the reason is a static
// token; the text names no secret and echoes no client byte except through the
// directory's own (validated) names.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <xproxy/policy/directory.hpp>

namespace xproxy {

struct AccessDecision {
    enum class Kind : std::uint8_t { allow, refuse, tempfail } kind = Kind::allow;
    // Stable token for logs and metrics: "user_unknown", "domain_inactive",
    // "user_disabled", "service_not_allowed", "directory_unavailable" ...; empty on allow.
    std::string_view reason;
    std::string text;  // for the client: "Account disabled"; empty on allow

    bool allowed() const { return kind == Kind::allow; }
};

// True for the states that let a user log in and send: active, overquota.
constexpr bool state_allows_access(EntryState s) { return s == EntryState::active || s == EntryState::overquota; }

// May the user that `login` names (Directory::find_by_login) use `service` (imap, pop3,
// submission ...)? Not loaded -> tempfail directory_unavailable; login names nobody ->
// refuse user_unknown; then domain state, the domain's services, user state.
AccessDecision decide_access(const Directory& dir, std::string_view login, Service service);
// The same for a user already found in `dir` (the domain part and the user part).
AccessDecision decide_access(const Directory& dir, const UserInfo& user, Service service);

}  // namespace xproxy
