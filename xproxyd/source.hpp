// source.hpp: who the original client of a transaction is, and how it is announced to the
// downstream.
//
// SourceTracker holds the session's source: the TCP peer until a trusted upstream says
// otherwise. XCLIENT and XPROXYFROM replace the session's source (until the next such
// command); XFORWARD applies to the next transaction only and is forgotten when it ends
// (end of DATA, RSET, HELO/EHLO, STARTTLS, XCLIENT, XPROXYFROM), as in Postfix; the
// front-side STARTTLS forgets XCLIENT and XPROXYFROM too (RFC 3207 4.2). An
// untrusted peer using any of the three gets 550 5.7.0 and nothing changes. What a
// command does not say is never taken from another party: XCLIENT resets HELO, PROTO and
// LOGIN when it does not carry them (Postfix's xclient_cmd()), an XFORWARD that names
// the client replaces every client attribute (Postfix's "don't mix" rule), and TLS is
// announced only for the TCP peer itself: an upstream's STARTTLS with us describes the
// upstream, not the client it names. The session id is the upstream's when it gives one,
// else this session's own. The downstream side is described by an Encoding;
// announce() builds the bytes to send and identity() the key that tells whether an open
// downstream connection may carry the next transaction.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xproxy/base/source_info.hpp>
#include <xproxy/wire/xclient.hpp>
#include <xproxy/wire/xproxy_commands.hpp>

namespace xproxy::xproxyd {

// xproxy: the XPROXY command of the submission role (SID IP PORT DOMAIN LOGIN), after EHLO.
// automatic: XPROXY when the downstream offers it, else XCLIENT (decided after its EHLO; a
// PROXY header would have to be chosen before connecting).
enum class Encoding { proxy_v2, proxy_v1, xclient, xforward, xproxyfrom, xproxy, automatic, none };
std::optional<Encoding> parse_encoding(std::string_view text);
const char* to_string(Encoding e);

struct SourceVerdict {
    enum class Kind { accepted, need_more, refused, bad } kind = Kind::refused;
    std::string reply;  // the reply for refused / bad / need_more; empty for accepted
};

class SourceTracker {
public:
    // peer: the TCP peer as the source, with this session's own id.
    SourceTracker(SourceInfo peer, bool trusted)
        : session_(peer), peer_(peer), initial_(std::move(peer)), trusted_(trusted) {}

    bool trusted() const { return trusted_; }
    // One command line without CRLF. accepted: XCLIENT -> the session restarts (send a
    // new greeting), XFORWARD/XPROXYFROM -> "250 2.0.0 Ok".
    SourceVerdict xclient(std::string_view line);
    SourceVerdict xforward(std::string_view line);
    SourceVerdict xproxyfrom(std::string_view line);
    // The source for the next transaction: the session's, or XFORWARD's.
    SourceInfo effective() const;
    // Forget the XFORWARD attributes and an unfinished XPROXYFROM sequence (end of a
    // transaction, RSET).
    void end_transaction() {
        xforward_.reset();
        xproxy_.reset();
    }
    // An unfinished XPROXYFROM sequence (LAST=False) must be continued by the very next
    // command: any other command abandons it.
    void abandon_sequence() { xproxy_.reset(); }
    // HELO (esmtp false) or EHLO from the peer. It names the client when the source is the
    // peer itself, and after an XCLIENT that reset HELO (Postfix's helo_cmd()/ehlo_cmd()
    // then set HELO and PROTO); an XCLIENT's own HELO or an XPROXYFROM source stays.
    // Like any HELO/EHLO, it ends the transaction's XFORWARD.
    void ehlo(const std::string& name, bool esmtp);
    // TLS of the front connection (after STARTTLS). RFC 3207 4.2: everything learnt from
    // the client before the handshake is discarded, as Postfix resets its session: the
    // source is the TCP peer again (with this TLS, no HELO, protocol SMTP until EHLO), and
    // any XCLIENT, XPROXYFROM (finished or not) and XFORWARD is forgotten. Plain-text
    // commands may have been inserted by anyone on the path.
    void set_peer_tls(const TlsInfo& tls);
    // AUTH succeeded (the submission mode): the client is this SASL login, its protocol
    // ESMTPSA, until the connection ends.
    void authenticated(const std::string& login);
    bool overridden() const { return overridden_; }

private:
    SourceInfo session_;
    SourceInfo peer_;
    SourceInfo initial_;  // the TCP peer as the connection began
    bool trusted_;
    bool overridden_ = false;
    // After an XCLIENT without HELO / without PROTO, the next HELO/EHLO sets them.
    bool helo_from_ehlo_ = false;
    bool proto_from_ehlo_ = false;
    std::optional<smtp::Xforward> xforward_;
    smtp::XproxyAccumulator xproxy_;
};

// The announcement for the downstream: a PROXY header (sent right after connect) or
// command lines (sent after EHLO). Command encodings restrict attributes to those the
// downstream advertised when `advertised` is given. error is set when `info` cannot be
// encoded; an attribute an upstream may leave out never causes one: XPROXYFROM without a
// client address is not sent at all (the downstream sees xproxyd, as PROXY v1 UNKNOWN and
// v2 without addresses do), and an optional XPROXYFROM value it cannot carry (CR, LF,
// NUL, too long) is left out.
struct Announcement {
    std::string header;              // PROXY v1/v2 bytes
    std::vector<std::string> lines;  // XCLIENT/XFORWARD/XPROXYFROM lines with CRLF
    std::string error;
};
// A PROXY v2 header is signed when `sign` is given: TIME (now) and HMAC TLVs with this key
// (doc/wire-formats.md), which the downstream's shim verifies (XPROXY_HMAC_KEY_FILE).
struct ProxySigning {
    std::string_view key;
    std::uint8_t key_id = 1;
    std::int64_t now = 0;  // unix seconds
};
Announcement announce(Encoding e, const SourceInfo& info, const smtp::Advertised& advertised = std::nullopt,
                      const ProxySigning* sign = nullptr);

// Two transactions with the same identity may share a downstream connection (an
// unsigned announcement: a signature's time does not change who is announced). PROXY,
// XCLIENT and XPROXYFROM bind a connection to one source; XFORWARD and none do not
// (empty identity).
std::string identity(Encoding e, const SourceInfo& info);

}  // namespace xproxy::xproxyd
