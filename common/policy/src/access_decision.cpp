// access_decision.cpp: decide_access() (access_decision.hpp).
#include <xproxy/policy/access_decision.hpp>

namespace xproxy {

namespace {

AccessDecision refuse(std::string_view reason, std::string text) {
    return AccessDecision{AccessDecision::Kind::refuse, reason, std::move(text)};
}

// The refusal for a domain (domain=true) or user in state `s`; allow for the states that
// let a user in.
AccessDecision state_refusal(EntryState s, bool domain) {
    const char* who = domain ? "Domain" : "Account";
    switch (s) {
        case EntryState::active:
        case EntryState::overquota: return {};
        case EntryState::inactive:
            return refuse(domain ? "domain_inactive" : "user_inactive",
                          std::string(who) + (domain ? " temporarily suspended" : " temporarily disabled"));
        case EntryState::disabled:
            return refuse(domain ? "domain_disabled" : "user_disabled", std::string(who) + " disabled");
        case EntryState::deleted:
            return refuse(domain ? "domain_deleted" : "user_deleted", std::string(who) + " no longer exists");
        case EntryState::hold: return refuse(domain ? "domain_hold" : "user_hold", std::string(who) + " on hold");
    }
    return refuse(domain ? "domain_inactive" : "user_inactive", std::string(who) + " not active");
}

}  // namespace

AccessDecision decide_access(const Directory& dir, const UserInfo& user, Service service) {
    if (!dir.loaded())
        return AccessDecision{AccessDecision::Kind::tempfail, "directory_unavailable",
                              "Directory not available, try again later"};
    const DomainInfo domain = dir.domain_at(user.domain_id);
    if (AccessDecision d = state_refusal(domain.state, true); !d.allowed()) return d;
    if (!domain.services.has(service))
        return refuse("service_not_allowed", "Service " + std::string(to_string(service)) + " not enabled for domain " +
                                                 std::string(domain.name));
    return state_refusal(user.state, false);
}

AccessDecision decide_access(const Directory& dir, std::string_view login, Service service) {
    if (!dir.loaded())
        return AccessDecision{AccessDecision::Kind::tempfail, "directory_unavailable",
                              "Directory not available, try again later"};
    const auto user = dir.find_by_login(login);
    if (!user) return refuse("user_unknown", "Unknown user");
    return decide_access(dir, *user, service);
}

}  // namespace xproxy
