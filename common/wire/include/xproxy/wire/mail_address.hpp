// mail_address.hpp: the canonical form of an SMTP envelope address (RFC 5321), the form
// in which signed data binds a sender, so that a hop that re-spells an address (Postfix
// writes `"alice"@Example.COM` back as `alice@Example.COM`, drops a source route, hands
// a policy service its unquoted internal form `a b@x` for `"a b"@x`) still compares equal,
// while two different mailboxes never do. doc/wire-formats.md ("Canonical address") gives
// the exact rules.
//
// Promises: never throws (but std::bad_alloc), never reads past its input, accepts any
// bytes, and is idempotent: canonical_address(canonical_address(x)) == canonical_address(x).
#pragma once

#include <string>
#include <string_view>

namespace xproxy {

// The canonical form of an envelope address given with or without angle brackets, as
// sent on the wire (quoted, with a source route) or in an MTA's internal form (unquoted):
//  - white space (SP, HTAB, CR, LF) around it and one pair of <> (and white space inside
//    it) removed; "" and "<>" (the null sender) give "";
//  - a source route ("@a,@b:") removed;
//  - the local part unquoted (quoted strings and quoted pairs resolved) and written back
//    as a Dot-string when it is one, else as one quoted string with '"' and '\' escaped;
//    its letters keep their case;
//  - the domain (after the last '@' that is not inside a quoted string) lower-cased
//    (ASCII letters only), without the root dot: one trailing '.' that follows a letter,
//    digit or hyphen.
std::string canonical_address(std::string_view address);

}  // namespace xproxy
