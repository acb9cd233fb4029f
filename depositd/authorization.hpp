// authorization.hpp: whether an identity may deposit a message with this envelope and
// this From: address (doc/deposit.md, "Authorization").
//
//   sender   the envelope sender, the From: address and each address of the Sender:,
//            Resent-From: and Resent-Sender: fields must each be the identity itself
//            (compared in canonical form, without regard to ASCII case), or, when the
//            identity is a directory user (Directory::find_by_login), an address
//            login_may_send_as() allows it; else 403 sender_not_allowed. A sender in a
//            hosted domain must then pass the policy engine's deposit and vdomains checks
//            of an authenticated submission (account and domain state, the domain's
//            submission service, the sender exists); a refusal is 403 login_refused.
//   recipients  an identity that is an active hosted user (domain and account active or
//            over quota, submission allowed) may relay, as on submission; for anyone else
//            each recipient must be in a hosted domain (else 403 recipient_not_hosted)
//            and pass the engine's vdomains recipient check (else 403 recipient_refused).
//   A directory that is not loaded, or an engine answer "try again later", is 503
//   directory_unavailable / policy_deferred: nothing is refused for good on a guess.
//
// Promises: a pure function of its arguments (no I/O, no clock); never throws (but
// std::bad_alloc); the first failure decides, senders before recipients in order.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <xproxy/policy/directory.hpp>

namespace xproxy::depositd {

struct Authorization {
    int status = 200;        // 200 allowed, 403 refused, 503 try later
    std::string reason;      // doc/deposit.md's reason word; "" when allowed
    std::string detail;      // for the client and the log (addresses are the client's own)
    std::string address;     // the address concerned, canonical ("" when none)
    bool may_relay = false;  // the identity is an active hosted user
    bool allowed() const { return status == 200; }
};

struct DepositEnvelope {
    std::string identity;                 // the verified identity (a token's claim or a certificate's user)
    std::string sender;                   // envelope sender, canonical
    std::string from;                     // the From: address, canonical
    std::vector<std::string> recipients;  // canonical
    // Sender:, Resent-From:, Resent-Sender: addresses (field name, canonical address):
    // each must pass the sender rule as From: does.
    std::vector<std::pair<std::string, std::string>> other_senders;
};

Authorization authorize(const DepositEnvelope& env, const Directory& directory);

// The one form of a verified identity that every table (rate limit, idempotency,
// receipts) and every comparison uses: a plain address local@domain, ASCII letters
// lower-cased in both parts (the directory compares local parts and domains without
// regard to case, doc/directory.md). nullopt when the identity is not a plain address:
// a local part other than a dot-atom (RFC 5322 3.2.3; quoted strings refused), a domain
// other than dot-separated labels of letters, digits, '-' and bytes >= 0x80, a source
// route, angle brackets, white space, control bytes, a trailing root dot, or over 320
// bytes.
std::optional<std::string> canonical_identity(std::string_view identity);

}  // namespace xproxy::depositd
