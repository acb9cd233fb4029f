// authorization.cpp: the deposit authorization rule; see authorization.hpp.
#include "authorization.hpp"

#include <xproxy/base/text.hpp>
#include <xproxy/policy/policy_engine.hpp>
#include <xproxy/wire/mail_address.hpp>

namespace xproxy::depositd {

namespace {

Authorization refused(int status, std::string reason, std::string detail, std::string address) {
    Authorization a;
    a.status = status;
    a.reason = std::move(reason);
    a.detail = std::move(detail);
    a.address = std::move(address);
    return a;
}

std::string_view domain_of(std::string_view address) {
    const auto at = address.rfind('@');
    return at == std::string_view::npos ? std::string_view{} : address.substr(at + 1);
}

// The identity itself, or an address its directory user may send as.
bool may_use(std::string_view identity, std::string_view address, const Directory& dir) {
    if (iequals(canonical_address(identity), address)) return true;
    if (!dir.find_by_login(identity)) return false;
    auto owner = dir.find_address(address);
    return owner && dir.login_may_send_as(identity, *owner);
}

bool may_relay(std::string_view identity, const Directory& dir) {
    auto user = dir.find_by_login(identity);
    if (!user) return false;
    const DomainInfo domain = dir.domain_at(user->domain_id);
    const EntryState s = combine_states({domain.state, user->state});
    return (s == EntryState::active || s == EntryState::overquota) && domain.services.has(Service::submission);
}

// The engine's answer as ours: reject -> 403 `refusal`, defer -> 503.
Authorization from_engine(const PolicyDecision& d, const std::string& refusal, const std::string& address) {
    if (d.kind == ActionKind::reject) return refused(403, refusal, std::string(d.reason) + ": " + d.text, address);
    if (d.kind == ActionKind::defer)
        return refused(503, d.reason == "directory_unavailable" ? "directory_unavailable" : "policy_deferred",
                       std::string(d.reason) + ": " + d.text, address);
    return {};
}

PolicyConfig engine_config(bool deposit) {
    PolicyConfig c;
    c.vdomains = true;
    c.deposit = deposit;
    return c;
}

bool atext(unsigned char c) {
    if (c >= 0x80) return true;  // UTF-8 (RFC 6532)
    if (c <= 0x20 || c == 0x7F) return false;
    return std::string_view("()<>[]:;@\\,.\"").find(static_cast<char>(c)) == std::string_view::npos;
}

bool label_char(unsigned char c) {
    const char a = ascii_lower(static_cast<char>(c));
    return c >= 0x80 || ascii_digit(a) || (a >= 'a' && a <= 'z') || a == '-';
}

// Non-empty runs of `part` separated by single dots, no dot at either end.
template <class Pred>
bool dotted(std::string_view part, Pred ok) {
    if (part.empty() || part.front() == '.' || part.back() == '.') return false;
    for (std::size_t i = 0; i < part.size(); ++i) {
        const auto c = static_cast<unsigned char>(part[i]);
        if (c == '.' ? part[i - 1] == '.' : !ok(c)) return false;
    }
    return true;
}

}  // namespace

std::optional<std::string> canonical_identity(std::string_view identity) {
    if (identity.size() > 320) return std::nullopt;
    const auto at = identity.find('@');
    if (at == std::string_view::npos) return std::nullopt;
    if (!dotted(identity.substr(0, at), atext) || !dotted(identity.substr(at + 1), label_char)) return std::nullopt;
    return to_lower(identity);
}

Authorization authorize(const DepositEnvelope& env, const Directory& dir) {
    if (!dir.loaded()) return refused(503, "directory_unavailable", "the directory is not loaded yet", "");
    for (const std::string* a : {&env.sender, &env.from})
        if (!may_use(env.identity, *a, dir))
            return refused(
                403, "sender_not_allowed",
                std::string(a == &env.sender ? "the envelope sender" : "the From address") + " is not the identity's",
                *a);
    for (const auto& [field, address] : env.other_senders)
        if (!may_use(env.identity, address, dir))
            return refused(403, "sender_not_allowed", "an address of the " + field + " field is not the identity's",
                           address);
    // A hosted sender: the checks of an authenticated submission.
    static const PolicyConfig sender_checks = engine_config(true);
    for (const std::string* a : {&env.sender, &env.from}) {
        if (!dir.find_domain(domain_of(*a))) continue;
        PolicyInput in;
        in.state = ProtocolState::mail;
        in.sender = *a;
        in.sasl_username = env.identity;
        in.tls_active = true;
        in.service = ServiceKind::submission;
        in.trusted_upstream = false;
        if (auto r = from_engine(decide(in, sender_checks, dir), "login_refused", *a); !r.allowed()) return r;
    }
    Authorization ok;
    ok.may_relay = may_relay(env.identity, dir);
    if (ok.may_relay) return ok;
    static const PolicyConfig recipient_checks = engine_config(false);
    for (const auto& r : env.recipients) {
        if (!dir.find_domain(domain_of(r)))
            return refused(403, "recipient_not_hosted", "not a domain of this server", r);
        PolicyInput in;
        in.state = ProtocolState::rcpt;
        in.recipient = r;
        in.trusted_upstream = false;
        if (auto a = from_engine(decide(in, recipient_checks, dir), "recipient_refused", r); !a.allowed()) return a;
    }
    return ok;
}

}  // namespace xproxy::depositd
