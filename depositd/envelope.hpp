// envelope.hpp: what a deposited message says about its own envelope: the address of its
// From: field, the addresses of its To:, Cc: and Bcc: fields, and its Message-ID
// (doc/deposit.md, "HTTP interface": the envelope when the query names none).
//
// Address lists are read as RFC 5322 3.4 writes them: display names, quoted strings,
// comments (nested), angle addresses with an obsolete source route, groups
// ("undisclosed-recipients:;"). Addresses come back in canonical form
// (xproxy/wire/mail_address.hpp), recipients in order with exact duplicates dropped.
//
// Promises: a pure function of the message (no I/O, no clock, no logging); never throws
// (but std::bad_alloc), never reads past the input; the header block is read up to
// EnvelopeLimits::max_header_bytes and at most max_addresses addresses are returned.
// A message that is ambiguous is refused, never guessed at: a header block that does not
// parse, a bare CR anywhere in the message (a CR not followed by LF: RFC 5322 forbids it,
// and the injector would end a line there that the header parser does not), a leading
// mbox "From " line, no From: field or more than one, a From: field
// with other than exactly one mailbox, more than one Message-ID, an address without a
// local part or a domain or with control characters (in From:, To:, Cc:, Bcc:, Sender:,
// Resent-From:, Resent-Sender:), an X-Original-Source or X-Original-Source-Result field
// (a deposit is an inject hop: doc/threat-model.md; such a field can only be forged). Failure texts hold no input bytes.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <xproxy/base/result.hpp>

namespace xproxy::depositd {

struct EnvelopeLimits {
    std::size_t max_header_bytes = 256 * 1024;
    std::size_t max_addresses = 1000;  // To, Cc and Bcc together
};

// An address of a Sender:, Resent-From: or Resent-Sender: field.
struct NamedAddress {
    std::string field;    // "Sender", "Resent-From" or "Resent-Sender"
    std::string address;  // canonical
};

struct MessageEnvelope {
    std::string from;                     // canonical address of the From: field
    std::vector<NamedAddress> senders;    // the other sender fields' addresses, in order
    std::vector<std::string> recipients;  // To:, Cc:, Bcc: in order, canonical, without duplicates
    std::string message_id;               // the Message-ID field value (trimmed); "" when absent
};

Expected<MessageEnvelope> extract_envelope(std::string_view message, const EnvelopeLimits& limits = {});

// The addresses of one address-list field value (To:, Cc:, ...), canonical; a failure
// when a mailbox is malformed or the list holds more than max_addresses.
Expected<std::vector<std::string>> parse_address_list(std::string_view value, std::size_t max_addresses);

// The offset of the first CR not followed by LF in `message`, or npos.
std::size_t find_bare_cr(std::string_view message);

// Whether `address` (canonical form) has a non-empty local part and domain and no byte
// below 0x21 or 0x7F outside a quoted local part: an address a deposit may name.
bool usable_address(std::string_view address);

}  // namespace xproxy::depositd
