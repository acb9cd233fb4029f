// refusal.hpp: why a token or a signed object was refused, as a word the deposit daemon
// can log, count (one counter per reason) and act on (only unknown_kid may trigger a
// refresh of the identity provider's keys).
//
// Promises: every refusal of verify_jws(), validate_jwt() and verify_receipt() sets
// exactly one of these reasons when the caller asks for it; the Failure message begins
// with reason_name() and a colon.
#pragma once

#include <string_view>

#include <xproxy/base/result.hpp>

namespace xproxy::jose {

enum class Refusal {
    malformed,         // not a compact JWS / JWT we can read (structure, JSON, sizes, crit, typ)
    alg_not_allowed,   // none, HS*, or an algorithm other than the one the key is bound to
    unknown_kid,       // no key of the set matches (the only reason to refresh the set)
    bad_signature,     // the signature does not verify
    expired,           // exp (plus the skew) has passed
    not_yet_valid,     // nbf or iat (minus the skew) is in the future
    wrong_issuer,      // iss is not the configured issuer
    wrong_audience,    // aud does not name the configured audience
    unverified_email,  // the identity is an email address and email_verified is not true
    no_identity,       // the identity claim is missing, not a string, empty or unusable
    wrong_message,     // a receipt: the message's SHA-256 is not the one signed
};

std::string_view reason_name(Refusal r);

// Failure{"REASON: detail"}, and *out = r when out is given.
Failure refuse(Refusal r, std::string_view detail, Refusal* out);

}  // namespace xproxy::jose
