// xtext.hpp: RFC 3461 section 4 xtext, the value encoding of XCLIENT, XFORWARD and the
// XPROXY* commands.
//
//   xtext   = *( xchar / hexchar )
//   xchar   = any byte 33..126 except '+' and '='     (stands for itself)
//   hexchar = '+' two UPPER-case hex digits           (any byte, "+2B" is '+')
//
// The encoder writes xchar wherever it may and "+HH" (upper case) everywhere else, so its
// output is the one canonical spelling of a value. The decoder is strict: lower-case hex
// ("+2b") is rejected, because RFC 3461 writes hexchar with upper-case digits and a value
// must have a single spelling; so are a truncated "+H", a raw '=', a space or any byte
// outside 33..126. A decoded NUL, CR or LF is rejected too unless allow_controls is set:
// decoded values end up in SMTP lines, logs and headers. Nothing here throws.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace xproxy {

std::string xtext_encode(std::string_view raw);

// nullopt on any of the errors above.
std::optional<std::string> xtext_decode(std::string_view text, bool allow_controls = false);

// The same; on error *reason (if given) is set to a static description such as
// "lower-case hex digit in +HH".
std::optional<std::string> xtext_decode(std::string_view text, bool allow_controls, std::string_view* reason);

}  // namespace xproxy
