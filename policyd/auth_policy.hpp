// auth_policy.hpp: Dovecot's authentication policy service (auth_policy_server_url), served
// by xproxy-policyd on --auth-policy-listen from the same directory as its Postfix
// policies. doc/dovecot-auth-policy.md says how Dovecot is configured for it.
//
// Promises:
//   - a request must carry the API key of --auth-policy-secret-file, as "X-API-Key: KEY"
//     or "Authorization: Bearer KEY" (Dovecot's auth_policy_server_api_header), compared
//     in constant time; otherwise 401, logged (event=auth_policy_unauthorized). Only a
//     unix-socket listener may run without a key (the socket's mode and group decide);
//   - only POST ?command=allow|report with one JSON object is answered (405, 400
//     otherwise, logged; Dovecot then applies auth_policy_reject_on_fail);
//   - command=allow: the login is looked up in the directory snapshot of this request and
//     decided by decide_access() (xproxy/policy/access_decision.hpp) for the service
//     Dovecot names; a refusal (or a tempfail: the protocol has no other) is
//     {"status":-1,"msg":TEXT} and is logged with the login, remote, service and reason
//     (event=auth_policy_refuse); a protocol that maps to no service is refused;
//   - command=report: {"status":0}, logged (event=auth_policy_report); no per-user state;
//   - every value from the request is escaped before it reaches a log line.
#pragma once

#include <atomic>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "state.hpp"
#include <xproxy/base/result.hpp>
#include <xproxy/daemon/http_listener.hpp>
#include <xproxy/daemon/listen.hpp>
#include <xproxy/policy/directory.hpp>

namespace xproxy::policyd {

// Bounds of the auth policy listener: Dovecot's requests are a few hundred bytes; it keeps
// up to 100 connections open (http_client_max_parallel_connections) for 10 s idle.
// `allow` (--allow-peers) filters the peers of a TCP listener on an address that is not a
// loopback address (auth_policy_open_address); unset otherwise.
http::Limits auth_policy_limits(const daemon::ListenSpec* spec = nullptr, const CidrSet* allow = nullptr);

// Whether spec is a TCP listener on an address other than a loopback one (127.0.0.0/8,
// ::1): 0.0.0.0, ::, or an address of a network interface, reachable from other hosts.
bool auth_policy_open_address(const daemon::ListenSpec& spec);

// The services a Dovecot protocol name stands for: `primary`, and over TLS also
// `over_tls` (a domain that lists imaps or pop3s but not imap or pop3 takes those logins
// over TLS only). nullopt for a protocol with no service (the login is refused).
struct ServiceChoice {
    Service primary = Service::imap;
    std::optional<Service> over_tls;
};
std::optional<ServiceChoice> service_for_protocol(std::string_view protocol, bool tls);

// The start-up checks of --auth-policy-listen and its options (also for --check-config):
// the spec parses and is inet:, inet6: or unix:; a TCP listener has a key file; the key
// is at least 16 printable bytes without spaces in a file of mode 0640 or tighter; a TCP
// listener on an address that is not a loopback address needs --allow-peers (its peers
// are checked against it, as the main listener's).
// Fills the key into `key` (when a file is named).
Expected<daemon::ListenSpec> check_auth_policy_options(const Options& o, SecretBytes* key);

// After --check-config, before privileges are dropped: the listener of
// --auth-policy-listen, a unix socket created with `unix_mode` (--socket-mode) and given to
// --user and --auth-policy-socket-group.
Expected<UniqueFd> open_auth_policy_listener(const Options& o, unsigned unix_mode);

class AuthPolicyService {
public:
    explicit AuthPolicyService(const StateHolder& states) : states_(states) {}
    http::Response handle(const http::Request& req, std::string_view peer) const;

private:
    const StateHolder& states_;
    // Requests refused for their key in the current burst: the first is logged
    // (event=auth_policy_unauthorized), the others counted until a request with the key
    // comes (event=auth_policy_unauthorized_end refused=N).
    mutable std::atomic<std::size_t> unauthorized_{0};
};

}  // namespace xproxy::policyd
