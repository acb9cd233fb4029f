// smtp_injector.hpp: one deposited message into the local MTA over SMTP, announcing the
// HTTPS client with XCLIENT (doc/deposit.md, "Injection").
//
// inject() connects (inet:HOST:PORT, inet6:[ADDR]:PORT or unix:PATH), reads the greeting,
// EHLO, requires XCLIENT in the EHLO reply (a server that does not offer it, whose
// XCLIENT lacks ADDR, PORT or LOGIN, or that refuses it, is a temporary failure: the
// client would be taken for us), sends XCLIENT with ADDR, PORT, NAME=[UNAVAILABLE], HELO,
// PROTO=ESMTP and LOGIN=identity (encode_xclient), EHLO again with the client's HELO or
// address literal, then MAIL FROM (SIZE= when offered, BODY=8BITMIME for an 8-bit message
// when offered), one RCPT per recipient (pipelined with MAIL when offered), DATA, the trace
// header line and the message (every line end written CRLF, a lone CR included; dot-
// stuffed; a final CRLF added when the message lacks one), ".", QUIT (not waited for).
// All-or-nothing: any recipient refused aborts the transaction (RSET, QUIT) and nothing
// is sent. The outcome is the MTA's own reply: the final-dot reply on success (queue id
// taken from "queued as ID"), else the first refusal (5xx to MAIL, RCPT, DATA or the dot
// is permanent, everything else temporary). Connection failures, timeouts and garbled
// replies are temporary with code 0 and a text of ours. A request whose addresses would
// break the command lines (control bytes, angle brackets) or that has no recipient is
// refused before connecting (permfail, code 0).
//
// Promises: never throws on any reply; every read and write has a deadline; a reply
// line longer than 2048 bytes or a reply of more than 100 lines is a temporary failure;
// result text is printable ASCII of at most 512 bytes (the MTA's reply, or ours) and the
// queue id letters, digits, '.', '-', '_' (at most 64), so both can be logged and put
// in JSON as they are. The message is not copied when already in wire form, else once.
#pragma once

#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include <xproxy/base/source_info.hpp>

namespace xproxy::depositd {

struct InjectorConfig {
    std::string mta = "inet:127.0.0.1:25";  // inet:HOST:PORT, inet6:[ADDR]:PORT or unix:PATH
    std::string helo_name;                  // our EHLO name (default: the host name)
    std::chrono::seconds connect_timeout{10};
    std::chrono::seconds command_timeout{60};  // each reply (RFC 5321 4.5.3.2 spirit)
    std::chrono::seconds data_timeout{600};    // the final-dot reply
};

struct InjectRequest {
    SourceInfo source;                    // client ip/port (the HTTPS client), helo, login = the identity
    std::string sender;                   // envelope sender ("" = null sender)
    std::vector<std::string> recipients;  // at least one
    std::string trace_header;             // "X-Original-Source: ...\r\n" (folded), prepended
    std::string_view message;             // the deposited bytes (LF or CRLF line ends)
};

enum class InjectOutcome { accepted, tempfail, permfail };

struct InjectResult {
    InjectOutcome outcome = InjectOutcome::tempfail;
    int code = 0;          // the deciding SMTP reply code (0: none, e.g. connect failed)
    std::string enhanced;  // "4.7.1" when the reply had one
    std::string text;      // the reply text (lines joined with " "), or why we failed
    std::string stage;     // "connect", "greeting", "ehlo", "xclient", "mail", "rcpt", "data", "dot"
    std::string queue_id;  // on accepted, from "queued as ID" ("" if none)
};

class SmtpInjector {
public:
    explicit SmtpInjector(InjectorConfig config) : config_(std::move(config)) {}
    boost::asio::awaitable<InjectResult> inject(boost::asio::any_io_executor ex, const InjectRequest& request) const;
    const InjectorConfig& config() const { return config_; }

private:
    InjectorConfig config_;
};

}  // namespace xproxy::depositd
