// smtp_reply.hpp: the client side's view of SMTP replies (RFC 5321 4.2), as pure functions.
//
// decode_reply() is an incremental decoder (result.hpp) of one whole, possibly multi-line
// reply: "250-first\r\n250 last\r\n". Lines end in LF, a CR before it is removed (bare LF
// is tolerated, as most clients do); every line starts with the same three-digit code
// (first digit 2 to 5), then "-" (more lines follow), " " or the line end (the last line).
// A line longer than kMaxReplyLineBytes (with its line end) or a reply of more than
// kMaxReplyLinesCount lines is invalid, so a hostile or broken server cannot make the
// client buffer without bound. The text of each line is kept as it came, NUL and other
// control bytes included: use printable_text() or escape it before showing it.
//
// enhanced_status() reads an RFC 3463 status code at the start of a reply's text ("5.1.1
// ..."; its class must match the reply's first digit). queued_as() takes the queue id
// Postfix and Sendmail give in the reply to the final dot ("250 2.0.0 Ok: queued as
// 4Yq2Lh0Kx3z5"): letters, digits, '.', '-', '_', at most kMaxQueueId bytes.
//
// Promises: nothing here throws (but std::bad_alloc), reads past its input or does I/O;
// printable_text() returns printable ASCII only, at most `max` bytes.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <xproxy/base/result.hpp>

namespace xproxy::smtp {

inline constexpr std::size_t kMaxReplyLineBytes = 2048;
inline constexpr std::size_t kMaxReplyLinesCount = 100;
inline constexpr std::size_t kMaxQueueId = 64;

struct SmtpReply {
    int code = 0;                    // 200..599
    std::vector<std::string> lines;  // the text after "NNN-" / "NNN ", without the line end

    bool positive() const { return code / 100 == 2; }
    bool transient() const { return code / 100 == 4; }
    bool permanent() const { return code / 100 == 5; }
    friend bool operator==(const SmtpReply&, const SmtpReply&) = default;
};

// complete: `out` holds the reply, `consumed` its bytes (what follows belongs to the next
// reply). need_more: a valid prefix. invalid: reason is static text. `out` is written
// only on complete.
DecodeResult decode_reply(std::string_view buf, SmtpReply& out);

// "5.1.1" when the first line's text starts with a status code of the reply's class
// followed by a space or the end of the line; else "".
std::string enhanced_status(const SmtpReply& r);

// The reply's lines joined with " ", each without a leading enhanced status code equal to
// enhanced_status(r); bytes outside printable ASCII become '?'; cut to `max` bytes.
std::string printable_text(const SmtpReply& r, std::size_t max = 512);

// The id after "queued as " (any case) in any line of the reply, or "".
std::string queued_as(const SmtpReply& r);

}  // namespace xproxy::smtp
