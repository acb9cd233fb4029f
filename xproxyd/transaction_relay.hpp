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
#include <string>
#include <vector>

#include <xproxy/wire/smtp_command.hpp>

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
};

class TransactionRelay {
public:
    // sid: the session's id (for log lines), set before the first command.
    TransactionRelay(FrontSide& front, Shared& sh, const DownstreamConfig& dcfg, const std::string& sid)
        : front_(front),
          cfg_(sh.cfg),
          sh_(sh),
          sid_(sid),
          ds_(front.conn().socket().get_executor(), dcfg, sh.client_tls_for(dcfg)) {}

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

private:
    asio::awaitable<bool> open_from(std::size_t start, const SourceInfo& src, bool& reused);
    asio::awaitable<Reply> send_mail();

    FrontSide& front_;
    const Config& cfg_;
    Shared& sh_;
    const std::string& sid_;
    Downstream ds_;
    Transaction txn_;
    unsigned count_ = 0;
};

}  // namespace xproxy::xproxyd
