// xtext.hpp: RFC 3461 section 4 xtext, the value encoding of XCLIENT, XFORWARD and the
// XPROXY* commands. Bytes 33..126 except '+' and '=' stand for themselves; every other
// byte is "+HH" with two UPPER-case hex digits. The decoder is strict: lower-case hex,
// a truncated "+H", a raw '=' or a byte outside 33..126 is rejected (nullopt), as are
// decoded NUL, CR and LF unless allow_controls is set.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace xproxy {

std::string xtext_encode(std::string_view raw);
std::optional<std::string> xtext_decode(std::string_view text, bool allow_controls = false);

}  // namespace xproxy
