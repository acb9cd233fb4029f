// smtp_attrs.hpp: "VERB NAME=value NAME=value ..." command lines, the shape shared by
// XCLIENT, XFORWARD, XPROXYFROM, XPROXY and XPROXYTO. Values are xtext; the special
// values [UNAVAILABLE] and [TEMPUNAVAIL] are kept as a status, not as text.
//
// Limits: a command line is at most 512 bytes including CRLF (RFC 5321 command line
// length); longer attribute lists are split over several commands by pack_commands().
#pragma once

#include <cstddef>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace xproxy::smtp {

inline constexpr std::size_t kMaxCommandLine = 512;  // including CRLF

enum class ValueStatus { value, unavailable, tempunavail };

struct Attribute {
    std::string name;  // upper case
    std::string value; // decoded (empty unless status == value)
    ValueStatus status = ValueStatus::value;

    friend bool operator==(const Attribute&, const Attribute&) = default;
};

struct Command {
    std::string verb;  // upper case
    std::vector<Attribute> attrs;

    const Attribute* find(std::string_view name) const;
};

// Parses one command line (CRLF optional). Verb and names are case-insensitive and
// returned upper case. A name outside `allowed` (when non-empty), a duplicate name, a
// malformed pair or bad xtext is an error naming the offending attribute.
std::optional<Command> parse_command(std::string_view line, const std::set<std::string>& allowed,
                                     std::string* error);

// "NAME=xtext", "[UNAVAILABLE]" and "[TEMPUNAVAIL]" forms of one attribute.
std::string format_attribute(const Attribute& a);

// Packs attributes into "VERB a=b ...\r\n" lines of at most kMaxCommandLine bytes.
// Attributes whose names are in `last` go, in their given order, into the final line.
// Returns an empty vector when a single attribute cannot fit in one line.
std::vector<std::string> pack_commands(std::string_view verb, const std::vector<Attribute>& attrs,
                                       const std::set<std::string>& last = {});

// The attribute names of an EHLO keyword line such as "XCLIENT NAME ADDR PORT" (the
// keyword itself may be included or not). Upper case.
std::set<std::string> parse_ehlo_keyword(std::string_view line);

}  // namespace xproxy::smtp
