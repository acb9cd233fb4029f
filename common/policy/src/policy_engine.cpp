// policy_engine.cpp: decide() and its four policies (policy_engine.hpp). Each check
// returns a dunno decision when it has no opinion; decide() keeps the first other one.
#include <xproxy/base/text.hpp>
#include <xproxy/policy/policy_engine.hpp>

#include <array>

namespace xproxy {

namespace {

// "<a@b>" -> "a@b"; "<>" -> "".
std::string_view bare_address(std::string_view a) {
    if (a.size() >= 2 && a.front() == '<' && a.back() == '>') a = a.substr(1, a.size() - 2);
    return a;
}

// An address as it may appear in a reply: control bytes and DEL as '?', <= 256 bytes.
std::string sanitize(std::string_view s) {
    const std::size_t n = s.size() > 256 ? 256 : s.size();
    std::string out(s.substr(0, n));
    for (char& c : out) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) c = '?';
    }
    if (n < s.size()) out += "...";
    return out;
}

struct Address {
    std::string_view local, domain;
};

std::optional<Address> split(std::string_view address) {
    const std::size_t at = address.rfind('@');
    if (at == std::string_view::npos || at + 1 == address.size()) return std::nullopt;
    return Address{address.substr(0, at), address.substr(at + 1)};
}

// The domain and user of local@domain; with a recipient delimiter, "alice+tag" falls
// back to "alice".
Directory::AddressLookup resolve(const Directory& dir, const Address& a, const std::string& delimiters) {
    auto r = dir.lookup(a.local, a.domain);
    if (!r.domain || r.user || delimiters.empty()) return r;
    const std::size_t cut = a.local.find_first_of(delimiters);
    if (cut != std::string_view::npos && cut != 0) r.user = dir.find_user(*r.domain, a.local.substr(0, cut));
    return r;
}

PolicyDecision answer(ActionKind kind, PolicyId policy, Subject subject, std::uint16_t code, std::string_view status,
                      std::string_view reason, std::string text, std::string_view address) {
    PolicyDecision d;
    d.kind = kind;
    d.policy = policy;
    d.subject = subject;
    d.code = code;
    d.status = status;
    d.reason = reason;
    d.text = std::move(text);
    d.address = sanitize(address);
    return d;
}

PolicyDecision reject(PolicyId p, Subject s, std::uint16_t code, std::string_view status, std::string_view reason,
                      std::string text, std::string_view address) {
    return answer(code >= 500 ? ActionKind::reject : ActionKind::defer, p, s, code, status, reason, std::move(text),
                  address);
}

// The user a verified client certificate is mapped to (only over TLS).
std::optional<UserInfo> cert_user(const PolicyInput& in, const Directory& dir) {
    if (!in.tls_active || in.client_cert_fingerprint.empty()) return std::nullopt;
    return dir.find_by_fingerprint(in.client_cert_fingerprint);
}

// ---- deposit (doc/design.md, "Authenticated deposit") ----

PolicyDecision check_deposit(const PolicyInput& in, const PolicyConfig& cfg, const Directory& dir,
                             std::string_view sender) {
    const auto addr = split(sender);
    if (!addr) return {};
    const auto [dom, user] = resolve(dir, *addr, cfg.recipient_delimiter);
    if (!dom) return {};
    const std::string shown = "<" + sanitize(sender) + ">";
    if (dom->require_tls && !in.tls_active)
        return reject(PolicyId::deposit, Subject::sender, 550, "5.7.1", "tls_required",
                      "TLS required to send as " + shown, sender);
    const auto by_cert = cert_user(in, dir);
    if (user) {
        if (!in.sasl_username.empty() && dir.login_may_send_as(in.sasl_username, *user)) return {};
        if (by_cert && by_cert->id == user->id) return {};
    }
    if (in.sasl_username.empty() && !by_cert)
        return reject(PolicyId::deposit, Subject::sender, 550, "5.7.1", "auth_required",
                      "Authentication required to send as " + shown, sender);
    if (!in.sasl_username.empty())
        return reject(PolicyId::deposit, Subject::sender, 550, "5.7.1", "sender_not_owned",
                      "Sender address " + shown + " is not owned by user " + sanitize(in.sasl_username), sender);
    return reject(PolicyId::deposit, Subject::sender, 550, "5.7.1", "sender_not_owned",
                  "Sender address " + shown + " is not owned by the client certificate", sender);
}

// ---- virtual domains (doc/design.md, "Virtual domains"), sender side: submission rules ----

// The refusal of a sender whose domain (domain=true) or account is in state `s`; dunno
// for the states that may send (active, overquota).
PolicyDecision sender_state(EntryState s, bool domain, const std::string& name, std::string_view sender) {
    const std::string what = domain ? "Sender domain " + name : "Sender account " + name;
    auto refuse = [&](std::uint16_t code, std::string_view status, std::string_view dom_reason,
                      std::string_view user_reason, std::string_view text) {
        return reject(PolicyId::vdomains, Subject::sender, code, status, domain ? dom_reason : user_reason,
                      what + " " + std::string(text), sender);
    };
    switch (s) {
        case EntryState::active:
        case EntryState::overquota: return {};  // a full mailbox does not stop its owner from sending
        case EntryState::inactive:
            return refuse(450, "4.7.1", "sender_domain_inactive", "sender_inactive",
                          domain ? "is temporarily suspended" : "is temporarily disabled");
        case EntryState::disabled:
            return refuse(550, "5.7.1", "sender_domain_disabled", "sender_disabled", "is disabled");
        case EntryState::deleted:
            return refuse(550, "5.7.1", "sender_domain_deleted", "sender_deleted", "no longer exists");
        case EntryState::hold: return refuse(450, "4.7.1", "sender_domain_hold", "sender_hold", "is on hold");
    }
    return {};
}

PolicyDecision check_submission(const PolicyInput& in, const PolicyConfig& cfg, const Directory& dir,
                                std::string_view sender) {
    const bool authenticated = !in.sasl_username.empty() || cert_user(in, dir).has_value();
    if (!authenticated && in.service != ServiceKind::submission) return {};
    const auto addr = split(sender);
    if (!addr) return {};
    const auto [dom, user] = resolve(dir, *addr, cfg.recipient_delimiter);
    if (!dom) return {};
    const std::string name(sanitize(dom->name));
    if (PolicyDecision d = sender_state(dom->state, true, name, sender); d.kind != ActionKind::dunno) return d;
    if (!dom->services.has(Service::submission))
        return reject(PolicyId::vdomains, Subject::sender, 550, "5.7.1", "submission_disabled",
                      "Submission is not enabled for domain " + name, sender);
    const std::string shown = "<" + sanitize(sender) + ">";
    if (!user)
        return reject(PolicyId::vdomains, Subject::sender, 550, "5.1.0", "sender_unknown",
                      "Sender address " + shown + " unknown in virtual domain", sender);
    return sender_state(user->state, false, shown, sender);
}

// ---- virtual domains, recipient side (doc/directory.md, "vdomains, recipient side") ----

// The answer for a recipient whose domain (domain=true) or mailbox is in state `s`.
PolicyDecision recipient_state(EntryState s, bool domain, std::string_view rcpt) {
    auto refuse = [&](std::uint16_t code, std::string_view status, std::string_view dom_reason,
                      std::string_view user_reason, std::string_view dom_text, std::string_view user_text) {
        return reject(PolicyId::vdomains, Subject::recipient, code, status, domain ? dom_reason : user_reason,
                      std::string(domain ? dom_text : user_text), rcpt);
    };
    switch (s) {
        case EntryState::active: return {};
        case EntryState::inactive:
            return refuse(450, "4.2.1", "domain_inactive", "user_inactive",
                          "Mail domain temporarily suspended, try again later",
                          "Mailbox temporarily disabled, try again later");
        case EntryState::disabled:
            return refuse(550, "5.2.1", "domain_disabled", "user_disabled",
                          "Mail domain disabled, not accepting messages", "Mailbox disabled, not accepting messages");
        case EntryState::deleted:
            return domain ? refuse(550, "5.1.2", "domain_deleted", "", "Mail domain no longer exists", "")
                          : refuse(550, "5.1.6", "", "user_deleted", "", "Mailbox no longer exists");
        case EntryState::overquota:
            return refuse(452, "4.2.2", "domain_overquota", "user_overquota", "Mail domain over quota, try again later",
                          "Mailbox full, try again later");
        case EntryState::hold:
            return answer(ActionKind::hold, PolicyId::vdomains, Subject::recipient, 0, {},
                          domain ? "domain_hold" : "user_hold", domain ? "Mail domain on hold" : "Mailbox on hold",
                          rcpt);
    }
    return {};
}

// Whether a domain state refuses every recipient before the local part is looked at:
// the refusing states do; hold and overquota (which accept or defer the mail of existing
// users) let an unknown local part be refused first.
bool refuses_all(EntryState s) {
    return s == EntryState::inactive || s == EntryState::disabled || s == EntryState::deleted;
}

PolicyDecision check_recipient(const PolicyConfig& cfg, const Directory& dir, std::string_view rcpt) {
    const auto addr = split(rcpt);
    if (!addr) return {};
    const auto [dom, user] = resolve(dir, *addr, cfg.recipient_delimiter);
    if (!dom) return {};
    if (refuses_all(dom->state)) return recipient_state(dom->state, true, rcpt);
    if (!dom->services.has(Service::smtp))
        return reject(PolicyId::vdomains, Subject::recipient, 550, "5.7.1", "smtp_disabled",
                      "Mail domain does not receive mail", rcpt);
    if (!user && !iequals(addr->local, "postmaster"))
        return reject(PolicyId::vdomains, Subject::recipient, 550, "5.1.1", "user_unknown",
                      "User unknown in virtual domain", rcpt);
    // Combination rule (doc/directory.md, "States and services"): a refusing state wins over
    // a state that accepts or defers, so a user that is inactive, disabled or deleted is
    // refused with its own code even in a domain on hold or over quota; a domain on hold
    // or over quota is no way around the user's own state. Otherwise domain before user:
    // the first state that is not active decides. A postmaster that is not a user (RFC 5321
    // 4.5.1: the MTA routes it) gets the domain's state.
    if (user && refuses_all(user->state)) return recipient_state(user->state, false, rcpt);
    if (dom->state != EntryState::active || !user) return recipient_state(dom->state, true, rcpt);
    return recipient_state(user->state, false, rcpt);
}

// ---- risk routing (doc/design.md, "Risk routing") ----

PolicyDecision check_risk(const PolicyInput& in, const PolicyConfig& cfg, std::string_view sender) {
    const auto m = cfg.risk_map.classify(in.client_address, sender);
    if (!m || m->risk_class->transport.empty()) return {};
    PolicyDecision d;
    d.kind = ActionKind::filter;
    d.policy = PolicyId::risk;
    d.transport = m->risk_class->transport;
    const bool net = m->source == RiskMatch::Source::network;
    d.reason = net ? "risk_network" : "risk_sender_domain";
    d.text = "risk class " + m->risk_class->name + (net ? " from client network " : " from sender domain ") +
             std::string(m->matched);
    return d;
}

bool trusted(const PolicyInput& in, const PolicyConfig& cfg) {
    if (in.trusted_upstream) return *in.trusted_upstream;
    return in.client_address && cfg.trusted_upstreams.contains(*in.client_address);
}

}  // namespace

ProtocolState parse_protocol_state(std::string_view t) {
    struct Name {
        std::string_view text;
        ProtocolState state;
    };
    static constexpr std::array<Name, 9> kNames{{{"CONNECT", ProtocolState::connect},
                                                 {"EHLO", ProtocolState::helo},
                                                 {"HELO", ProtocolState::helo},
                                                 {"MAIL", ProtocolState::mail},
                                                 {"RCPT", ProtocolState::rcpt},
                                                 {"DATA", ProtocolState::data},
                                                 {"END-OF-MESSAGE", ProtocolState::end_of_message},
                                                 {"VRFY", ProtocolState::vrfy},
                                                 {"ETRN", ProtocolState::etrn}}};
    for (const auto& n : kNames)
        if (iequals(t, n.text)) return n.state;
    return ProtocolState::unknown;
}

std::string_view to_string(ProtocolState s) {
    switch (s) {
        case ProtocolState::unknown: return "unknown";
        case ProtocolState::connect: return "CONNECT";
        case ProtocolState::helo: return "HELO";
        case ProtocolState::mail: return "MAIL";
        case ProtocolState::rcpt: return "RCPT";
        case ProtocolState::data: return "DATA";
        case ProtocolState::end_of_message: return "END-OF-MESSAGE";
        case ProtocolState::vrfy: return "VRFY";
        case ProtocolState::etrn: return "ETRN";
    }
    return "unknown";
}

std::string_view to_string(ActionKind k) {
    switch (k) {
        case ActionKind::dunno: return "dunno";
        case ActionKind::reject: return "reject";
        case ActionKind::defer: return "defer";
        case ActionKind::filter: return "filter";
        case ActionKind::inject: return "inject";
        case ActionKind::hold: return "hold";
    }
    return "?";
}

std::string_view to_string(PolicyId p) {
    switch (p) {
        case PolicyId::none: return "none";
        case PolicyId::inject: return "inject";
        case PolicyId::vdomains: return "vdomains";
        case PolicyId::deposit: return "deposit";
        case PolicyId::risk: return "risk";
    }
    return "?";
}

Expected<void> PolicyConfig::enable(const std::vector<std::string>& names) {
    for (const std::string& entry : names) {
        std::string_view rest = entry;
        while (!rest.empty()) {
            const std::size_t cut = rest.find_first_of(", \t");
            const std::string_view name = rest.substr(0, cut);
            rest = cut == std::string_view::npos ? std::string_view() : rest.substr(cut + 1);
            if (name.empty()) continue;
            if (name == "inject") inject = true;
            else if (name == "vdomains") vdomains = true;
            else if (name == "deposit") deposit = true;
            else if (name == "risk") risk = true;
            else return Failure{"unknown policy '" + sanitize(name) + "' (want inject, vdomains, deposit or risk)"};
        }
    }
    return {};
}

std::string PolicyDecision::postfix_action(std::string_view header) const {
    switch (kind) {
        case ActionKind::dunno: return "DUNNO";
        case ActionKind::reject:
        case ActionKind::defer: return std::to_string(code) + " " + std::string(status) + " " + text;
        case ActionKind::filter: return "FILTER " + transport;
        case ActionKind::inject: return header.empty() ? "DUNNO" : "PREPEND " + std::string(header);
        case ActionKind::hold: return "HOLD " + text;
    }
    return "DUNNO";
}

std::string PolicyDecision::smtp_text() const {
    if ((kind != ActionKind::reject && kind != ActionKind::defer) || subject == Subject::none) return text;
    const char* what = subject == Subject::sender ? "Sender address" : "Recipient address";
    return "<" + address + ">: " + what + " rejected: " + text;
}

PolicyDecision decide(const PolicyInput& in, const PolicyConfig& cfg, const Directory& dir) {
    switch (in.state) {
        case ProtocolState::data:
            if (cfg.inject && !trusted(in, cfg)) {
                PolicyDecision d;
                d.kind = ActionKind::inject;
                d.policy = PolicyId::inject;
                d.reason = "inject";
                return d;
            }
            return {};
        case ProtocolState::mail:
        case ProtocolState::rcpt: {
            if ((cfg.vdomains || cfg.deposit) && !dir.loaded()) {
                PolicyDecision d;
                d.kind = ActionKind::defer;
                d.policy = cfg.vdomains ? PolicyId::vdomains : PolicyId::deposit;
                d.code = 451;
                d.status = "4.3.0";
                d.reason = "directory_unavailable";
                d.text = "Directory not available, try again later";
                return d;
            }
            const std::string_view sender = bare_address(in.sender);
            // A trusted upstream relays mail it has already checked (its hop knew the login).
            if (cfg.deposit && !sender.empty() && !trusted(in, cfg)) {
                PolicyDecision d = check_deposit(in, cfg, dir, sender);
                if (d.kind != ActionKind::dunno) return d;
            }
            if (cfg.vdomains && !sender.empty()) {
                PolicyDecision d = check_submission(in, cfg, dir, sender);
                if (d.kind != ActionKind::dunno) return d;
            }
            if (cfg.vdomains && in.state == ProtocolState::rcpt) {
                PolicyDecision d = check_recipient(cfg, dir, bare_address(in.recipient));
                if (d.kind != ActionKind::dunno) return d;
            }
            if (cfg.risk) return check_risk(in, cfg, sender);
            return {};
        }
        default: return {};
    }
}

}  // namespace xproxy
