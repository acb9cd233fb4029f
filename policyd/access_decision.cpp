// access_decision.cpp: see access_decision.hpp. Checked in the order of doc/directory.md's
// table: who the login is, the domain's state, the user's state, the domain's services.
#include "access_decision.hpp"

namespace xproxy::policyd {

namespace {

AccessDecision refuse(AccessDecision::Kind kind, std::string_view reason, std::string text) {
    return {kind, reason, std::move(text)};
}

}  // namespace

AccessDecision decide_access(const Directory& dir, std::string_view login, Service service) {
    using Kind = AccessDecision::Kind;
    const auto user = dir.find_by_login(login);
    if (!user) return refuse(Kind::refuse, "user_unknown", "Unknown user");
    const DomainInfo domain = dir.domain_at(user->domain_id);
    if (domain.state == EntryState::inactive)
        return refuse(Kind::tempfail, "domain_inactive", "Mail domain temporarily suspended, try again later");
    if (domain.state == EntryState::deleted)
        return refuse(Kind::refuse, "domain_deleted", "Mail domain no longer exists");
    if (user->state == EntryState::inactive)
        return refuse(Kind::tempfail, "user_inactive", "Mailbox temporarily disabled, try again later");
    if (user->state == EntryState::deleted) return refuse(Kind::refuse, "user_deleted", "Mailbox no longer exists");
    if (!domain.services.has(service))
        return refuse(Kind::refuse, "service_disabled",
                      "Service " + std::string(to_string(service)) + " is not enabled for this domain");
    return {};
}

}  // namespace xproxy::policyd
