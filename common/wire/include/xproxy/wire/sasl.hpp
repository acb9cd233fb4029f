// sasl.hpp: the server side of the SASL mechanisms of SMTP AUTH (RFC 4954), as small
// state machines without I/O: PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login).
//
// The session reads the AUTH command and the client's response lines; a Mechanism turns
// them into challenges to send ("334 " + challenge_b64) and, at the end, the Credentials
// to check. It decides nothing about them: a CredentialVerifier does (xproxyd's
// DovecotAuth for passwords).
//
//   auto m = sasl::make_mechanism(mech_word);         // nullptr: 504 5.5.4
//   Step s = m->start(initial_response);              // AUTH's second word, if any
//   while (s.kind == Step::challenge) s = m->next(read_line());
//   done -> verify(s.credentials); cancelled ("*") -> 501 5.7.0;
//   bad_encoding -> 501 5.5.2; bad_credentials -> 535 5.7.8 (or 501)
//
// Promises: responses are strict base64 (xproxy/base/base64.hpp) or "*"; "=" as the
// initial response means an empty one (RFC 4954 section 4). Every byte decoded from the
// client that is part of a password lives in SecretBytes only (decoded there, split
// there, copied to Credentials::secret, wiped when they go); challenges and reasons
// never hold it. A reason says what was wrong for the log (static text, no client byte).
// A decoded authzid, authcid (user name) or password holds no NUL, CR or LF; each is at
// most kMaxField bytes; authcid and password are non-empty. Other bytes, non-UTF-8
// included, are passed on: the verifier decides. Any step but `challenge` ends the
// exchange: calling next() after it, or start() twice, is a bug (XPROXY_INVARIANT).
//
// Tokens (OAUTHBEARER, RFC 7628; XOAUTH2): a mechanism of that family is another
// Mechanism whose kind() is Credentials::Kind::bearer_token. It parses the GS2 header and
// the "auth=Bearer <token>" key-value list, returns done with authzid (the a= of the GS2
// header), authcid (the user= of XOAUTH2, or authzid) and the token as the secret; on a
// failed check the session sends the error challenge RFC 7628 section 3.2.2 describes
// and expects the client's dummy response (next() gets it, answers bad_credentials).
// The session hands credentials of that kind to a token verifier (a CredentialVerifier
// of its own) instead of Dovecot, and advertises the mechanism only when one is
// configured: mechanism_names() below lists what this file implements.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <xproxy/base/secret_bytes.hpp>

namespace xproxy::sasl {

// The most bytes of an authzid, authcid or password (RFC 4616 section 2 says 255 octets).
inline constexpr std::size_t kMaxField = 255;

struct Credentials {
    enum class Kind : std::uint8_t { password, bearer_token } kind = Kind::password;
    std::string authzid;  // empty when the client asked for none
    std::string authcid;  // the user name the client authenticates as
    SecretBytes secret;   // the password (or token); wipes itself
};

struct Step {
    enum Kind : std::uint8_t {
        challenge,        // send "334 " + challenge_b64, read the client's next line
        done,             // credentials holds what to verify
        cancelled,        // the client answered "*"
        bad_encoding,     // a response that is not base64
        bad_credentials,  // decoded, but not what the mechanism accepts
    } kind = challenge;
    std::string challenge_b64;  // challenge: the base64 text after "334 " (may be empty)
    Credentials credentials;    // done
    std::string reason;         // every kind but challenge and done: for the log
};

class Mechanism {
public:
    virtual ~Mechanism() = default;
    // The mechanism's name, upper case ("PLAIN").
    virtual std::string_view name() const = 0;
    // What the credentials it produces hold.
    virtual Credentials::Kind kind() const = 0;
    // The AUTH command: its initial response (base64, or "=" for an empty one), if any.
    virtual Step start(std::optional<std::string_view> initial_response_b64) = 0;
    // The client's line after a challenge, without CRLF.
    virtual Step next(std::string_view client_line) = 0;
};

// A mechanism by name, in any case; nullptr when it is not one of mechanism_names().
std::unique_ptr<Mechanism> make_mechanism(std::string_view name);

// The mechanisms make_mechanism() knows, as the EHLO AUTH keyword lists them.
inline constexpr std::string_view kMechanismNames = "PLAIN LOGIN";
constexpr std::string_view mechanism_names() { return kMechanismNames; }

}  // namespace xproxy::sasl
