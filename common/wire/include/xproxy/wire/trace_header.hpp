// trace_header.hpp: the signed trace header X-Original-Source (doc/wire-formats.md).
//
//   X-Original-Source: v=1; ip=192.0.2.66; port=40123; helo=client.example;
//       name=mail.example.org; proto=ESMTPSA; tls=TLSv1.3/TLS_AES_256_GCM_SHA384/256;
//       login=alice@example.org; sid=4XyZ1AB2C3; by=gw1.example.net; t=1790000000;
//       b=mid; bh=<base64url SHA-256 of the binding>; kid=k2026; sig=<base64url HMAC>
//
// Text values are xtext (RFC 3461) with ';' also written as "+3B" (and, inside tls=, '/'
// as "+2F"), so no byte of a HELO, login or PTR name can break the field. The signature
// is HMAC-SHA256 over a canonical serialization of the parsed tags (fixed order, sig
// excluded), so refolding and white space added or removed anywhere do not matter, while
// any change of a value does. The binding ties a header to one message: b=mid covers the
// Message-ID and the envelope sender (what a milter has at end of message), b=env the
// envelope sender only (all a policy daemon has before DATA); bh= carries the hash of the
// bound values so that a header copied into another message reports wrong_binding. The
// sender is bound in its canonical form (xproxy/mail_address.hpp), so a hop that re-quotes
// it or drops a source route does not break the binding.
//
// Promises: verify_trace_header() never throws (but std::bad_alloc) and never reads past
// its input; every check is strict and the first failure decides; the signature is
// compared in constant time (CRYPTO_memcmp); reasons are static-ish text with no input
// bytes but a syntactically valid key id. Decoded values are arbitrary bytes: escape them
// (xproxy/escape.hpp) before logging.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <xproxy/base/keyring.hpp>
#include <xproxy/base/source_info.hpp>

namespace xproxy {

inline constexpr std::string_view kTraceFieldName = "X-Original-Source";
inline constexpr std::size_t kTraceMaxInput = 8192;   // bytes of a raw field or value
inline constexpr std::size_t kTraceMaxText = 255;     // decoded bytes of helo, name, proto, login, sid, by
inline constexpr std::int64_t kTraceMaxFuture = 300;  // default clock skew allowance, seconds

// What the signature binds besides the tags (the b= tag).
enum class TraceBinding : std::uint8_t {
    message_id,  // b=mid: Message-ID field value and envelope sender
    envelope,    // b=env: envelope sender only
};

// The message a header is (or claims to be) attached to. The signer uses `kind`; a
// verifier fills both values it knows and the header's b= decides which are compared.
struct MessageBinding {
    TraceBinding kind = TraceBinding::message_id;
    std::string message_id;  // the Message-ID field value; folding white space is ignored
    std::string sender;      // envelope sender as any hop spells it; bound in canonical_address() form
};

enum class TraceVerdict : std::uint8_t {
    ok,
    malformed,      // not a v=1 header of this format (syntax, missing or unknown tag, bad value)
    unknown_key,    // kid= names no key of the ring
    bad_signature,  // the tags were changed or signed with another secret
    wrong_binding,  // authentic, but made for another message (Message-ID / sender differ)
    expired,        // authentic, but t= is older than max_age
    future,         // authentic, but t= is more than max_future ahead of now
};
const char* to_string(TraceVerdict v);
const char* to_string(TraceBinding b);  // "mid", "env"

struct TraceVerifyResult {
    TraceVerdict verdict = TraceVerdict::malformed;
    std::string reason;                               // why, for logs; no secret and no raw input bytes
    SourceInfo source;                                // the decoded source; complete when ok (time = t=)
    std::string by;                                   // by= (decoded) once the tags parsed
    std::string key_id;                               // kid= once the tags parsed
    TraceBinding binding = TraceBinding::message_id;  // b= once the tags parsed
    std::int64_t time = 0;                            // t= once the tags parsed

    bool ok() const { return verdict == TraceVerdict::ok; }
};

// The field VALUE (without "X-Original-Source: "), signed with the ring's signing key at
// unix time t; "" when the ring is empty, t is outside 0..9999999999999 or OpenSSL fails.
// Text values longer than their cap (kTraceMaxText; tls parts 32/64/192) are cut to it;
// empty values are omitted.
std::string sign_trace_header(const SourceInfo& info, const std::string& by, std::int64_t t,
                              const MessageBinding& binding, const KeyRing& keys);

// "X-Original-Source: " + value, folded before a tag wherever a line would pass 78
// columns; continuation lines start with a TAB; lines are joined with `eol` (use "\n" for
// libmilter and no folding at all - the bare value - for a Postfix PREPEND action).
// A single tag longer than a line stays whole (values are capped below 998 bytes).
std::string format_field(std::string_view value, std::string_view eol = "\r\n");

// Verifies a field value, or a whole "X-Original-Source: ..." field, folded or not.
// `now` and `max_age` in seconds: t= older than now - max_age is expired, t= later than
// now + max_future is future. Negative max_age / max_future count as 0.
TraceVerifyResult verify_trace_header(std::string_view raw_value, const MessageBinding& binding, const KeyRing& keys,
                                      std::int64_t now, std::int64_t max_age,
                                      std::int64_t max_future = kTraceMaxFuture);

}  // namespace xproxy
