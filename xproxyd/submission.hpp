// submission.hpp: the submission mode (a listener with mode=submission): what its sessions
// share and the decisions they make from the directory.
//
// A mail client connects (587 with STARTTLS, 465 with tls=implicit), authenticates with
// AUTH PLAIN or LOGIN over TLS, and its mail goes to the user's home MTA with the client
// announced (XPROXY, XCLIENT LOGIN= ADDR=, or PROXY v2 with the login TLV):
//
//   - SubmissionServices (one per xproxyd): the directory (--directory, reloaded at SIGHUP:
//     a file that does not load keeps the previous directory), the credential verifier
//     (Dovecot's auth service, --dovecot-auth), the failed-login throttle and the TLS
//     client contexts towards home MTAs.
//   - home_route(): the user the login is (Directory::find_by_login), its home MTA (the
//     user's home=, else its domain's, else the listener's downstream), and the
//     DownstreamConfig that reaches it, built from the directory's mta line over the
//     listener's downstream (timeouts, HELO name, HMAC key and tls-ca come from there).
//     A home= naming no mta line is no route: the user's MAIL gets 451 4.3.0 and nothing is
//     sent elsewhere.
//   - sender_refusal(): the login must be one user of the directory that may use the
//     submission service (decide_access, xproxy/policy/access_decision.hpp: domain and
//     user active or over quota, the domain with the submission service; a login unknown
//     to the directory, or listed by several users, sends nothing, not even with the null
//     sender); MAIL FROM must then be the null sender (delivery reports) or an address
//     (primary or alias) of a user the login may send as (Directory::login_may_send_as:
//     the user itself, or a user whose login= lists it) that decide_access lets use
//     submission too. Else 553 5.7.1; 451 4.3.0 while no directory is loaded.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <xproxy/ldap/directory_backend.hpp>
#include <xproxy/policy/directory.hpp>

#include "auth_throttle.hpp"
#include "config.hpp"
#include "conn.hpp"
#include "dovecot_auth.hpp"

namespace xproxy::xproxyd {

class SubmissionServices {
public:
    // Loads the directory (the error names the file and line); TLS contexts are made here.
    static Expected<std::unique_ptr<SubmissionServices>> create(const Config& cfg);

    // SIGHUP: a new directory (true), or the previous one kept (false, the reason logged).
    // An LDAP directory: nothing to reload (true).
    bool reload();
    std::shared_ptr<const Directory> directory() const { return dirs_->get(); }
    DirectoryBackend& directory_backend() { return *dirs_; }
    // The verifier of a family of credentials: passwords go to Dovecot; none for bearer
    // tokens yet (a token verifier would be returned here).
    CredentialVerifier* verifier(sasl::Credentials::Kind kind) {
        return kind == sasl::Credentials::Kind::password ? passwords_.get() : nullptr;
    }
    AuthThrottle& throttle() { return throttle_; }
    // Towards a home MTA with tls=verify (chain and name checked) or may/encrypt.
    asio::ssl::context* home_tls(TlsMode m) const {
        return m == TlsMode::none ? nullptr : m == TlsMode::verify ? verify_tls_.get() : plain_tls_.get();
    }
    const SubmissionConfig& config() const { return cfg_.submission; }

private:
    explicit SubmissionServices(const Config& cfg);
    const Config& cfg_;
    std::unique_ptr<DirectoryBackend> dirs_;
    std::unique_ptr<CredentialVerifier> passwords_;
    AuthThrottle throttle_;
    std::unique_ptr<asio::ssl::context> verify_tls_, plain_tls_;
};

// Where an authenticated user's mail goes.
struct HomeRoute {
    std::string name;              // the home MTA's name; empty: the listener's downstream
    DownstreamConfig config;       // when name is set and error is empty
    std::string error;             // no route (a home= naming no mta line, a bad combination)
    std::optional<UserInfo> user;  // the directory's user for the login, if any
};
HomeRoute home_route(const Directory& dir, std::string_view login, const DownstreamConfig& default_home);

// The reply refusing MAIL FROM:<sender> for this login, or nullopt when it may be used.
std::optional<std::string> sender_refusal(const Directory& dir, std::string_view login, std::string_view sender);

}  // namespace xproxy::xproxyd
