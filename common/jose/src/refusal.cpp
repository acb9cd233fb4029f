// refusal.cpp: see refusal.hpp.
#include <xproxy/jose/refusal.hpp>

#include <string>

#include <xproxy/base/invariant.hpp>

namespace xproxy::jose {

std::string_view reason_name(Refusal r) {
    switch (r) {
        case Refusal::malformed: return "malformed";
        case Refusal::alg_not_allowed: return "alg_not_allowed";
        case Refusal::unknown_kid: return "unknown_kid";
        case Refusal::bad_signature: return "bad_signature";
        case Refusal::expired: return "expired";
        case Refusal::not_yet_valid: return "not_yet_valid";
        case Refusal::wrong_issuer: return "wrong_issuer";
        case Refusal::wrong_audience: return "wrong_audience";
        case Refusal::unverified_email: return "unverified_email";
        case Refusal::no_identity: return "no_identity";
        case Refusal::wrong_message: return "wrong_message";
    }
    XPROXY_UNREACHABLE();
}

Failure refuse(Refusal r, std::string_view detail, Refusal* out) {
    if (out != nullptr) *out = r;
    std::string m(reason_name(r));
    m += ": ";
    m += detail;
    return Failure{std::move(m)};
}

}  // namespace xproxy::jose
