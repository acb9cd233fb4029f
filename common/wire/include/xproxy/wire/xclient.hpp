// xclient.hpp: Postfix's XCLIENT and XFORWARD commands (XCLIENT_README, XFORWARD_README),
// as typed models with a parser for one command line, an encoder to one or more lines,
// and their mapping to and from SourceInfo.
//
// XCLIENT replaces the client the SMTP server believes it talks to (access rules, policy
// service and milters then see it); XFORWARD only informs logging and content filters.
//   XCLIENT  NAME REVERSE_NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT
//   XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE
// Values are xtext (at most 255 bytes each, as Postfix enforces); ADDR and DESTADDR are a
// dotted quad or "IPV6:" + an IPv6 address (we accept any case and brackets); PORT is
// decimal without leading zeros. [UNAVAILABLE] (any case) is accepted for every attribute
// except XCLIENT PROTO, which is SMTP or ESMTP; [TEMPUNAVAIL] only for NAME and
// REVERSE_NAME (elsewhere it is the plain text "[TEMPUNAVAIL]", as Postfix reads it).
//
// Splitting (a command line is at most 512 bytes with CRLF). XCLIENT_README note 1: send
// NAME and ADDR last, "once ADDR is sent, the client is usually no longer authorized to
// send XCLIENT commands": smtpd re-checks smtpd_authorized_xclient_hosts against the new
// NAME and ADDR after each XCLIENT. And Postfix's smtpd resets HELO, PROTO and LOGIN on
// every XCLIENT that does not carry them ("the SMTP server must not reset attributes that
// were received with the last XCLIENT command"), so those must be in the last command too
// (seen with Postfix 3.7: a HELO sent in an earlier command is gone). The final command
// therefore takes, while they fit: ADDR, NAME, LOGIN, HELO, PROTO, PORT, DESTADDR,
// DESTPORT; whatever does not fit goes first. PORT, DESTADDR and DESTPORT survive in an
// earlier command; a LOGIN or HELO pushed out (only when NAME, HELO and LOGIN are all
// near 255 bytes) is lost at a Postfix server. XFORWARD attributes all persist until the
// end of the transaction; ADDR, PORT and NAME are kept last all the same.
//
// Parsing never throws; a repeated attribute within one line is rejected (Postfix would
// let the last one win). Across lines, merge() lets the later command win.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <xproxy/base/ip.hpp>
#include <xproxy/base/source_info.hpp>
#include <xproxy/wire/smtp_attrs.hpp>

namespace xproxy::smtp {

inline constexpr std::size_t kMaxXclientValue = 255;  // xtext bytes, Postfix's limit
inline constexpr std::size_t kMaxXforwardProto = 64;  // XFORWARD_README

// One attribute's value: known (status == value) or a special value.
template <class T>
struct Field {
    ValueStatus status = ValueStatus::value;
    T value{};

    static Field of(T v) { return Field{ValueStatus::value, std::move(v)}; }
    static Field unavailable() { return Field{ValueStatus::unavailable, T{}}; }
    static Field tempunavail() { return Field{ValueStatus::tempunavail, T{}}; }
    bool known() const { return status == ValueStatus::value; }
    friend bool operator==(const Field&, const Field&) = default;
};

using TextField = Field<std::string>;
using AddrField = Field<IpAddress>;
using PortField = Field<std::uint16_t>;

// An absent attribute is std::nullopt.
struct Xclient {
    std::optional<TextField> name;          // verified client host name; may be [TEMPUNAVAIL]
    std::optional<TextField> reverse_name;  // unverified PTR name; may be [TEMPUNAVAIL]
    std::optional<AddrField> addr;
    std::optional<PortField> port;
    std::optional<std::string> proto;  // "SMTP" or "ESMTP" (upper case)
    std::optional<TextField> helo;
    std::optional<TextField> login;  // SASL login name
    std::optional<AddrField> destaddr;
    std::optional<PortField> destport;

    friend bool operator==(const Xclient&, const Xclient&) = default;
};

enum class XforwardSource { local, remote };

struct Xforward {
    std::optional<TextField> name;
    std::optional<AddrField> addr;
    std::optional<PortField> port;
    std::optional<TextField> proto;  // any protocol name up to 64 bytes (ESMTPSA, ...)
    std::optional<TextField> helo;
    std::optional<TextField> ident;  // the up-stream's message or session id
    std::optional<Field<XforwardSource>> source;

    friend bool operator==(const Xforward&, const Xforward&) = default;
};

// The attribute names each parser accepts (upper case).
const std::set<std::string>& xclient_attributes();
const std::set<std::string>& xforward_attributes();

// One "XCLIENT ..." / "XFORWARD ..." line (CRLF optional). Errors name the attribute, as
// the 501 reply Postfix gives: "unknown attribute 'FOO'", "PORT is not a port number".
Parsed<Xclient> parse_xclient(std::string_view line);
Parsed<Xforward> parse_xforward(std::string_view line);

// The attributes in the order we emit them:
//   XCLIENT:  PROTO HELO LOGIN DESTADDR DESTPORT REVERSE_NAME NAME ADDR PORT
//   XFORWARD: PROTO HELO IDENT SOURCE NAME ADDR PORT
std::vector<Attribute> to_attributes(const Xclient& x);
std::vector<Attribute> to_attributes(const Xforward& x);

// Command lines, split as described above. Errors: an empty text value or one with NUL,
// CR or LF, a value longer than 255 bytes once encoded, a text value that would read
// back as a special value, an XCLIENT PROTO other than SMTP/ESMTP, an XFORWARD PROTO
// longer than 64 bytes, or no attribute at all.
Encoded encode(const Xclient& x);
Encoded encode(const Xforward& x);

// What the server said it supports: the names from its EHLO keyword line
// (parse_ehlo_keyword, find_ehlo_keyword). std::nullopt: not known, send everything.
using Advertised = std::optional<std::set<std::string>>;

// The attributes announcing `info`, restricted to `advertised`. No client: ADDR and PORT
// are [UNAVAILABLE]. An empty or unusable HELO or PTR name (too long for 255 bytes, NUL,
// CR or LF, or spelled like a special value) is sent as [UNAVAILABLE]; an empty or
// unusable login is left out (the server then treats the client as not authenticated).
// XCLIENT PROTO is ESMTP for ESMTP* protocols, SMTP for SMTP, absent otherwise.
Xclient xclient_from(const SourceInfo& info, const Advertised& advertised = std::nullopt);
Xforward xforward_from(const SourceInfo& info, const Advertised& advertised = std::nullopt,
                       XforwardSource source = XforwardSource::remote);

inline Encoded encode_xclient(const SourceInfo& info, const Advertised& advertised = std::nullopt) {
    return encode(xclient_from(info, advertised));
}
inline Encoded encode_xforward(const SourceInfo& info, const Advertised& advertised = std::nullopt,
                               XforwardSource source = XforwardSource::remote) {
    return encode(xforward_from(info, advertised, source));
}

// Folds a later command into the state built from earlier ones: attributes present in
// `later` replace those in `into`.
void merge(Xclient& into, const Xclient& later);
void merge(Xforward& into, const Xforward& later);

// Writes what the command says into `info`: ADDR/PORT the client, DESTADDR/DESTPORT the
// server, NAME the PTR name, HELO, PROTO, LOGIN, IDENT the session id. A special value
// clears the field (an unavailable address clears the endpoint; an unavailable port is
// 0). A port without any address to attach to is dropped. REVERSE_NAME and SOURCE have
// no SourceInfo field and are ignored.
void apply(const Xclient& x, SourceInfo& info);
void apply(const Xforward& x, SourceInfo& info);

}  // namespace xproxy::smtp
