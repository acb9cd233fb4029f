// transaction_relay.cpp: MAIL, RCPT and RSET relayed to the downstream, and the
// downstream connection itself; see transaction_relay.hpp.
#include "transaction_relay.hpp"
#include "relay_metrics.hpp"

#include <algorithm>
#include <random>

#include <xproxy/base/escape.hpp>
#include <xproxy/base/invariant.hpp>
#include <xproxy/base/text.hpp>
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
    // Outbound connections are parked by egress and MX host (outbound_identity); those
    // XPROXYTO opened carry its TLS and HELO choices and are not.
    if (sh_.pool.enabled() && !xproxyto_) {
        if (auto pc = ds_.detach(sh_.pool.keeps_live())) {
            sh_.pool.put(ds_.config().name, std::move(*pc));
            co_return;
        }
    }
    if (outbound()) {
        ds_.quit_later();  // the next MX host need not wait for this one's 221
        co_return;
    }
    co_await ds_.quit();
}

std::string TransactionRelay::outbound_identity(const Destination& d) const {
    return (txn_.egress ? txn_.egress->name : std::string()) + "|" + d.to_string();
}

bool TransactionRelay::adopt_parked() {
    for (std::size_t i = 0; i < ds_.destinations().size(); ++i) {
        auto pc = sh_.pool.take(ds_.config().name, outbound_identity(ds_.destinations()[i]));
        count_pool_lookup(pc.has_value());
        if (!pc) continue;
        std::vector<Destination> dests = ds_.destinations();
        if (!ds_.adopt(std::move(*pc))) return false;
        ds_.retarget(std::move(dests), i);
        log::debug("event=downstream_reuse sid=%s destination=%s%s", sid_.c_str(), ds_.where().c_str(),
                   txn_.tag.c_str());
        return true;
    }
    return false;
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
    if (start == 0 && sh_.pool.enabled() && !outbound()) {
        auto pc = sh_.pool.take(ds_.config().name, id);
        count_pool_lookup(pc.has_value());
        if (pc && ds_.adopt(std::move(*pc))) {
            log::debug("event=downstream_reuse sid=%s destination=%s", sid_.c_str(), ds_.where().c_str());
            reused = true;
            co_return true;
        }
    }
    const auto& dests = ds_.destinations();
    tls_refused_ = false;
    for (std::size_t i = start; i < dests.size(); ++i) {
        std::string why;
        const std::string mx = dests[i].name.empty() ? std::string() : " mx=" + dests[i].name;
        // A local, not a temporary, across the suspension (GCC 12 destroys some twice).
        const std::string dest_id = outbound() ? outbound_identity(dests[i]) : id;
        if (co_await ds_.open(i, src, dest_id, why)) {
            if (log::enabled(log::Level::info))
                log::info("event=downstream_open sid=%s destination=%s%s encoding=%s tls=%s verified=%s signed=%s%s",
                          sid_.c_str(), dests[i].to_string().c_str(), mx.c_str(), to_string(ds_.config().encoding),
                          ds_.tls() ? "yes" : "no", ds_.tls_verified() ? "yes" : "no",
                          ds_.config().hmac_key ? "yes" : "no", txn_.tag.c_str());
            co_return true;
        }
        log::warning("event=downstream_failed sid=%s destination=%s%s error=\"%s\"%s", sid_.c_str(),
                     dests[i].to_string().c_str(), mx.c_str(), escape_value(why, 200).c_str(), txn_.tag.c_str());
        tls_refused_ = tls_refused_ || ds_.tls_failed();
        if (ds_.bind_failed()) break;  // the same for every destination: never another source address
    }
    co_return false;
}

awaitable<Reply> TransactionRelay::send_mail() {
    std::string why;
    Reply r = co_await ds_.mail(txn_.source, txn_.mail_line, why);
    count_reply(RelayStage::mail, r);
    if (!why.empty())
        log::warning("event=downstream_failed sid=%s destination=%s error=\"%s\"", sid_.c_str(), ds_.where().c_str(),
                     escape_value(why, 200).c_str());
    if (r.ok()) ds_.dirty = true;
    co_return r;
}

// Re-establishes the current transaction (MAIL and every accepted RCPT) on the first
// destination from `start` on that accepts all of it.
awaitable<bool> TransactionRelay::restore(std::size_t start) {
    const std::size_t n = ds_.destinations().size();
    while (start < n) {
        bool reused = false;
        if (!co_await open_from(start, txn_.source, reused)) co_return false;
        start = ds_.index() + 1;
        if (smtp::refuse_for_downstream(txn_.params, ds_.ehlo(), ds_.tls_verified())) continue;
        if (!names_verified_for_all()) {  // XPROXYTO DomainValidation or REQUIRETLS: every domain, here too
            log::warning(
                "event=failover_refused sid=%s destination=%s reason=\"certificate does not name every "
                "recipient domain\"%s",
                sid_.c_str(), ds_.where().c_str(), txn_.tag.c_str());
            ds_.close();
            continue;
        }
        txn_.mail_line = smtp::downstream_mail_line(txn_.mail, txn_.params, ds_.ehlo());
        Reply r = co_await send_mail();
        bool ok = r.ok();
        for (std::size_t i = 0; ok && i < txn_.rcpt_lines.size(); ++i)
            ok = (co_await ds_.command(txn_.rcpt_lines[i])).ok();
        if (ok) {
            count_failover(true);
            log::info("event=failover sid=%s destination=%s%s", sid_.c_str(), ds_.where().c_str(), txn_.tag.c_str());
            co_return true;
        }
        count_failover(false);
        log::warning("event=failover_refused sid=%s destination=%s%s", sid_.c_str(), ds_.where().c_str(),
                     txn_.tag.c_str());
        ds_.close();
    }
    co_return false;
}

awaitable<void> TransactionRelay::mail(const smtp::PathArg& from, const smtp::MailParams& params, SourceInfo source) {
    XPROXY_INVARIANT(!txn_.active);
    txn_.mail = from;
    txn_.params = params;
    txn_.source = std::move(source);
    if (outbound()) {
        mail_outbound();
        co_return;
    }
    std::size_t start = 0;
    bool retried_stale = false;
    for (;;) {
        bool reused = false;
        if (!co_await open_from(start, txn_.source, reused)) {
            count_unrouted();
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
    if (outbound()) {
        // A source route (RFC 5321 4.1.1.3: "SHOULD ignore") would let the target relay
        // elsewhere than the domain checked here: dropped.
        const std::string p = path.front() == '@' && path.find(':') != std::string::npos
                                  ? path.substr(path.find(':') + 1)
                                  : path;
        co_await rcpt_outbound(p, "RCPT TO:<" + p + ">\r\n");
        co_return;
    }
    std::string line = "RCPT TO:<" + path + ">\r\n";
    if (txn_.unrouted) {  // checked by the destination that takes the message at DATA
        txn_.rcpt_lines.push_back(line);
        front_.reply("250 2.1.5 Ok");
        co_return;
    }
    co_await send_rcpt(line, std::nullopt);
}

awaitable<void> TransactionRelay::send_rcpt(const std::string& line, std::optional<Reply> early) {
    if (!ds_.connected() && !co_await restore(0)) {
        front_.reply("451 4.4.1 Error: no downstream destination available, try again later");
        co_return;
    }
    Reply r;
    if (early) r = std::move(*early);  // no co_await in a conditional expression (GCC 12)
    else r = co_await ds_.command(line);
    if (r.failed()) {
        log::warning("event=downstream_lost sid=%s destination=%s stage=RCPT error=\"%s\"%s", sid_.c_str(),
                     ds_.where().c_str(), escape_value(r.error, 120).c_str(), txn_.tag.c_str());
        std::size_t next = ds_.index() + 1;
        ds_.close();
        if (co_await restore(next)) r = co_await ds_.command(line);
    }
    count_reply(RelayStage::rcpt, r);
    if (r.failed()) {
        ds_.close();
        front_.reply("451 4.4.1 Error: downstream unavailable, try again later");
        co_return;
    }
    if (r.ok()) txn_.rcpt_lines.push_back(line);
    front_.relay(r);
}

namespace {

std::uint64_t egress_draw() {
    thread_local std::mt19937_64 engine{std::random_device{}()};
    return engine();
}

// The domain of a recipient path, lower case ("" without one: a bare "postmaster").
std::string recipient_domain(const std::string& path) {
    const auto at = path.rfind('@');
    if (at == std::string::npos) return {};
    return to_lower(std::string_view(path).substr(at + 1));
}

// " pool=P egress=E source=ADDR", the part of every log line of an outbound transaction
// that says where it leaves from; empty without an egress.
std::string egress_tag(const std::string& pool, const Egress* egress) {
    if (!egress) return {};
    return " pool=" + pool + " egress=" + egress->name + " source=" + egress->address.to_string();
}

}  // namespace

void TransactionRelay::mail_outbound() {
    if (xproxyto_ && !ds_.connected()) {
        front_.reply("451 4.4.2 Error: the XPROXYTO destination was lost, send XPROXYTO again");
        return;
    }
    if (xproxyto_) {
        txn_.egress = bound_egress_;
        txn_.pool = bound_pool_;
    } else if (pool_) {
        // One draw per session: its transactions share the egress, and so the connections
        // to MX hosts they can keep or find parked.
        const EgressPool& p = cfg_.pools[*pool_];
        if (!session_egress_) session_egress_ = &cfg_.egresses[choose_egress(p, egress_draw())];
        txn_.egress = session_egress_;
        txn_.pool = p.risk;
    }
    txn_.tag = egress_tag(txn_.pool, txn_.egress);
    txn_.active = true;
    log::info("event=mail sid=%s from=<%s>%s", sid_.c_str(), escape_value(txn_.mail.path, 256).c_str(),
              txn_.tag.c_str());
    front_.reply("250 2.1.0 Ok");
}

std::optional<std::string> TransactionRelay::lookup_failure(const std::string& domain, const MxResult& mx) const {
    const std::string d = escape_value(domain, 256);
    switch (mx.status) {
        case MxStatus::ok: return std::nullopt;
        case MxStatus::invalid_domain: return "550 5.1.2 Error: bad recipient domain";
        case MxStatus::no_such_domain: return "550 5.1.2 Error: domain " + d + " does not exist";
        case MxStatus::null_mx: return "556 5.1.10 Error: domain " + d + " does not accept mail (null MX)";
        case MxStatus::no_address: return "550 5.4.4 Error: no usable address for the mail exchangers of " + d;
        case MxStatus::temporary:
            return "451 4.4.3 Error: cannot find the mail exchangers of " + d + " now, try again later";
    }
    XPROXY_UNREACHABLE();
}

awaitable<bool> TransactionRelay::route_to(const std::string& domain, const MxResult& mx, FirstRcpt* first) {
    std::vector<Destination> dests;
    for (const auto& m : mx.destinations)
        dests.push_back(Destination{m.address.to_string(), ds_.config().mx_port, mx.literal ? std::string() : m.host});
    // A clean connection of an earlier transaction to one of these hosts from the same
    // egress is used again (Postfix's relayhost sends message after message this way).
    RouteTls tls;
    if (txn_.params.requiretls) tls.mode = TlsMode::verify;
    std::optional<std::size_t> keep;
    if (ds_.connected() && !ds_.dirty && txn_.egress == ds_.egress()) {
        for (std::size_t i = 0; i < dests.size() && !keep; ++i)
            if (dests[i].host == ds_.destination().host && dests[i].port == ds_.destination().port) keep = i;
        // REQUIRETLS: verified for this MX host's name, whatever the earlier transaction asked.
        if (keep && txn_.params.requiretls && !(ds_.tls_verified() && ds_.peer_matches(dests[*keep].name)))
            keep.reset();
    }
    if (keep) {
        ds_.retarget(std::move(dests), *keep, tls);
    } else {
        co_await release_downstream();
        ds_.route(std::move(dests), txn_.egress, tls);
        bool reused = false;
        // A parked connection is plain TCP: only where TLS is not required.
        const bool parked = sh_.pool.enabled() && !tls.mode && ds_.config().tls == TlsMode::may && adopt_parked();
        if (!parked && !co_await open_from(0, txn_.source, reused)) {
            const std::string d = escape_value(domain, 256);
            front_.reply(
                ds_.bind_failed() ? "451 4.4.0 Error: the egress address cannot be used now, try again later"
                : tls_refused_
                    ? "451 4.7.5 Error: no mail exchanger of " + d + " offered the TLS required (" +
                          (txn_.params.requiretls ? "REQUIRETLS" : "tls=" + std::string(to_string(ds_.config().tls))) +
                          "), try again later"
                    : "451 4.4.1 Error: no mail exchanger of " + d + " reachable now, try again later");
            co_return false;
        }
    }
    const bool opened = co_await open_transaction(domain, first);
    co_return opened;
}

awaitable<bool> TransactionRelay::open_transaction(const std::string& domain, FirstRcpt* first) {
    if (ds_.dirty) {  // a refused DATA left MAIL and RCPT there
        if (Reply r = co_await ds_.command("RSET\r\n"); r.ok()) {
            ds_.dirty = false;
        } else {
            ds_.close();
            front_.reply("451 4.4.2 Error: the destination was lost, try again later");
            co_return false;
        }
    }
    if (auto refusal = smtp::refuse_for_downstream(txn_.params, ds_.ehlo(), ds_.tls_verified())) {
        log::info("event=refused sid=%s destination=%s reason=\"%s\"%s", sid_.c_str(), ds_.where().c_str(),
                  refusal->c_str(), txn_.tag.c_str());
        front_.reply(*refusal);
        co_return false;
    }
    txn_.mail_line = smtp::downstream_mail_line(txn_.mail, txn_.params, ds_.ehlo());
    Reply r;
    if (first && ds_.ehlo().has("PIPELINING")) {
        // MAIL and the first RCPT in one write (RFC 2920): one round trip per transaction less.
        const std::string batch = txn_.mail_line + first->line;
        if (co_await ds_.send(batch)) {
            r = co_await ds_.reply();
            count_reply(RelayStage::mail, r);
            if (!r.failed()) first->reply = co_await ds_.reply();
        } else {
            r = Reply{0, {}, "write failed"};
        }
        if (r.ok()) ds_.dirty = true;
    } else {
        r = co_await send_mail();
    }
    if (!r.ok()) {
        // The target's answer to MAIL is this recipient's: the client said MAIL to xproxyd.
        log::info("event=mail_refused sid=%s destination=%s reply=\"%s\"%s", sid_.c_str(), ds_.where().c_str(),
                  escape_value(r.failed() ? r.error : std::to_string(r.code), 120).c_str(), txn_.tag.c_str());
        if (r.failed())
            front_.reply("451 4.4.2 Error: the destination of " + escape_value(domain, 256) +
                         " was lost, try again later");
        else front_.relay(r);
        ds_.close();
        co_return false;
    }
    txn_.route_domain = domain;
    co_return true;
}

awaitable<void> TransactionRelay::rcpt_outbound(const std::string& path, const std::string& line) {
    FirstRcpt first{line, std::nullopt};
    const std::string domain = recipient_domain(path);
    if (domain.empty()) {
        front_.reply("550 5.1.3 Error: recipient without a domain");
        co_return;
    }
    XPROXY_INVARIANT(sh_.mx != nullptr);
    if (xproxyto_) {
        // The source chose the destination: every recipient goes there.
        if (needs_name() && !check_domain_name(domain)) {
            front_.reply("550 5.1.2 Error: bad recipient domain");
            co_return;
        }
        if (needs_name() && !ds_.peer_matches(domain)) {
            log::info("event=certificate_mismatch sid=%s destination=%s domain=%s%s", sid_.c_str(),
                      ds_.connected() ? ds_.where().c_str() : "none", escape_value(domain, 256).c_str(),
                      txn_.tag.c_str());
            front_.reply("451 4.7.5 Error: the destination's certificate is not valid for " +
                         escape_value(domain, 256) +
                         (domain_check_ ? " (TLSAUTHLEVEL=DomainValidation)" : " (REQUIRETLS)"));
            co_return;
        }
        if (txn_.route_domain.empty()) {
            if (!ds_.connected()) {
                front_.reply("451 4.4.2 Error: the XPROXYTO destination was lost, send XPROXYTO again");
                co_return;
            }
            if (!co_await open_transaction(domain, &first)) co_return;
        }
    } else if (txn_.route_domain.empty()) {
        MxResult mx = co_await sh_.mx->lookup(domain);
        if (auto failure = lookup_failure(domain, mx)) {
            log::info("event=mx_failed sid=%s domain=%s status=%s why=\"%s\"%s", sid_.c_str(),
                      escape_value(domain, 256).c_str(), std::string(to_string(mx.status)).c_str(),
                      escape_value(mx.why, 300).c_str(), txn_.tag.c_str());
            front_.reply(*failure);
            co_return;
        }
        if (!co_await route_to(domain, mx, &first)) co_return;
    } else if (domain != txn_.route_domain &&
               std::find(txn_.same_route.begin(), txn_.same_route.end(), domain) == txn_.same_route.end()) {
        MxResult mx = co_await sh_.mx->lookup(domain);
        if (auto failure = lookup_failure(domain, mx)) {
            front_.reply(*failure);
            co_return;
        }
        // The transaction's destinations become those this domain shares with it, so a
        // failover never takes its recipients to a host that is not their MX. REQUIRETLS
        // checks one MX host name: another domain goes in its own transaction.
        // Those already tried (before the connected one) are left out.
        std::vector<Destination> shared;
        bool same = false;  // the connected destination is among this domain's MX hosts
        if (ds_.connected() && !txn_.params.requiretls) {
            for (std::size_t i = ds_.index(); i < ds_.destinations().size(); ++i) {
                const Destination& d = ds_.destinations()[i];
                bool in = false;
                for (const auto& m : mx.destinations) in = in || m.address.to_string() == d.host;
                if (!in) continue;
                same = same || i == ds_.index();
                shared.push_back(d);
            }
        }
        if (same) ds_.retarget(std::move(shared), 0);  // the connected one comes first
        if (!same) {
            // Another destination: not in this transaction. 452 keeps the recipient with the
            // client, which sends it in a later transaction (RFC 5321 4.5.3.1.10).
            log::info("event=other_destination sid=%s domain=%s first=%s%s", sid_.c_str(),
                      escape_value(domain, 256).c_str(), escape_value(txn_.route_domain, 256).c_str(),
                      txn_.tag.c_str());
            front_.reply("452 4.5.3 Error: recipients of another destination go in another transaction");
            co_return;
        }
        if (txn_.same_route.size() < 100) txn_.same_route.push_back(domain);
    }
    co_await send_rcpt(line, std::move(first.reply));
}

awaitable<void> TransactionRelay::rset() {
    if ((txn_.active || ds_.dirty) && ds_.connected()) {
        Reply r = co_await ds_.command("RSET\r\n");
        if (r.ok()) ds_.dirty = false;
        else ds_.close();
    }
}

}  // namespace xproxy::xproxyd

namespace xproxy::xproxyd {

bool TransactionRelay::needs_name() const { return xproxyto_ && (domain_check_ || txn_.params.requiretls); }

bool TransactionRelay::names_verified_for_all() const {
    if (!needs_name()) return true;
    for (const auto& line : txn_.rcpt_lines) {
        const auto lt = line.find('<'), gt = line.rfind('>');
        if (lt == std::string::npos || gt == std::string::npos || gt < lt) return false;
        if (!ds_.peer_matches(recipient_domain(line.substr(lt + 1, gt - lt - 1)))) return false;
    }
    return true;
}

awaitable<void> TransactionRelay::forget_route() {
    if (!xproxyto_) co_return;
    co_await release_downstream();
    xproxyto_ = false;
    bound_egress_ = nullptr;
    bound_pool_.clear();
    domain_check_ = false;
}

std::optional<std::optional<std::size_t>> TransactionRelay::pool_for(const std::string& risk) const {
    if (risk.empty()) return pool_;
    for (std::size_t i = 0; i < cfg_.pools.size(); ++i)
        if (iequals(cfg_.pools[i].risk, risk)) return std::optional<std::size_t>(i);
    return std::nullopt;
}

namespace {

// The TLS an XPROXYTO asks for; an error text when its settings contradict each other.
Expected<std::pair<RouteTls, bool>> xproxyto_tls(const smtp::XproxyTo& x) {
    RouteTls t;
    t.force_helo = x.force_helo;
    bool domain_check = false;
    const std::string& level = x.tls_auth_level;
    if (level.empty()) {
    } else if (iequals(level, "EncryptionOnly")) {
        t.mode = TlsMode::encrypt;
    } else if (iequals(level, "CertificateValidation") || iequals(level, "DomainValidation")) {
        t.mode = TlsMode::verify;
        t.chain_only = true;  // XPROXYTO names addresses only: the chain here, a name per recipient domain
        domain_check = iequals(level, "DomainValidation");
    } else {
        return Failure{
            "501 5.5.4 Error: unknown TLSAUTHLEVEL (EncryptionOnly, CertificateValidation or "
            "DomainValidation)"};
    }
    if (x.require_tls && (!t.mode || *t.mode == TlsMode::encrypt)) {
        t.mode = TlsMode::verify;  // REQUIRETLS=True: at least a valid chain
        t.chain_only = true;
    }
    if ((x.should_skip_tls || x.force_helo) && t.mode)
        return Failure{"501 5.5.4 Error: SHOULDSKIPTLS or FORCEHELO contradict REQUIRETLS or TLSAUTHLEVEL"};
    if (x.should_skip_tls || x.force_helo) t.mode = TlsMode::none;
    return std::make_pair(t, domain_check);
}

// The target's EHLO keywords a source may use through xproxyd: not what belongs to the
// hop between xproxyd and the target (STARTTLS, AUTH, source announcements).
std::vector<std::string> passable_options(const std::vector<std::string>& lines) {
    std::vector<std::string> out;
    for (const auto& l : lines) {
        const std::string_view kw = std::string_view(l).substr(0, l.find(' '));
        bool drop = false;
        for (const char* no : {"STARTTLS", "AUTH", "XCLIENT", "XFORWARD", "XPROXYFROM", "XPROXY", "XPROXYTO"})
            drop = drop || iequals(kw, no);
        drop = drop || istarts_with(l, "DESTINATIONLEFT=");
        // Room is kept for the DESTINATIONLEFT lines (64 IPv6 destinations take 7).
        if (!drop && !l.empty() && l.size() < smtp::kMaxReplyLine - 8 && out.size() + 10 < smtp::kMaxReplyLines)
            out.push_back(l);
    }
    return out;
}

}  // namespace

awaitable<void> TransactionRelay::xproxyto(const smtp::XproxyTo& x) {
    XPROXY_INVARIANT(!txn_.active);
    if (x.port == 0) {
        front_.reply("501 5.5.4 Error: bad XPROXYTO: PORT=0");
        co_return;
    }
    auto tls = xproxyto_tls(x);
    if (!tls) {
        front_.reply(tls.error());
        co_return;
    }
    const auto pool = pool_for(x.risk);
    if (!pool) {
        log::warning("event=xproxyto_refused sid=%s risk=\"%s\" reason=\"no pool for this risk class\"", sid_.c_str(),
                     escape_value(x.risk, 64).c_str());
        front_.reply("451 4.3.5 Error: no egress pool for RISK=" + escape_value(x.risk, 64));
        co_return;
    }
    const Egress* egress = nullptr;
    std::string pool_name;
    if (*pool) {
        const EgressPool& p = cfg_.pools[**pool];
        egress = &cfg_.egresses[choose_egress(p, egress_draw())];
        pool_name = p.risk;
    }
    std::vector<Destination> dests;
    std::string refused;
    for (const auto& a : x.destinations) {
        if (auto why = refused_destination(cfg_.dns.refused, a)) {
            refused += (refused.empty() ? "" : "; ") + *why;
            continue;
        }
        dests.push_back(Destination{a.to_string(), x.port, std::string()});
    }
    co_await release_downstream();
    xproxyto_ = true;
    bound_egress_ = egress;
    bound_pool_ = pool_name;
    domain_check_ = tls->second;
    txn_.tag = egress_tag(pool_name, egress);
    if (log::enabled(log::Level::info))
        log::info("event=xproxyto sid=%s source_session=\"%s\" destinations=%zu port=%u risk=\"%s\" tls=%s%s%s",
                  sid_.c_str(), escape_value(x.session_id, 64).c_str(), x.destinations.size(), x.port,
                  escape_value(x.risk, 64).c_str(), to_string(tls->first.mode.value_or(ds_.config().tls)),
                  refused.empty() ? "" : (" refused=\"" + escape_value(refused, 300) + "\"").c_str(), txn_.tag.c_str());
    const std::size_t total = dests.size();
    ds_.route(std::move(dests), egress, tls->first);
    bool reused = false;
    const bool ok = total > 0 && co_await open_from(0, txn_.source, reused);
    const std::string tag = std::move(txn_.tag);
    txn_.tag.clear();
    if (!ok) {
        front_.reply(ds_.bind_failed() ? "451 4.4.0 Error: the egress address cannot be used now, try again later"
                     : tls_refused_    ? "451 4.7.5 Error: no XPROXYTO destination offered the TLS required"
                                       : "451 4.4.1 Error: no XPROXYTO destination could be reached");
        co_return;
    }
    smtp::DestinationLeft left;
    for (std::size_t i = 0; i < x.destinations.size(); ++i) {
        // The destinations after the one connected, in the source's order.
        bool after = false;
        for (std::size_t j = ds_.index() + 1; j < ds_.destinations().size() && !after; ++j)
            after = ds_.destinations()[j].host == x.destinations[i].to_string();
        if (after) left.left.push_back(x.destinations[i]);
    }
    left.options = passable_options(ds_.ehlo_lines());
    const smtp::Encoded enc = smtp::encode(left);
    if (!enc) {  // never answer half a reply
        log::warning("event=xproxyto_failed sid=%s destination=%s error=\"%s\"", sid_.c_str(), ds_.where().c_str(),
                     escape_value(enc.error, 200).c_str());
        front_.reply("451 4.3.0 Error: the target's EHLO reply cannot be passed on");
        ds_.close();
        co_return;
    }
    for (const auto& l : enc.lines) front_.reply(std::string_view(l).substr(0, l.size() - 2));
    log::info("event=xproxyto_connected sid=%s destination=%s left=%zu%s", sid_.c_str(), ds_.where().c_str(),
              left.left.size(), tag.c_str());
}

}  // namespace xproxy::xproxyd
