// escape.hpp: untrusted bytes made safe for a log line.
//
// escape() keeps printable ASCII (0x20..0x7E) as it is, doubles the backslash, and writes
// every other byte as \xHH (two lower-case hex digits), so the result is one printable
// line whatever the input: no CR, LF, NUL, terminal escape or 8-bit byte survives, and
// the original bytes can be recovered exactly (unescape() does it, for tests and tools).
// Output is capped: at most max_output characters of escaped text, then "..." when the
// input was cut. An escape sequence is never split by the cap. Nothing here throws
// (except std::bad_alloc) and nothing reads past the input.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace xproxy {

inline constexpr std::size_t kEscapeDefaultMax = 256;

// The escaped form of `in`, at most max_output characters plus "..." if cut.
// max_output == 0 means no cap.
std::string escape(std::string_view in, std::size_t max_output = kEscapeDefaultMax);

// For a value in a key=value log line: escape(), and '"' as \x22 (it would end a quoted
// value) and, when the value is written without quotes, ' ' as \x20 (it would start a
// forged key). unescape() recovers the original bytes all the same.
std::string escape_value(std::string_view in, std::size_t max_output = kEscapeDefaultMax, bool quoted = true);

// Appends the escaped form to `out` (same rules); returns true when all of `in` fitted.
bool escape_append(std::string& out, std::string_view in, std::size_t max_output = kEscapeDefaultMax);

// The inverse of an uncut escape(): "\\\\" -> '\', "\\xHH" (either case) -> byte, other
// printable bytes as they are. nullopt on a lone or unknown backslash sequence or a byte
// escape() never writes raw.
std::optional<std::string> unescape(std::string_view escaped);

}  // namespace xproxy
