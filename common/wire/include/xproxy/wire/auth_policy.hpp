// auth_policy.hpp: Dovecot's authentication policy protocol (auth_policy_server_url),
// the server side; doc/wire-formats.md, "Dovecot auth policy". No I/O.
//
// Dovecot POSTs a JSON object to URL?command=allow (before and/or after it checked the
// password) and URL?command=report (the outcome). The object holds the attributes of
// auth_policy_request_attributes, every one a string ("login":"alice@example.com"; a key
// with '/' makes nested objects), plus "tls":true|false, and for report also
// "success":true|false and "policy_reject":true|false. The answer is
// {"status":N,"msg":"TEXT"}: N < 0 refuses the login, 0 allows it, N > 0 (before the
// password check only) delays it N seconds.
//
// Promises: decode_auth_policy_request() accepts exactly one JSON object (RFC 8259, UTF-8,
// what nlohmann-json's SAX parser accepts; no DOM is built), nested at most
// kMaxAuthPolicyDepth levels, and takes from its top level only the members it knows:
// "login", "master", "protocol", "remote", "session_id" (strings of at most
// kMaxAuthPolicyField bytes), "tls", "success", "policy_reject" (booleans). Every other
// member, of any type, is skipped. A known member of the wrong type, twice, or too long
// refuses the whole request, as does anything that is not one object. Failures are static
// text, safe to log. Nothing here throws on bad input (only std::bad_alloc) or reads past it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <xproxy/base/result.hpp>

namespace xproxy::dovecot {

inline constexpr std::size_t kMaxAuthPolicyDepth = 16;
inline constexpr std::size_t kMaxAuthPolicyField = 1024;

enum class PolicyCommand { allow, report };

// The command of a request target ("/?command=allow", "/x?a=b&command=report"): the one
// command= parameter of the query, "allow" or "report".
Expected<PolicyCommand> parse_policy_command(std::string_view target);

struct AuthPolicyRequest {
    std::string login;     // the user logging in (requested_username; for a Dovecot master-user
                           // login "alice*admin", the user opened: alice)
    std::string master;    // that master user (master_user: admin); empty for other logins
    std::string protocol;  // Dovecot's service name: imap, pop3, submission, lmtp ...
    std::string remote;    // the client's address (rip), as Dovecot wrote it
    std::string session_id;
    bool tls = false;                              // the client's connection is TLS-protected
    std::optional<bool> success;                   // report: the login succeeded
    std::optional<bool> policy_reject;             // report: a policy answer refused it
    bool has_login = false, has_protocol = false;  // present in the request (maybe empty)
};

Expected<AuthPolicyRequest> decode_auth_policy_request(std::string_view json);

// {"status":STATUS,"msg":"MSG"} (MSG JSON-escaped; bytes that are not UTF-8 replaced).
std::string encode_auth_policy_reply(int status, std::string_view msg);

}  // namespace xproxy::dovecot
