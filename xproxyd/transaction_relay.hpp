// transaction_relay.hpp: the downstream half of a session's transactions. MAIL and RCPT
// are relayed one by one and the downstream's replies passed back as it wrote them. The
// downstream connection is opened lazily at the first MAIL, for the transaction's source
// identity: reused, parked for another session, re-announced (XCLIENT), or replaced by
// the next destination with MAIL and the recipients accepted so far replayed (failover
// before the client's final dot). When no destination takes MAIL the transaction is
// unrouted: MAIL and RCPT are answered 250 and DATA tries every destination once more.
//
// Owned by the Session, which checks each command's syntax and state before calling in;
// a DataRelay works on this object's downstream and transaction for DATA.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <xproxy/wire/smtp_command.hpp>
#include <xproxy/wire/xproxy_commands.hpp>

#include "downstream.hpp"
#include "front_side.hpp"
#include "session_shared.hpp"
#include "source.hpp"

namespace xproxy::xproxyd {

struct Transaction {
    bool active = false;
    smtp::PathArg mail;
    smtp::MailParams params;
    std::string mail_line;                // as sent downstream
    std::vector<std::string> rcpt_lines;  // accepted downstream, for replay on failover
    unsigned rcpts = 0;                   // RCPT commands seen
    // No destination could take MAIL: MAIL and RCPT are answered 250 without a downstream,
    // DATA tries every destination once more (replaying MAIL and RCPT) and answers 451
    // when none takes it, so the upstream keeps the message queued (doc/design.md, "No destination at MAIL").
    bool unrouted = false;
    SourceInfo source;
    // The outbound mode (destinations=mx): the egress chosen at MAIL (none without
    // pools), the domain whose MX hosts the downstream was opened for at the first
    // accepted recipient, and the other domains found to share the connected host.
    const Egress* egress = nullptr;
    std::string pool;
    std::string route_domain;
    std::vector<std::string> same_route;
    // " pool=P egress=E source=ADDR" in every log line of an outbound transaction.
    std::string tag;
};

class TransactionRelay {
public:
    // sid: the session's id (for log lines), set before the first command.
    // pool: the egress pool of the listener (outbound mode with --pool), else none.
    TransactionRelay(FrontSide& front, Shared& sh, const DownstreamConfig& dcfg, const std::string& sid,
                     std::optional<std::size_t> pool = std::nullopt)
        : front_(front),
          cfg_(sh.cfg),
          sh_(sh),
          sid_(sid),
          ds_(front.conn().socket().get_executor(), dcfg, sh.client_tls_for(dcfg)),
          pool_(pool) {}

    // MAIL with a checked syntax, outside a transaction: the downstream for `source`, then
    // MAIL there; the reply goes to the client.
    asio::awaitable<void> mail(const smtp::PathArg& from, const smtp::MailParams& params, SourceInfo source);
    // RCPT with a checked syntax, inside a transaction.
    asio::awaitable<void> rcpt(const std::string& path);
    // RSET for a transaction open downstream (the session answers the client).
    asio::awaitable<void> rset();
    // Forgets the transaction (its end, RSET, HELO/EHLO).
    void reset() { txn_ = Transaction{}; }
    // Re-establishes the transaction (MAIL and every accepted RCPT) on the first
    // destination from `start` on that accepts all of it.
    asio::awaitable<bool> restore(std::size_t start);
    // Parks a clean downstream connection for another session, or says QUIT.
    asio::awaitable<void> release_downstream();
    // The body is kept for failover: no --stream-through-if condition holds.
    bool fast_path() const;
    // One more transaction reached the end of its DATA: its number in this session.
    unsigned count_transaction() { return ++count_; }
    unsigned transactions() const { return count_; }

    const Transaction& transaction() const { return txn_; }
    Downstream& downstream() { return ds_; }
    const Downstream& downstream() const { return ds_; }

    // The outbound mode: destinations are the MX hosts of the recipients' domain.
    bool outbound() const { return ds_.config().mx; }
    // XPROXYTO (the outbound mode, from a trusted source MTA): connects to the first of its
    // destinations that takes EHLO and the TLS asked, from an egress of the pool of RISK=
    // (else the listener's), and answers DESTINATIONLEFT= and the target's EHLO options;
    // the session's transactions go there from then on. 451 when none takes it, 501 for
    // contradictory or unknown settings (nothing changes then).
    asio::awaitable<void> xproxyto(const smtp::XproxyTo& x);
    // The front side's STARTTLS: what XPROXYTO set in plain text (where anyone on the path
    // could have sent it) is forgotten, its connection closed.
    asio::awaitable<void> forget_route();

private:
    asio::awaitable<bool> open_from(std::size_t start, const SourceInfo& src, bool& reused);
    // The outbound mode's MAIL (no connection yet: the egress is chosen) and RCPT (the
    // first accepted recipient's domain decides where the transaction goes; a recipient
    // whose domain goes elsewhere gets 452, to be sent in another transaction).
    void mail_outbound();
    asio::awaitable<void> rcpt_outbound(const std::string& path, const std::string& line);
    // Opens the transaction at the MX hosts of `domain` (MAIL included). false: the
    // client has its reply for this recipient.
    // The first recipient of a transaction, sent with MAIL when the target pipelines.
    struct FirstRcpt {
        std::string line;
        std::optional<Reply> reply;  // set when it went with MAIL and MAIL was taken
    };
    asio::awaitable<bool> route_to(const std::string& domain, const MxResult& mx, FirstRcpt* first);
    // MAIL on the open destination for the transaction (the refusals of
    // refuse_for_downstream first). false: the client has its reply for this recipient.
    asio::awaitable<bool> open_transaction(const std::string& domain, FirstRcpt* first = nullptr);
    // RCPT on the transaction's destination (or its reply, when it went with MAIL), with
    // failover to the next destination when the connection is lost; the reply goes to the
    // client and an accepted recipient is kept for replay.
    asio::awaitable<void> send_rcpt(const std::string& line, std::optional<Reply> early);
    // The key of a parked outbound connection: its egress and MX host.
    std::string outbound_identity(const Destination& d) const;
    // A parked connection to one of the route's destinations, from this egress, taken over.
    bool adopt_parked();
    // After XPROXYTO with DomainValidation, or REQUIRETLS: each recipient domain must be
    // named by the destination's certificate (XPROXYTO names no host).
    bool needs_name() const;
    // The certificate of the open destination names every accepted recipient's domain.
    bool names_verified_for_all() const;
    // The egress pool of an XPROXYTO's RISK= (empty: the listener's); nullopt: unknown.
    std::optional<std::optional<std::size_t>> pool_for(const std::string& risk) const;
    // The reply for a recipient whose domain could not be resolved; nullopt when it can.
    std::optional<std::string> lookup_failure(const std::string& domain, const MxResult& mx) const;
    asio::awaitable<Reply> send_mail();

    FrontSide& front_;
    const Config& cfg_;
    Shared& sh_;
    const std::string& sid_;
    Downstream ds_;
    Transaction txn_;
    unsigned count_ = 0;
    std::optional<std::size_t> pool_;
    const Egress* session_egress_ = nullptr;  // drawn from the listener's pool at the first MAIL
    bool tls_refused_ = false;                // open_from(): a destination failed for want of TLS
    // After XPROXYTO: the destination is the source's choice, not the MX hosts.
    bool xproxyto_ = false;
    const Egress* bound_egress_ = nullptr;
    std::string bound_pool_;
    bool domain_check_ = false;  // TLSAUTHLEVEL=DomainValidation: each recipient domain in the certificate
};

}  // namespace xproxy::xproxyd
