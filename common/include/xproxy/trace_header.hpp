// trace_header.hpp: the signed trace header X-Original-Source (doc/wire-formats.md).
//
//   X-Original-Source: v=1; ip=192.0.2.66; port=40123; helo=client.example;
//       name=mail.example.org; proto=ESMTPS; tls=TLSv1.3/TLS_AES_256_GCM_SHA384/256;
//       login=alice@example.org; sid=4XyZ1; by=gw1.example.net; t=1790000000; b=mid;
//       kid=k1; sig=BASE64(HMAC-SHA256)
//
// Values are xtext (RFC 3461) with ';' also written as +3B, so ';', '=', white space and
// 8-bit bytes cannot break the field. The signature covers a canonical form (the tags in fixed order with white space
// removed, then a binding line), so refolding and added or removed spaces do not matter.
// The binding ties a header to one message: b=mid binds the Message-ID and the envelope
// sender (the milter's choice; a copy into any other message fails); b=env binds the
// envelope sender only (the policy daemon's choice: at DATA time Postfix has not seen the
// Message-ID yet); the t= window then bounds replay. Verification never throws and
// compares in constant time.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "xproxy/keyring.hpp"
#include "xproxy/source_info.hpp"

namespace xproxy::trace {

inline constexpr std::string_view kFieldName = "X-Original-Source";

enum class BindingKind { message_id, envelope };

struct MessageBinding {
    std::string sender;      // envelope sender (MAIL FROM), "" for the null sender
    std::string message_id;  // Message-ID header value, as in the message
};

// The field value (without "X-Original-Source: "), or "" when the ring has no key.
std::string sign(const SourceInfo& info, std::string_view by, std::int64_t time, BindingKind kind,
                 const MessageBinding& binding, const KeyRing& keys);

// "X-Original-Source: value" folded at white space so that lines stay under 78 columns.
std::string format_field(std::string_view value);

enum class Verdict { ok, malformed, unsupported_version, unknown_key, bad_signature, expired, future };
const char* to_string(Verdict v);

struct VerifyResult {
    Verdict verdict = Verdict::malformed;
    std::string reason;     // for logs (no secret, no raw input)
    SourceInfo source;      // valid when verdict == ok
    std::string by;
    std::string key_id;
    BindingKind binding = BindingKind::message_id;
};

// Verifies a field value (or a whole "X-Original-Source: ..." field, folded or not).
// now/max_age in seconds; a header up to max_skew seconds in the future is accepted.
VerifyResult verify(std::string_view field, const MessageBinding& binding, const KeyRing& keys, std::int64_t now,
                    std::int64_t max_age, std::int64_t max_skew = 300);

}  // namespace xproxy::trace
