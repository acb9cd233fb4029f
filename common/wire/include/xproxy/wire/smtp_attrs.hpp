// smtp_attrs.hpp: "VERB NAME=value NAME=value ..." command lines, the shape shared by
// XCLIENT, XFORWARD, XPROXYFROM, XPROXY and XPROXYTO, and the EHLO keyword lines that
// advertise them ("250-XCLIENT NAME ADDR PORT").
//
// Grammar accepted by parse_command():
//   line  = verb 1*( WSP attr ) *WSP [ CRLF | LF ]          at most 512 bytes with CRLF
//   verb  = 1*( ALPHA / DIGIT )                             case-insensitive
//   attr  = name "=" value
//   name  = 1*( ALPHA / DIGIT / "_" / "-" )                 case-insensitive
//   value = 1*xtext                                         never empty
// Verb and names come back upper case, values xtext-decoded. Within one line a name may
// appear once: a repeated name is rejected rather than resolved (first or last wins
// differ between implementations, and a value must not hide behind its duplicate).
// The special values [UNAVAILABLE] and [TEMPUNAVAIL] are ordinary text at this level:
// each verb's model decides what they mean for which attribute.
//
// Encoders build lines with pack_commands(): values are xtext-encoded, a line never
// exceeds 512 bytes including CRLF, and attributes that do not fit are spread over
// several commands with a chosen set kept in the final one. Nothing here throws.
#pragma once

#include <xproxy/base/result.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace xproxy::smtp {

inline constexpr std::size_t kMaxCommandLine = 512;  // including CRLF (RFC 5321 4.5.3.1.4)

// A value, or one of the two special values of XCLIENT/XFORWARD.
enum class ValueStatus { value, unavailable, tempunavail };

struct Attribute {
    std::string name;   // upper case
    std::string value;  // decoded text; empty unless status == value
    ValueStatus status = ValueStatus::value;

    friend bool operator==(const Attribute&, const Attribute&) = default;
};

struct Command {
    std::string verb;              // upper case
    std::vector<Attribute> attrs;  // in line order

    const Attribute* find(std::string_view name) const;
};

// The result of a parser: a value, or an error message that names the offending part
// (printable ASCII only, safe to log and to put in a 501 reply).
template <class T>
using Parsed = Expected<T>;

// The result of an encoder: CRLF-terminated lines in the order to send them, or an error.
struct Encoded {
    std::vector<std::string> lines;
    std::string error;  // empty on success

    explicit operator bool() const { return error.empty(); }
    std::string joined() const;  // all lines concatenated
};

struct LineRules {
    const std::set<std::string>* names = nullptr;  // the verb's attribute names; nullptr: any
    std::size_t max_value = 0;                     // longest raw (xtext) value; 0: no own limit
};

// Parses one command line (see the grammar above).
Parsed<Command> parse_command(std::string_view line, const LineRules& rules = {});

// [UNAVAILABLE] / [TEMPUNAVAIL] in any case (XCLIENT_README note 2), else nullopt.
std::optional<ValueStatus> special_value(std::string_view decoded);

// A port number as these commands write it: decimal 0..65535, no sign, no leading zero.
std::optional<std::uint16_t> parse_port(std::string_view text);

// "NAME=xtext", "NAME=[UNAVAILABLE]" or "NAME=[TEMPUNAVAIL]".
std::string format_attribute(const Attribute& a);

struct PackRules {
    // Names that should travel in the final command, most important first. When the
    // attributes need more than one command, the final one takes these, in this order,
    // while they fit; the first of them that is present must fit. Everything else goes,
    // in the given order, into the commands before it.
    std::vector<std::string> final_priority;
    std::string more_suffix;    // appended to each command but the last when split ("LAST=False")
    std::string last_suffix;    // appended to the last command when split ("LAST=True")
    std::size_t max_value = 0;  // longest xtext value allowed; 0: only the line limit
};

// Builds "VERB a=b ...\r\n" lines of at most kMaxCommandLine bytes. The attributes'
// order is kept within each line. Errors: a value with NUL, CR or LF, an empty value,
// a value longer than max_value, or one that cannot fit in any command.
Encoded pack_commands(std::string_view verb, const std::vector<Attribute>& attrs, const PackRules& rules = {});

// The attribute names of one EHLO keyword line: "250-XCLIENT NAME ADDR PORT",
// "XFORWARD NAME ADDR" or just "NAME ADDR" (a leading XCLIENT/XFORWARD keyword and the
// reply code are skipped). Upper case.
std::set<std::string> parse_ehlo_keyword(std::string_view line);

// Looks `keyword` up in a whole EHLO reply ("250-host\r\n250-XCLIENT NAME ADDR\r\n250 ...")
// and returns the names that follow it, or nullopt if the keyword is not advertised.
std::optional<std::set<std::string>> find_ehlo_keyword(std::string_view ehlo_reply, std::string_view keyword);

}  // namespace xproxy::smtp
