// entry_state_test: every domain and user state on each side of the engine (recipient,
// sender) and in the access decision, with the codes of doc/directory.md; the precedence
// of domain over user; and the tempfail of a directory that is not loaded.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <xproxy/policy/access_decision.hpp>
#include <xproxy/policy/directory_file.hpp>
#include <xproxy/policy/policy_engine.hpp>

#include "expected_value.hpp"

using namespace xproxy;

namespace {

constexpr EntryState kStates[] = {EntryState::active,  EntryState::inactive, EntryState::disabled,
                                  EntryState::deleted, EntryState::hold,     EntryState::overquota};

// domain STATE.example state=STATE, each with users STATE@ of every state, plus
// mixed.example without submission and imap.
const Directory& directory() {
    static const Directory d = [] {
        std::string text;
        for (EntryState ds : kStates) {
            const std::string dn(to_string(ds));
            text += "domain " + dn + ".example state=" + dn + " services=smtp,submission,imap\n";
            for (EntryState us : kStates) {
                const std::string un(to_string(us));
                text += "user " + un + "@" + dn + ".example state=" + un + " login=" + un + "." + dn + "\n";
            }
        }
        text += "domain inbound.example services=smtp\nuser ann@inbound.example\n";
        std::string error;
        auto parsed = xproxy::test::value_or_error(parse_directory(text), error);
        if (!parsed) ADD_FAILURE() << error;
        return parsed ? std::move(*parsed) : Directory();
    }();
    return d;
}

PolicyConfig vdomains() {
    PolicyConfig c;
    c.vdomains = true;
    return c;
}

PolicyDecision rcpt(const Directory& dir, const std::string& to) {
    PolicyInput in;
    in.state = ProtocolState::rcpt;
    in.sender = "someone@remote.example";
    in.recipient = to;
    return decide(in, vdomains(), dir);
}

PolicyDecision mail_from(const Directory& dir, const std::string& from) {
    PolicyInput in;
    in.state = ProtocolState::mail;
    in.sender = from;
    in.sasl_username = from;
    in.service = ServiceKind::submission;
    return decide(in, vdomains(), dir);
}

struct Want {
    EntryState state;
    const char* action;  // postfix_action()
    const char* reason;
};

void expect(const PolicyDecision& d, const Want& w, const std::string& what) {
    EXPECT_EQ(d.postfix_action(), w.action) << what;
    EXPECT_EQ(d.reason, w.reason) << what;
    EXPECT_EQ(d.policy, *w.reason ? PolicyId::vdomains : PolicyId::none) << what;
}

}  // namespace

TEST(EntryStates, RecipientSide) {
    const Want user_rows[] = {
        {EntryState::active, "DUNNO", ""},
        {EntryState::inactive, "450 4.2.1 Mailbox temporarily disabled, try again later", "user_inactive"},
        {EntryState::disabled, "550 5.2.1 Mailbox disabled, not accepting messages", "user_disabled"},
        {EntryState::deleted, "550 5.1.6 Mailbox no longer exists", "user_deleted"},
        {EntryState::hold, "HOLD Mailbox on hold", "user_hold"},
        {EntryState::overquota, "452 4.2.2 Mailbox full, try again later", "user_overquota"},
    };
    for (const Want& w : user_rows) {
        const std::string to = std::string(to_string(w.state)) + "@active.example";
        expect(rcpt(directory(), to), w, to);
    }
    // The domain's state comes first, except that a user whose own state refuses
    // (inactive, disabled, deleted) is refused with its own code in a domain on hold or
    // over quota: a refusal wins over a hold or a deferral. Hold and overquota still
    // refuse a local part that does not exist (nothing held or deferred for nobody).
    const Want domain_rows[] = {
        {EntryState::inactive, "450 4.2.1 Mail domain temporarily suspended, try again later", "domain_inactive"},
        {EntryState::disabled, "550 5.2.1 Mail domain disabled, not accepting messages", "domain_disabled"},
        {EntryState::deleted, "550 5.1.2 Mail domain no longer exists", "domain_deleted"},
        {EntryState::hold, "HOLD Mail domain on hold", "domain_hold"},
        {EntryState::overquota, "452 4.2.2 Mail domain over quota, try again later", "domain_overquota"},
    };
    for (const Want& w : domain_rows) {
        const std::string dn = std::string(to_string(w.state)) + ".example";
        const bool refuses_all = w.state != EntryState::hold && w.state != EntryState::overquota;
        for (EntryState us : kStates) {
            const std::string to = std::string(to_string(us)) + "@" + dn;
            const bool user_refuses = us == EntryState::inactive || us == EntryState::disabled ||
                                      us == EntryState::deleted;
            if (!refuses_all && user_refuses) {
                const Want* own = nullptr;
                for (const Want& u : user_rows)
                    if (u.state == us) own = &u;
                ASSERT_NE(own, nullptr);
                expect(rcpt(directory(), to), *own, to);
            } else {
                expect(rcpt(directory(), to), w, to);
            }
        }
        const PolicyDecision unknown = rcpt(directory(), "nobody@" + dn);
        if (refuses_all) expect(unknown, w, "nobody@" + dn);
        else expect(unknown, {w.state, "550 5.1.1 User unknown in virtual domain", "user_unknown"}, "nobody@" + dn);
        // postmaster that is not a user: the domain's state (RFC 5321 4.5.1: accepted when active)
        expect(rcpt(directory(), "postmaster@" + dn), w, "postmaster@" + dn);
    }
    expect(rcpt(directory(), "postmaster@active.example"), {EntryState::active, "DUNNO", ""}, "postmaster");
}

TEST(EntryStates, UserRefusalWinsOverDomainHoldOrOverquota) {
    // A domain on hold or over quota is no way around a deleted or disabled mailbox: the
    // mail is refused, not held for release or deferred.
    expect(rcpt(directory(), "deleted@hold.example"),
           {EntryState::deleted, "550 5.1.6 Mailbox no longer exists", "user_deleted"}, "deleted@hold");
    expect(rcpt(directory(), "disabled@hold.example"),
           {EntryState::disabled, "550 5.2.1 Mailbox disabled, not accepting messages", "user_disabled"},
           "disabled@hold");
    expect(rcpt(directory(), "deleted@overquota.example"),
           {EntryState::deleted, "550 5.1.6 Mailbox no longer exists", "user_deleted"}, "deleted@overquota");
    expect(rcpt(directory(), "inactive@hold.example"),
           {EntryState::inactive, "450 4.2.1 Mailbox temporarily disabled, try again later", "user_inactive"},
           "inactive@hold");
    EXPECT_NE(rcpt(directory(), "deleted@hold.example").kind, ActionKind::hold);
    // Users that accept or defer still get the domain's state first.
    expect(rcpt(directory(), "overquota@hold.example"), {EntryState::hold, "HOLD Mail domain on hold", "domain_hold"},
           "overquota@hold");
}

TEST(EntryStates, HoldDecision) {
    const PolicyDecision d = rcpt(directory(), "HOLD@active.example");
    EXPECT_EQ(d.kind, ActionKind::hold);
    EXPECT_EQ(to_string(d.kind), "hold");
    EXPECT_EQ(d.subject, Subject::recipient);
    EXPECT_EQ(d.code, 0u);
    EXPECT_EQ(d.address, "HOLD@active.example");
    EXPECT_EQ(d.smtp_text(), "Mailbox on hold");  // the milter's quarantine reason
}

TEST(EntryStates, SenderSide) {
    // An over-quota account may still send; a held one may not (450: it waits for release).
    const Want user_rows[] = {
        {EntryState::active, "DUNNO", ""},
        {EntryState::inactive, "450 4.7.1 Sender account <inactive@active.example> is temporarily disabled",
         "sender_inactive"},
        {EntryState::disabled, "550 5.7.1 Sender account <disabled@active.example> is disabled", "sender_disabled"},
        {EntryState::deleted, "550 5.7.1 Sender account <deleted@active.example> no longer exists", "sender_deleted"},
        {EntryState::hold, "450 4.7.1 Sender account <hold@active.example> is on hold", "sender_hold"},
        {EntryState::overquota, "DUNNO", ""},
    };
    for (const Want& w : user_rows) {
        const std::string from = std::string(to_string(w.state)) + "@active.example";
        expect(mail_from(directory(), from), w, from);
    }
    const Want domain_rows[] = {
        {EntryState::inactive, "450 4.7.1 Sender domain inactive.example is temporarily suspended",
         "sender_domain_inactive"},
        {EntryState::disabled, "550 5.7.1 Sender domain disabled.example is disabled", "sender_domain_disabled"},
        {EntryState::deleted, "550 5.7.1 Sender domain deleted.example no longer exists", "sender_domain_deleted"},
        {EntryState::hold, "450 4.7.1 Sender domain hold.example is on hold", "sender_domain_hold"},
    };
    for (const Want& w : domain_rows) {
        const std::string dn = std::string(to_string(w.state)) + ".example";
        for (EntryState us : kStates) {
            const std::string from = std::string(to_string(us)) + "@" + dn;
            expect(mail_from(directory(), from), w, from);
        }
    }
    // An over-quota domain sends; then its users' own states count.
    for (const Want& w : user_rows) {
        const std::string from = std::string(to_string(w.state)) + "@overquota.example";
        const PolicyDecision d = mail_from(directory(), from);
        EXPECT_EQ(d.reason, w.reason) << from;
        EXPECT_EQ(d.postfix_action().substr(0, 10), std::string(w.action).substr(0, 10)) << from;  // "450 4.7.1 "
    }
}

TEST(EntryStates, AccessDecision) {
    using K = AccessDecision::Kind;
    struct Row {
        const char* login;
        Service service;
        K want_kind;
        const char* want_reason;
        const char* want_text;
    };
    const Row rows[] = {
        {"active.active", Service::imap, K::allow, "", ""},
        {"ACTIVE@Active.Example", Service::imap, K::allow, "", ""},  // an address names its user too
        {"overquota.active", Service::imap, K::allow, "", ""},       // must be able to delete mail
        {"overquota.active", Service::submission, K::allow, "", ""},
        {"inactive.active", Service::imap, K::refuse, "user_inactive", "Account temporarily disabled"},
        {"disabled.active", Service::imap, K::refuse, "user_disabled", "Account disabled"},
        {"deleted.active", Service::imap, K::refuse, "user_deleted", "Account no longer exists"},
        {"hold.active", Service::imap, K::refuse, "user_hold", "Account on hold"},
        {"active.inactive", Service::imap, K::refuse, "domain_inactive", "Domain temporarily suspended"},
        {"active.disabled", Service::imap, K::refuse, "domain_disabled", "Domain disabled"},
        {"active.deleted", Service::imap, K::refuse, "domain_deleted", "Domain no longer exists"},
        {"active.hold", Service::imap, K::refuse, "domain_hold", "Domain on hold"},
        {"active.overquota", Service::imap, K::allow, "", ""},
        {"disabled.overquota", Service::imap, K::refuse, "user_disabled", "Account disabled"},
        {"deleted.hold", Service::imap, K::refuse, "domain_hold", "Domain on hold"},  // domain first
        {"active.active", Service::pop3, K::refuse, "service_not_allowed",
         "Service pop3 not enabled for domain active.example"},
        {"inactive.active", Service::pop3, K::refuse, "service_not_allowed",
         "Service pop3 not enabled for domain active.example"},  // services before the user's state
        {"active.inactive", Service::pop3, K::refuse, "domain_inactive", "Domain temporarily suspended"},
        {"ann@inbound.example", Service::submission, K::refuse, "service_not_allowed",
         "Service submission not enabled for domain inbound.example"},
        {"ann@inbound.example", Service::smtp, K::allow, "", ""},
        {"nobody", Service::imap, K::refuse, "user_unknown", "Unknown user"},
        {"", Service::imap, K::refuse, "user_unknown", "Unknown user"},
    };
    for (const Row& r : rows) {
        const AccessDecision d = decide_access(directory(), r.login, r.service);
        EXPECT_EQ(d.kind, r.want_kind) << r.login;
        EXPECT_EQ(d.allowed(), r.want_kind == K::allow) << r.login;
        EXPECT_EQ(d.reason, r.want_reason) << r.login;
        EXPECT_EQ(d.text, r.want_text) << r.login;
    }
    for (EntryState s : kStates)
        EXPECT_EQ(state_allows_access(s), s == EntryState::active || s == EntryState::overquota);
}

TEST(EntryStates, DirectoryNotLoadedIsATempfail) {
    const Directory never;  // what a daemon holds when its directory could not be loaded
    PolicyConfig cfg = vdomains();
    for (ProtocolState st : {ProtocolState::mail, ProtocolState::rcpt}) {
        PolicyInput in;
        in.state = st;
        in.sender = "alice@example.com";
        in.recipient = "bob@example.com";
        const PolicyDecision d = decide(in, cfg, never);
        EXPECT_EQ(d.kind, ActionKind::defer);
        EXPECT_EQ(d.postfix_action(), "451 4.3.0 Directory not available, try again later");
        EXPECT_EQ(d.reason, "directory_unavailable");
        EXPECT_EQ(d.smtp_text(), "Directory not available, try again later");
        // also for the null sender and an address that is not hosted: nothing is known
        in.sender = "";
        in.recipient = "x@remote.example";
        EXPECT_EQ(decide(in, cfg, never).reason, "directory_unavailable");
    }
    PolicyConfig deposit;
    deposit.deposit = true;
    PolicyInput in;
    in.state = ProtocolState::mail;
    in.sender = "alice@example.com";
    EXPECT_EQ(decide(in, deposit, never).code, 451);
    EXPECT_EQ(decide(in, deposit, never).policy, PolicyId::deposit);
    // Policies that do not read the directory answer as before.
    PolicyConfig inject;
    inject.inject = true;
    EXPECT_EQ(decide(in, inject, never).kind, ActionKind::dunno);
    in.state = ProtocolState::data;
    EXPECT_EQ(decide(in, inject, never).kind, ActionKind::inject);
    in.state = ProtocolState::data;
    EXPECT_EQ(decide(in, cfg, never).kind, ActionKind::dunno);
    // An empty directory that was loaded: nothing is hosted, so nothing to say.
    DirectoryBuilder b;
    const Directory empty = b.build();
    in.state = ProtocolState::rcpt;
    in.recipient = "bob@example.com";
    EXPECT_EQ(decide(in, cfg, empty).kind, ActionKind::dunno);
    const AccessDecision a = decide_access(never, "alice", Service::imap);
    EXPECT_EQ(a.kind, AccessDecision::Kind::tempfail);
    EXPECT_EQ(a.reason, "directory_unavailable");
    EXPECT_EQ(decide_access(empty, "alice", Service::imap).reason, "user_unknown");
}
