// source.hpp: who the original client of a transaction is, and how it is announced to the
// downstream.
//
// SourceTracker holds the session's source: the TCP peer until a trusted upstream says
// otherwise. XCLIENT and XPROXYFROM replace the session's source (until the next such
// command); XFORWARD applies to the next transaction only and is forgotten when it ends
// (RSET, end of DATA), as in Postfix. An untrusted peer using any of the three gets
// 550 5.7.0 and nothing changes. The downstream side is described by an Encoding; 
// announce() builds the bytes to send and identity() the key that tells whether an open
// downstream connection may carry the next transaction.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "xproxy/source_info.hpp"
#include "xproxy/xclient.hpp"
#include "xproxy/xproxy_commands.hpp"

namespace xproxy::proxyd {

enum class Encoding { proxy_v2, proxy_v1, xclient, xforward, xproxyfrom, none };
std::optional<Encoding> parse_encoding(std::string_view text);
const char* to_string(Encoding e);

struct SourceVerdict {
    enum class Kind { accepted, need_more, refused, bad } kind = Kind::refused;
    std::string reply;  // the reply for refused / bad / need_more; empty for accepted
};

class SourceTracker {
public:
    SourceTracker(SourceInfo peer, bool trusted) : session_(std::move(peer)), peer_(session_), trusted_(trusted) {}

    bool trusted() const { return trusted_; }
    // One command line without CRLF. accepted: XCLIENT -> the session restarts (send a
    // new greeting), XFORWARD/XPROXYFROM -> "250 2.0.0 Ok".
    SourceVerdict xclient(std::string_view line);
    SourceVerdict xforward(std::string_view line);
    SourceVerdict xproxyfrom(std::string_view line);
    // The source for the next transaction: the session's, with XFORWARD on top.
    SourceInfo effective() const;
    // Forget the XFORWARD attributes (end of a transaction, RSET, EHLO).
    void end_transaction() {
        xforward_.reset();
    }
    // TLS of the front connection (after STARTTLS), kept only while the source is the
    // TCP peer itself.
    void set_peer_tls(const TlsInfo& tls);
    void set_peer_helo(const std::string& helo);
    bool overridden() const { return overridden_; }

private:
    SourceInfo session_;
    SourceInfo peer_;
    bool trusted_;
    bool overridden_ = false;
    std::optional<smtp::Xforward> xforward_;
    smtp::XproxyAccumulator xproxy_;
};

// The announcement for the downstream: a PROXY header (sent right after connect) or
// command lines (sent after EHLO). Command encodings restrict attributes to those the
// downstream advertised when `advertised` is given. error is set when `info` cannot be
// encoded (XPROXYFROM without a client address, an XCLIENT value Postfix would refuse).
struct Announcement {
    std::string header;              // PROXY v1/v2 bytes
    std::vector<std::string> lines;  // XCLIENT/XFORWARD/XPROXYFROM lines with CRLF
    std::string error;
};
Announcement announce(Encoding e, const SourceInfo& info, const smtp::Advertised& advertised = std::nullopt);

// Two transactions with the same identity may share a downstream connection. PROXY,
// XCLIENT and XPROXYFROM bind a connection to one source; XFORWARD and none do not
// (empty identity).
std::string identity(Encoding e, const SourceInfo& info);

}  // namespace xproxy::proxyd
