// submission.cpp: the submission mode's shared services and directory decisions; see
// submission.hpp.
#include "submission.hpp"

#include <xproxy/base/escape.hpp>
#include <xproxy/base/file_loader.hpp>
#include <xproxy/daemon/log.hpp>
#include <xproxy/daemon/tls.hpp>
#include <xproxy/policy/access_decision.hpp>
#include <xproxy/policy/directory_file.hpp>

namespace xproxy::xproxyd {

namespace {

ThrottleLimits limits_of(const SubmissionConfig& s) {
    ThrottleLimits l;
    l.address_failures = s.address_failures;
    l.user_failures = s.user_failures;
    l.window = s.failure_window;
    l.lockout = s.lockout;
    l.delay = s.failure_delay;
    l.max_delay = s.max_delay;
    l.max_entries = s.table_size;
    return l;
}

std::optional<Encoding> encoding_of(MtaEncoding e) {
    switch (e) {
        case MtaEncoding::automatic: return Encoding::automatic;
        case MtaEncoding::xproxy: return Encoding::xproxy;
        case MtaEncoding::xclient: return Encoding::xclient;
        case MtaEncoding::proxy_v2: return Encoding::proxy_v2;
    }
    return std::nullopt;
}

std::optional<TlsMode> tls_of(MtaTls t) {
    switch (t) {
        case MtaTls::unset: return std::nullopt;
        case MtaTls::none: return TlsMode::none;
        case MtaTls::may: return TlsMode::may;
        case MtaTls::encrypt: return TlsMode::encrypt;
        case MtaTls::verify: return TlsMode::verify;
    }
    return std::nullopt;
}

}  // namespace

SubmissionServices::SubmissionServices(const Config& cfg) : cfg_(cfg), throttle_(limits_of(cfg.submission)) {}

Expected<std::unique_ptr<SubmissionServices>> SubmissionServices::create(const Config& cfg) {
    std::unique_ptr<SubmissionServices> s(new SubmissionServices(cfg));
    auto dir = DirectoryBackend::open(
        cfg.submission.directory, cfg.submission.ldap_config, [](LdapLogLevel level, const std::string& line) {
            log::write(static_cast<log::Level>(level), "event=ldap message=\"" + escape_value(line, 0) + "\"");
        });
    if (!dir) return Failure{"directory: " + dir.error()};
    s->dirs_ = std::move(*dir);
    std::string err;
    auto target = DovecotAuth::parse_target(cfg.submission.dovecot_auth, &err);
    if (!target) return Failure{"dovecot-auth: " + err};
    s->passwords_ = std::make_unique<DovecotAuth>(std::move(*target), cfg.submission.auth_timeout);
    try {
        s->verify_tls_ = daemon::tls_client_context(true, cfg.tls_ca);
        s->plain_tls_ = daemon::tls_client_context(false, std::string());
    } catch (const std::exception& e) {
        return Failure{std::string("TLS towards home MTAs: ") + e.what()};
    }
    return s;
}

bool SubmissionServices::reload() {
    if (dirs_->is_ldap()) return true;  // changes arrive by themselves
    if (auto ok = dirs_->reload(); !ok) {
        log::error("event=directory_reload status=failed detail=\"%s\"",
                   escape_value("directory: " + ok.error(), 512).c_str());
        return false;
    }
    const auto dir = dirs_->get();
    log::info("event=directory_reload status=ok domains=%zu users=%zu mtas=%zu", dir->domain_count(), dir->user_count(),
              dir->mta_count());
    return true;
}

HomeRoute home_route(const Directory& dir, std::string_view login, const DownstreamConfig& default_home) {
    HomeRoute r;
    r.user = dir.find_by_login(login);
    const std::string_view name = r.user ? dir.home_of(*r.user) : std::string_view();
    if (name.empty()) return r;  // the listener's downstream
    r.name = std::string(name);
    const auto mta = dir.find_mta(name);
    if (!mta) {
        r.error = "home MTA " + r.name + " is not defined in the directory (no mta line)";
        return r;
    }
    DownstreamConfig c = default_home;
    // Parked connections are found by this name: it changes with the destinations.
    c.name = "home:" + r.name + "@";
    c.destinations.clear();
    for (const MtaEndpoint& e : mta->destinations) {
        Destination d;
        d.host = e.address.to_string();
        d.port = e.port;
        c.name += (c.destinations.empty() ? "" : ",") + d.to_string();
        c.destinations.push_back(std::move(d));
    }
    c.encoding = encoding_of(mta->encoding).value_or(Encoding::automatic);
    const auto tls = tls_of(mta->tls);
    if (tls) c.tls = *tls;
    c.tls_name = std::string(mta->tls_name);
    // What the listener's downstream says of its own encoding and TLS does not apply here.
    if (c.encoding != Encoding::proxy_v2) {
        c.hmac_key_file.clear();
        c.hmac_key.reset();
        c.proxy_unsigned = false;
    }
    c.tls_ca.clear();  // home MTAs are verified against --tls-ca, else the system's store
    if (auto ok = check_home_downstream(c, tls.has_value()); !ok) {
        r.error = "home MTA " + r.name + ": " + ok.error();
        return r;
    }
    r.config = std::move(c);
    return r;
}

namespace {

// The 553 (or, for a directory that could not be read, 451) for an access refusal of
// `user`; `prefix` is "Error: " for the login, "<SENDER>: Sender address rejected: " for
// the sender; `account` names the user ("account LOGIN", "account").
std::string access_reply(const AccessDecision& d, const std::string& prefix, const std::string& account,
                         const Directory& dir, const UserInfo& user) {
    if (d.kind == AccessDecision::Kind::tempfail)
        return "451 4.3.0 " + prefix + "directory not available, try again later";
    const std::string_view r = d.reason;
    if (r.starts_with("user_")) {
        const EntryState s = user.state;
        return "553 5.7.1 " + prefix + account + " is " +
               (s == EntryState::hold ? std::string("on hold") : std::string(to_string(s)));
    }
    return "553 5.7.1 " + prefix + "domain " + std::string(dir.domain_at(user.domain_id).name) +
           " may not send mail here";
}

}  // namespace

std::optional<std::string> sender_refusal(const Directory& dir, std::string_view login, std::string_view sender) {
    const std::string who = escape_value(login, 256);
    if (!dir.loaded()) return "451 4.3.0 Error: directory not available, try again later";
    // The login itself must be one user of the directory that may use submission
    // (decide_access: domain and user active or over quota, the domain with the
    // submission service): the null sender and delegation do not get around that.
    const auto me = dir.find_by_login(login);
    if (!me) return "553 5.7.1 Error: login " + who + " is not a user of this service (or names several)";
    if (const AccessDecision d = decide_access(dir, *me, Service::submission); !d.allowed())
        return access_reply(d, "Error: ", "account " + who, dir, *me);
    if (sender.empty()) return std::nullopt;  // the null sender: delivery reports
    const std::string shown = escape_value(sender, 256);
    const std::string not_owned = "553 5.7.1 <" + shown + ">: Sender address rejected: not owned by user " + who;
    const auto at = sender.rfind('@');
    if (at == std::string_view::npos || at == 0 || at + 1 == sender.size()) return not_owned;
    const auto found = dir.lookup(sender.substr(0, at), sender.substr(at + 1));
    if (!found.domain || !found.user || !dir.login_may_send_as(login, *found.user)) return not_owned;
    if (const AccessDecision d = decide_access(dir, *found.user, Service::submission); !d.allowed())
        return access_reply(d, "<" + shown + ">: Sender address rejected: ", "account", dir, *found.user);
    return std::nullopt;
}

}  // namespace xproxy::xproxyd
