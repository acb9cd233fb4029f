// session.hpp: one milter connection of xproxy-milter as a plain class, without libmilter.
//
// The libmilter callbacks (callbacks.cpp) translate each call into one method here and map
// the Reply back. A Session sees: connect (peer address, possibly absent), the macros the
// MTA sends, HELO, MAIL, RCPT, each header, and end of message, where it returns the
// header edits to apply. abort() forgets the message, close() the connection.
//
// Modes (Config::mode):
//   inject - first hop, the trust boundary. At end of message every X-Original-Source and
//            every X-Original-Source-Result field that came with the message is removed
//            and one signed field with the session's metadata is inserted at the top,
//            unless the peer is a trusted upstream and the topmost header verifies: then
//            that header is kept (chains of gateways) and only the others go.
//            The shared policy engine (vdomains, deposit) runs at MAIL and RCPT.
//   verify - later hop. Only the topmost header decides (a valid one further down never
//            counts): if it verifies (known key, time window, bound to this message) it
//            gives the original source; its IP is checked against the block list and the
//            policy engine runs on it. Missing or invalid: the configured action (accept,
//            tempfail, reject; a missing one on a message from the null sender has its
//            own, tempfail by default). Every X-Original-Source field is removed unless
//            keep_header (then the valid one stays), every incoming
//            X-Original-Source-Result field is removed, and the outcome is recorded in
//            our own result header.
//
// Promises: no method throws except std::bad_alloc; nothing of one message survives
// abort() or the next MAIL; the Session holds no reference to libmilter, sockets or
// clocks (the caller passes `now`). Values from the network are stored raw and must be
// escaped (xproxy/escape.hpp) before they are logged; summary() does that.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xproxy/base/ip.hpp>
#include <xproxy/base/keyring.hpp>
#include <xproxy/base/source_info.hpp>
#include <xproxy/ldap/directory_backend.hpp>
#include <xproxy/policy/directory.hpp>
#include <xproxy/policy/policy_engine.hpp>
#include <xproxy/wire/trace_header.hpp>

namespace xproxy::milter {

enum class Mode : std::uint8_t { inject, verify };
enum class FailAction : std::uint8_t { accept, tempfail, reject };

const char* to_string(Mode m);
const char* to_string(FailAction a);
std::optional<Mode> parse_mode(std::string_view text);
std::optional<FailAction> parse_fail_action(std::string_view text);

inline constexpr std::string_view kResultFieldName = "X-Original-Source-Result";

// Everything a Session reads; built once at start-up and shared read-only by all sessions.
struct Config {
    Mode mode = Mode::inject;
    KeyRing keys;
    std::string signer;                          // by= in headers we sign
    CidrSet trusted_upstreams;                   // inject: peers whose valid header is kept; empty = nobody
    CidrSet block_list;                          // verify: original client addresses refused (550 5.7.1)
    FailAction on_invalid = FailAction::reject;  // verify: header present but not valid
    FailAction on_missing = FailAction::reject;  // verify: no header at all
    // verify: no header on a message from the null sender (a DSN). Not accepted by rule (a
    // remote client can send MAIL FROM:<> too), but by default deferred rather than
    // refused, so a bounce from an inject hop that does not sign bounces waits in that
    // hop's queue instead of being lost.
    FailAction on_missing_bounce = FailAction::tempfail;
    bool keep_header = false;          // verify: leave the valid header in the message
    bool result_header = true;         // verify: add X-Original-Source-Result
    std::int64_t max_age = 7 * 86400;  // verify: seconds a header stays valid
    std::int64_t max_future = kTraceMaxFuture;
    PolicyConfig policy;  // vdomains / deposit (risk and inject are not used here)
    std::shared_ptr<const Directory> directory = std::make_shared<const Directory>();  // without a backend
    std::shared_ptr<DirectoryBackend> directory_backend;  // --directory (file or LDAP); null: `directory`
    // The directory for one message: the backend's current one, else `directory`.
    std::shared_ptr<const Directory> current_directory() const {
        return directory_backend ? directory_backend->get() : directory;
    }
    std::vector<std::string> submission_ports{"587", "465"};  // {daemon_port} values = submission
};

// What the MTA should answer. `cont` lets the message go on (SMFIS_CONTINUE / ACCEPT at
// end of message).
struct Reply {
    enum class Kind : std::uint8_t { cont, tempfail, reject } kind = Kind::cont;
    std::string code;    // "550"
    std::string status;  // "5.7.1"
    std::string text;    // one line, no CR/LF

    static Reply make(Kind k, std::string code, std::string status, std::string text) {
        return Reply{k, std::move(code), std::move(status), std::move(text)};
    }
    bool is_cont() const { return kind == Kind::cont; }
};

// One change of the message's header, in the order the adapter must apply them.
struct HeaderEdit {
    enum class Kind : std::uint8_t {
        remove,  // smfi_chgheader(name, index, NULL): index counts fields of this name from 1
        insert,  // smfi_insheader(index, name, value): index 0 = top of the header
    } kind = Kind::remove;
    std::string name;
    int index = 0;
    std::string value;  // insert: folded with "\n" continuation lines
};

struct EomResult {
    Reply reply;
    std::vector<HeaderEdit> edits;  // empty when the reply is not cont
    // Not empty: put the message on hold with this reason (smfi_quarantine: Postfix's hold
    // queue, Sendmail's quarantine), because a recipient's or its domain's state is hold.
    // Only with a cont reply; one printable line.
    std::string hold;
};

// Registers the milter's message metrics (else done by the first message).
void register_metrics();

class Session {
public:
    explicit Session(std::shared_ptr<const Config> config);

    // Connection. addr is nullopt when the MTA gives no address (NULL hostaddr, a
    // non-IP family); hostname is what the MTA resolved, possibly "[1.2.3.4]".
    void connect(std::string_view hostname, std::optional<Endpoint> peer);
    // A macro value: name with or without braces ("{client_addr}" or "client_addr", "i").
    // Later values replace earlier ones; MAIL-stage and later macros are dropped by abort().
    void set_macro(std::string_view name, std::string_view value);
    void helo(std::string_view name);
    Reply mail_from(std::string_view sender);
    Reply rcpt_to(std::string_view recipient);
    // One header field as the MTA passes it (value without the leading blank).
    void header(std::string_view name, std::string_view value);
    // End of message at unix time `now`.
    EomResult end_of_message(std::int64_t now);
    // The message is gone (abort, or the end of message was answered): forget it, keep
    // the connection.
    void abort();

    // The one log line for the message that just ended, "event=message ...". Valid after
    // end_of_message() (and after a MAIL/RCPT rejection) until the next message.
    const std::string& summary() const { return summary_; }

    // For tests and logs.
    const SourceInfo& source() const { return source_; }
    std::string macro(std::string_view name) const;

private:
    struct Message {
        std::string sender;
        std::vector<std::string> recipients;
        std::vector<std::string> trace_values;  // X-Original-Source values in order
        std::size_t result_count = 0;           // X-Original-Source-Result fields seen
        std::string message_id;
        bool message_id_seen = false;
        std::string hold;         // the first hold decision's "<address>: text"; empty: none
        std::string hold_reason;  // and its "policy:reason" for the log
    };

    SourceInfo build_source(std::int64_t now) const;
    PolicyInput policy_input(ProtocolState state) const;
    Reply policy_reply(const PolicyDecision& d) const;
    void note_hold(const PolicyDecision& d);
    Reply fail_reply(FailAction a, const char* why) const;
    EomResult inject(std::int64_t now);
    EomResult verify(std::int64_t now);
    void remove_all(std::vector<HeaderEdit>& edits, std::size_t keep_index) const;
    void set_summary(std::string_view outcome, std::string_view detail, const SourceInfo* original);

    std::shared_ptr<const Config> config_;
    std::optional<Endpoint> peer_;
    std::string hostname_;
    std::string helo_;
    std::map<std::string, std::string, std::less<>> conn_macros_;
    std::map<std::string, std::string, std::less<>> msg_macros_;
    Message msg_;
    SourceInfo source_;
    std::string summary_;
};

}  // namespace xproxy::milter
