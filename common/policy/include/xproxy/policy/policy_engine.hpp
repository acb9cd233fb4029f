// policy_engine.hpp: the session policies of xproxy-policyd and xproxy-milter, as one
// pure function decide(input, config, directory) -> decision.
//
// Policies (doc/design.md, "Session policies"; each switched on or off in PolicyConfig; all off: always dunno):
//   inject   - DATA from a client that is not a trusted upstream: the caller prepends
//              the signed trace header (the engine only says "inject").
//   vdomains - RCPT to a hosted domain: domain and mailbox state (a held one: HOLD, the
//              message waits in the MTA's hold queue), the domain's smtp service. MAIL/RCPT from an authenticated client (or on the
//              submission service) with a hosted sender: domain and account state, the
//              domain's submission service, the sender must exist.
//   deposit  - Sender in a hosted domain: the client must be authenticated as
//              that sender (SASL login or a mapped client certificate), over TLS when the
//              domain requires it. Not applied to trusted upstreams, which relay mail
//              already checked at the hop where the client logged in.
//   risk     - Client network or sender domain in a risk class with a
//              transport: FILTER transport (Postfix keeps the last FILTER of a message).
// At MAIL and RCPT the checks run in this order and the first answer other than dunno
// wins: deposit, vdomains (sender), vdomains (recipient, RCPT only), risk. At DATA only
// inject runs. Other states (CONNECT, HELO, END-OF-MESSAGE, VRFY, ETRN) get dunno.
// With vdomains or deposit on and a directory that is not loaded (Directory::loaded()),
// MAIL and RCPT get 451 4.3.0 (reason directory_unavailable), never "unknown".
// The exact reply codes are in doc/directory.md.
//
// Promises: decide() is pure and thread-safe (no I/O, no clock, no state), never throws
// on any input, and allocates only for a reply that is not dunno. Addresses echoed in
// replies have control bytes replaced and are cut at 256 bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xproxy/base/ip.hpp>
#include <xproxy/base/result.hpp>
#include <xproxy/policy/access_decision.hpp>
#include <xproxy/policy/directory.hpp>
#include <xproxy/policy/risk_map.hpp>

namespace xproxy {

// The SMTP command a request is about (Postfix's protocol_state).
enum class ProtocolState : std::uint8_t { unknown, connect, helo, mail, rcpt, data, end_of_message, vrfy, etrn };

// "CONNECT", "EHLO"/"HELO", "MAIL", "RCPT", "DATA", "END-OF-MESSAGE", "VRFY", "ETRN"
// (any case); anything else is unknown.
ProtocolState parse_protocol_state(std::string_view text);
std::string_view to_string(ProtocolState s);

// Which service the client uses; the caller decides (e.g. from the server port or the
// Postfix instance / policy_context).
enum class ServiceKind : std::uint8_t { smtp, submission };

struct PolicyInput {
    ProtocolState state = ProtocolState::unknown;
    std::optional<IpAddress> client_address;  // the client as the MTA reports it
    std::string_view sender;                  // envelope sender; "" or "<>" = null sender
    std::string_view recipient;               // at RCPT
    std::string_view sasl_username;           // "" = not authenticated
    bool tls_active = false;
    std::string_view tls_protocol;             // "TLSv1.3", for logs
    std::string_view client_cert_fingerprint;  // verified client certificate (hex, ':' allowed)
    ServiceKind service = ServiceKind::smtp;
    // Whether the client is a trusted upstream; when unset, the engine checks
    // client_address against PolicyConfig::trusted_upstreams.
    std::optional<bool> trusted_upstream;
};

struct PolicyConfig {
    bool inject = false;
    bool vdomains = false;
    bool deposit = false;
    bool risk = false;
    CidrSet trusted_upstreams;  // empty: trust nobody
    RiskMap risk_map;
    // Postfix's recipient_delimiter: when a local part is not found, it is looked up
    // again cut at the first of these characters (alice+news -> alice). "" = off.
    std::string recipient_delimiter;

    bool any() const { return inject || vdomains || deposit || risk; }
    // Switches on the policies named in `names` ("inject", "vdomains", "deposit",
    // "risk"; each entry may be a comma/space separated list). Fails on an unknown name.
    Expected<void> enable(const std::vector<std::string>& names);
};

// hold: accept, but the message waits in the MTA's hold queue (Postfix HOLD, milter
// smfi_quarantine) until an administrator releases it; it holds the whole message.
enum class ActionKind : std::uint8_t { dunno, reject, defer, filter, inject, hold };
enum class PolicyId : std::uint8_t { none, inject, vdomains, deposit, risk };
enum class Subject : std::uint8_t { none, sender, recipient };

std::string_view to_string(ActionKind k);
std::string_view to_string(PolicyId p);

struct PolicyDecision {
    ActionKind kind = ActionKind::dunno;
    PolicyId policy = PolicyId::none;  // which policy answered
    Subject subject = Subject::none;   // whose address a reject/defer is about
    std::uint16_t code = 0;            // 550, 450 (reject/defer); 0 otherwise
    std::string_view status;           // RFC 3463 enhanced status: "5.1.1"
    std::string_view reason;           // stable token for logs: "user_unknown", "risk_network"
    std::string text;                  // "User unknown in virtual domain"; for filter: why; for hold: the reason
    std::string address;               // the address concerned, sanitised
    std::string transport;             // filter: "smtp-high:"

    // The value for Postfix's `action=`: "DUNNO", "550 5.1.1 User unknown in virtual
    // domain" (Postfix itself adds "<address>: Recipient address rejected: "), "FILTER
    // smtp-high:", "HOLD Mailbox on hold", or for inject "PREPEND " + header ("DUNNO"
    // when header is empty).
    std::string postfix_action(std::string_view header = {}) const;
    // The text a client sees after code and status, as Postfix words it; the milter uses
    // it: "<bob@example.com>: Recipient address rejected: User unknown in virtual domain";
    // for a decision about no address (directory_unavailable), hold and the rest: text.
    std::string smtp_text() const;
};

PolicyDecision decide(const PolicyInput& in, const PolicyConfig& config, const Directory& directory);

}  // namespace xproxy
