// transaction_relay.cpp: MAIL, RCPT and RSET relayed to the downstream, and the
// downstream connection itself; see transaction_relay.hpp.
#include "transaction_relay.hpp"

#include <xproxy/base/escape.hpp>
#include <xproxy/base/invariant.hpp>
#include <xproxy/daemon/log.hpp>

namespace xproxy::xproxyd {

using asio::awaitable;

bool TransactionRelay::fast_path() const {
    for (const auto& c : cfg_.stream_through) {
        switch (c.kind) {
            case StreamThroughCondition::Kind::always: return false;
            case StreamThroughCondition::Kind::size_over:
                if (txn_.params.size > c.size) return false;
                break;
            case StreamThroughCondition::Kind::client:
                if (txn_.source.client && c.cidr->contains(txn_.source.client->addr)) return false;
                break;
        }
    }
    return true;
}

awaitable<void> TransactionRelay::release_downstream() {
    if (!ds_.connected()) co_return;
    if (sh_.pool.enabled()) {
        if (auto pc = ds_.detach(sh_.pool.keeps_live())) {
            sh_.pool.put(ds_.config().name, std::move(*pc));
            co_return;
        }
    }
    co_await ds_.quit();
}

awaitable<bool> TransactionRelay::open_from(std::size_t start, const SourceInfo& src, bool& reused) {
    std::string id = identity(ds_.config().encoding, src);
    reused = false;
    if (ds_.connected() && start == 0 && ds_.identity() == id) {
        if (ds_.dirty) {
            Reply r = co_await ds_.command("RSET\r\n");
            if (r.ok()) {
                ds_.dirty = false;
                reused = true;
                co_return true;
            }
            ds_.close();
        } else {
            reused = true;
            co_return true;
        }
    }
    if (ds_.connected() && start == 0 && ds_.config().encoding == Encoding::xclient && !ds_.dirty) {
        // XCLIENT may announce the next client on the same connection, if the downstream
        // still authorizes us after the previous XCLIENT; otherwise a new connection.
        std::string why;
        if (co_await ds_.reannounce(src, id, why)) {
            log::info("event=downstream_reannounce sid=%s destination=%s", sid_.c_str(), ds_.where().c_str());
            reused = true;
            co_return true;
        }
        log::info("event=reannounce_refused sid=%s error=\"%s\"", sid_.c_str(), escape_value(why, 200).c_str());
    }
    co_await release_downstream();
    if (start == 0 && sh_.pool.enabled()) {
        if (auto pc = sh_.pool.take(ds_.config().name, id); pc && ds_.adopt(std::move(*pc))) {
            log::debug("event=downstream_reuse sid=%s destination=%s", sid_.c_str(), ds_.where().c_str());
            reused = true;
            co_return true;
        }
    }
    const auto& dests = ds_.config().destinations;
    for (std::size_t i = start; i < dests.size(); ++i) {
        std::string why;
        if (co_await ds_.open(i, src, id, why)) {
            if (log::enabled(log::Level::info))
                log::info("event=downstream_open sid=%s destination=%s encoding=%s tls=%s verified=%s signed=%s",
                          sid_.c_str(), dests[i].to_string().c_str(), to_string(ds_.config().encoding),
                          ds_.tls() ? "yes" : "no", ds_.tls_verified() ? "yes" : "no",
                          ds_.config().hmac_key ? "yes" : "no");
            co_return true;
        }
        log::warning("event=downstream_failed sid=%s destination=%s error=\"%s\"", sid_.c_str(),
                     dests[i].to_string().c_str(), escape_value(why, 200).c_str());
    }
    co_return false;
}

awaitable<Reply> TransactionRelay::send_mail() {
    std::string why;
    Reply r = co_await ds_.mail(txn_.source, txn_.mail_line, why);
    if (!why.empty())
        log::warning("event=downstream_failed sid=%s destination=%s error=\"%s\"", sid_.c_str(), ds_.where().c_str(),
                     escape_value(why, 200).c_str());
    if (r.ok()) ds_.dirty = true;
    co_return r;
}

// Re-establishes the current transaction (MAIL and every accepted RCPT) on the first
// destination from `start` on that accepts all of it.
awaitable<bool> TransactionRelay::restore(std::size_t start) {
    const std::size_t n = ds_.config().destinations.size();
    while (start < n) {
        bool reused = false;
        if (!co_await open_from(start, txn_.source, reused)) co_return false;
        start = ds_.index() + 1;
        if (smtp::refuse_for_downstream(txn_.params, ds_.ehlo(), ds_.tls_verified())) continue;
        txn_.mail_line = smtp::downstream_mail_line(txn_.mail, txn_.params, ds_.ehlo());
        Reply r = co_await send_mail();
        bool ok = r.ok();
        for (std::size_t i = 0; ok && i < txn_.rcpt_lines.size(); ++i)
            ok = (co_await ds_.command(txn_.rcpt_lines[i])).ok();
        if (ok) {
            log::info("event=failover sid=%s destination=%s", sid_.c_str(), ds_.where().c_str());
            co_return true;
        }
        log::warning("event=failover_refused sid=%s destination=%s", sid_.c_str(), ds_.where().c_str());
        ds_.close();
    }
    co_return false;
}

awaitable<void> TransactionRelay::mail(const smtp::PathArg& from, const smtp::MailParams& params, SourceInfo source) {
    XPROXY_INVARIANT(!txn_.active);
    txn_.mail = from;
    txn_.params = params;
    txn_.source = std::move(source);
    std::size_t start = 0;
    bool retried_stale = false;
    for (;;) {
        bool reused = false;
        if (!co_await open_from(start, txn_.source, reused)) {
            log::warning("event=unrouted sid=%s stage=MAIL detail=\"no destination available, 451 at DATA\"",
                         sid_.c_str());
            txn_.active = true;
            txn_.unrouted = true;
            front_.reply("250 2.1.0 Ok");
            co_return;
        }
        if (auto refusal = smtp::refuse_for_downstream(txn_.params, ds_.ehlo(), ds_.tls_verified())) {
            log::info("event=refused sid=%s reason=\"%s\"", sid_.c_str(), refusal->c_str());
            front_.reply(*refusal);
            co_return;
        }
        txn_.mail_line = smtp::downstream_mail_line(txn_.mail, txn_.params, ds_.ehlo());
        Reply r = co_await send_mail();
        if (!r.failed()) {
            front_.relay(r);
            if (r.ok()) txn_.active = true;
            co_return;
        }
        log::warning("event=downstream_lost sid=%s destination=%s stage=MAIL error=\"%s\"", sid_.c_str(),
                     ds_.where().c_str(), escape_value(r.error, 120).c_str());
        // A cached connection may simply have timed out: one fresh try at the same place.
        if (reused && !retried_stale) {
            retried_stale = true;
        } else {
            start = ds_.index() + 1;
        }
        ds_.close();
    }
}

awaitable<void> TransactionRelay::rcpt(const std::string& path) {
    XPROXY_INVARIANT(txn_.active);
    if (++txn_.rcpts > cfg_.max_recipients) {
        front_.reply("452 4.5.3 Error: too many recipients");
        co_return;
    }
    std::string line = "RCPT TO:<" + path + ">\r\n";
    if (txn_.unrouted) {  // checked by the destination that takes the message at DATA
        txn_.rcpt_lines.push_back(line);
        front_.reply("250 2.1.5 Ok");
        co_return;
    }
    if (!ds_.connected() && !co_await restore(0)) {
        front_.reply("451 4.4.1 Error: no downstream destination available, try again later");
        co_return;
    }
    Reply r = co_await ds_.command(line);
    if (r.failed()) {
        log::warning("event=downstream_lost sid=%s destination=%s stage=RCPT error=\"%s\"", sid_.c_str(),
                     ds_.where().c_str(), escape_value(r.error, 120).c_str());
        std::size_t next = ds_.index() + 1;
        ds_.close();
        if (co_await restore(next)) r = co_await ds_.command(line);
    }
    if (r.failed()) {
        ds_.close();
        front_.reply("451 4.4.1 Error: downstream unavailable, try again later");
        co_return;
    }
    if (r.ok()) txn_.rcpt_lines.push_back(line);
    front_.relay(r);
}

awaitable<void> TransactionRelay::rset() {
    if (txn_.active && ds_.connected()) {
        Reply r = co_await ds_.command("RSET\r\n");
        if (r.ok()) ds_.dirty = false;
        else ds_.close();
    }
}

}  // namespace xproxy::xproxyd
