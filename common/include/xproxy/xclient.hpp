// xclient.hpp: Postfix's XCLIENT and XFORWARD commands (XCLIENT_README, XFORWARD_README).
//
// XCLIENT replaces the client the SMTP server believes it talks to (access rules, policy
// service and milters then see it); XFORWARD only informs logging and content filters.
// Attributes:
//   XCLIENT:  NAME REVERSE_NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT
//   XFORWARD: NAME ADDR PORT PROTO HELO IDENT SOURCE
// ADDR carries IPv6 as "IPV6:2001:db8::1". Each command line is at most 512 bytes; the
// encoders split longer attribute lists over several commands and put NAME, ADDR, PORT,
// DESTADDR and DESTPORT in the final one: the server checks smtpd_authorized_xclient_hosts
// against the current client, so every command before must still come from the real
// (authorized) peer, and an address travels with its port.
// Only attributes the server advertised in its EHLO reply are sent.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "xproxy/smtp_attrs.hpp"
#include "xproxy/source_info.hpp"

namespace xproxy::smtp {

const std::set<std::string>& xclient_attributes();
const std::set<std::string>& xforward_attributes();

// Commands (CRLF-terminated lines) announcing `info`. advertised: the names from the
// server's EHLO keyword (parse_ehlo_keyword); empty set = send every attribute. Unknown
// values (empty HELO, no PTR name) are sent as [UNAVAILABLE]. Empty result: nothing to
// send (no client address) or an attribute too long for any command.
std::vector<std::string> encode_xclient(const SourceInfo& info, const std::set<std::string>& advertised = {});
// ident: the upstream's queue id or session id (IDENT); source: "LOCAL" or "REMOTE".
std::vector<std::string> encode_xforward(const SourceInfo& info, const std::set<std::string>& advertised = {},
                                         std::string_view source = "REMOTE");

// Parses one XCLIENT or XFORWARD line (the verb decides which attribute set applies).
std::optional<Command> parse_xclient(std::string_view line, std::string* error);
std::optional<Command> parse_xforward(std::string_view line, std::string* error);

// Applies a parsed XCLIENT or XFORWARD command to `info`: ADDR/PORT set the client,
// DESTADDR/DESTPORT the server, NAME the PTR name, HELO, PROTO, LOGIN, IDENT the
// session id. [UNAVAILABLE]/[TEMPUNAVAIL] clear the field. Returns false with *error when
// ADDR or PORT is not a valid address or port.
bool apply_command(const Command& cmd, SourceInfo& info, std::string* error);

}  // namespace xproxy::smtp
