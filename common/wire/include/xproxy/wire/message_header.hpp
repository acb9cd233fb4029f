// message_header.hpp: the header section of an Internet message (RFC 5322), as a list of
// unfolded fields, and the clauses of a Received field (RFC 5321 section 4.4), for tools
// that read a delivered message (xproxy-wire trace).
//
// Promises: pure functions of their input (no I/O, no clock, no logging); never throw
// (but std::bad_alloc), never read past the input; bounded by MessageLimits; untrusted
// bytes are returned as they are: escape them (xproxy/escape.hpp) before printing.
//  - The header section ends at the first empty line (or the end of the input); lines
//    end with LF or CRLF. A leading mbox "From " line is skipped.
//  - A line that starts with SP or HTAB continues the previous field; unfolding removes
//    the line break only (the white space stays), and the value loses the white space
//    after the colon and at its end.
//  - A line that is neither a field (name of printable ASCII but ':', then ':') nor a
//    continuation makes the input invalid: a message that does not parse is never
//    guessed at.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <xproxy/base/result.hpp>

namespace xproxy {

struct HeaderField {
    std::string name;      // as written
    std::string value;     // unfolded
    std::size_t line = 0;  // where the field starts, from 1
};

struct MessageLimits {
    std::size_t max_header_bytes = 1024 * 1024;
    std::size_t max_fields = 10000;
    std::size_t max_field_bytes = 64 * 1024;
};

struct MessageHeader {
    std::vector<HeaderField> fields;  // top first
    // Index of the first field named `name` (case-insensitive) at or after `from`, or
    // fields.size().
    std::size_t find(std::string_view name, std::size_t from = 0) const;
};

Expected<MessageHeader> parse_message_header(std::string_view message, const MessageLimits& limits = {});

// The clauses of a Received field value. Each clause keeps its comments ("from helo
// (host [192.0.2.1])"); empty when absent. Parsing is lenient (MTAs differ): it never
// fails, an unknown word belongs to the clause before it.
struct ReceivedFields {
    std::string from, by, via, with, id, for_;
    std::string date;     // after the last ';'
    std::string from_ip;  // the last [address] of the from clause (IPv6: without "IPv6:")
};

ReceivedFields parse_received(std::string_view value);

}  // namespace xproxy
