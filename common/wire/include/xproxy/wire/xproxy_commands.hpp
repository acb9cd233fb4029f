// xproxy_commands.hpp: the XPROXY verbs (doc/design.md, "The XPROXY verbs") and the XPROXYTO reply.
//
//   XPROXYFROM SID=.. IP=.. PORT=.. [HELO=..] [LOGIN=..] [PROTO=..]  inbound: the source MTA
//   XPROXY     SID=.. IP=.. PORT=.. DOMAIN=.. [LOGIN=..]              submission: the MUA
//   XPROXYTO   DESTINATIONS=[ip],[ip] FORCEHELO=False SHOULDSKIPTLS=False PORT=99
//              REQUIRETLS=True REQUIREOORG=False TLSAUTHLEVEL=.. RISK=.. SESSIONID=.. LAST=True
//                                                                   outbound: where and how
//   reply to XPROXYTO: 250-DESTINATIONLEFT=[ip],[ip]
//                      250-<target EHLO option> ... 250 <last target EHLO option>
//
// The lines use the attribute-command syntax of smtp_attrs.hpp (values xtext, names and
// verb case-insensitive, no repeated name within a line, at most 512 bytes with CRLF).
// [UNAVAILABLE] has no special meaning here. Addresses: we emit a dotted quad or
// "IPv6:" + RFC 5952 text, and DESTINATIONS entries in brackets ("[IPv6:2001:db8::1]");
// we accept anything IpAddress::parse_mta accepts (brackets optional, any case of the
// prefix). Booleans: we emit True/False, we accept any case.
//
// Splitting: a command that would exceed 512 bytes is sent as several commands of the
// same verb; every one but the last carries LAST=False, the last LAST=True. A command
// without LAST is complete on its own (the reference XPROXYFROM and XPROXY examples of
// doc/wire-formats.md carry none); XPROXYTO always carries LAST, as its reference does. XPROXYTO spreads
// DESTINATIONS over the commands (the receiver concatenates them in order); every other
// attribute may appear once in the whole sequence. XproxyAccumulator merges a sequence
// under explicit bounds. Nothing here throws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <xproxy/base/ip.hpp>
#include <xproxy/base/result.hpp>
#include <xproxy/base/source_info.hpp>
#include <xproxy/wire/smtp_attrs.hpp>

namespace xproxy::smtp {

struct XproxyFrom {
    std::string sid;                 // SID: the proxy's session id (required)
    Endpoint source;                 // IP and PORT of the source MTA (required)
    std::string helo, login, proto;  // HELO, LOGIN, PROTO; empty: absent

    friend bool operator==(const XproxyFrom&, const XproxyFrom&) = default;
};

struct Xproxy {
    std::string sid;     // SID (required)
    Endpoint source;     // IP and PORT of the MUA (required)
    std::string domain;  // DOMAIN: the MUA's EHLO/HELO argument (required)
    std::string login;   // LOGIN; empty: absent

    friend bool operator==(const Xproxy&, const Xproxy&) = default;
};

struct XproxyTo {
    std::vector<IpAddress> destinations;  // DESTINATIONS, in the order to try (at least one)
    std::uint16_t port = 25;              // PORT
    bool force_helo = false;              // FORCEHELO
    bool should_skip_tls = false;         // SHOULDSKIPTLS
    bool require_tls = false;             // REQUIRETLS
    bool require_oorg = false;            // REQUIREOORG
    std::string tls_auth_level;           // TLSAUTHLEVEL (e.g. DomainValidation); empty: absent
    std::string risk;                     // RISK (e.g. Normal); empty: absent
    std::string session_id;               // SESSIONID; empty: absent

    friend bool operator==(const XproxyTo&, const XproxyTo&) = default;
};

using XproxyCommand = std::variant<XproxyFrom, Xproxy, XproxyTo>;

struct XproxyLimits {
    std::size_t max_lines = 16;         // commands in one sequence
    std::size_t max_bytes = 8192;       // their total size, CRLF included
    std::size_t max_destinations = 64;  // XPROXYTO DESTINATIONS entries
};

// Command lines, split when needed (see above). Errors: a required field empty, a value
// with NUL, CR or LF, no destination or more than max_destinations, a value that cannot
// fit in one command, or more lines than the default limits accept.
Encoded encode(const XproxyFrom& c);
Encoded encode(const Xproxy& c);
Encoded encode(const XproxyTo& c);
Encoded encode(const XproxyCommand& c);

// Merges a sequence of command lines of one verb until the command is complete.
//   add(line): one whole line (CRLF optional). Returns
//     complete  - the command is whole (LAST=True or no LAST); consumed == line.size();
//                 command() holds it;
//     need_more - LAST=False: send the next line of the sequence;
//     invalid   - the sequence is rejected; reason is static, error() names the detail.
//   After complete or invalid the next add() starts a new sequence.
class XproxyAccumulator {
public:
    explicit XproxyAccumulator(XproxyLimits limits = {}) : limits_(limits) {}

    DecodeResult add(std::string_view line);
    const XproxyCommand& command() const { return command_; }
    const std::string& error() const { return error_; }
    std::size_t lines() const { return lines_; }
    void reset();

private:
    DecodeResult fail(std::string_view reason, std::string detail);

    XproxyLimits limits_;
    std::string verb_;
    std::vector<Attribute> merged_;
    std::size_t lines_ = 0;
    std::size_t bytes_ = 0;
    bool finished_ = false;
    XproxyCommand command_;
    std::string error_;
};

// One self-contained line (LAST absent or True).
Parsed<XproxyCommand> parse_xproxy_command(std::string_view line);

// SourceInfo views: XPROXYFROM fills client, session_id, helo, login and protocol; XPROXY
// fills client, session_id, helo (= DOMAIN) and login.
SourceInfo to_source_info(const XproxyFrom& c);
SourceInfo to_source_info(const Xproxy& c);
// Fails without a client address or a session id.
Parsed<XproxyFrom> xproxyfrom_from(const SourceInfo& info);

// The reply to XPROXYTO: the destinations the proxy did not use, then the target's EHLO
// options (keywords with their parameters, without the "250-" prefix).
struct DestinationLeft {
    std::vector<IpAddress> left;
    std::vector<std::string> options;

    friend bool operator==(const DestinationLeft&, const DestinationLeft&) = default;
};

inline constexpr std::size_t kMaxReplyLine = 512;  // including CRLF (RFC 5321 4.5.3.1.5)
inline constexpr std::size_t kMaxReplyLines = 64;

// "250-DESTINATIONLEFT=[ip],...\r\n" (more such lines when the list does not fit in
// one), then "250-option\r\n" ... and "250 " on the last line. An empty list is
// "DESTINATIONLEFT=". Errors: an option with NUL, CR or LF, longer than a reply line,
// or itself starting with "DESTINATIONLEFT="; more than kMaxReplyLines lines.
Encoded encode(const DestinationLeft& d);

// Incremental decoder of that reply (result.hpp): complete with the reply's length,
// need_more while it may still become valid, invalid otherwise. Lines end in CRLF; every
// line's code is 250; the first line(s) are DESTINATIONLEFT= (keyword in any case);
// a line is at most kMaxReplyLine bytes, a reply at most kMaxReplyLines lines. `out` is
// written only on complete.
DecodeResult decode_destination_left(std::string_view buf, DestinationLeft& out);

}  // namespace xproxy::smtp
