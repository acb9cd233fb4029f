// data_relay.cpp: DATA, the body relay, the fast path and failover; see data_relay.hpp.
#include "data_relay.hpp"
#include "relay_metrics.hpp"

#include <cstring>
#include <vector>

#include <xproxy/base/escape.hpp>
#include <xproxy/base/invariant.hpp>
#include <xproxy/daemon/log.hpp>

namespace xproxy::xproxyd {

using asio::awaitable;

namespace {
// Body reads: one IoBlock of 64 KiB. A read's decoded form goes to a second IoBlock and
// from there to the body copy and the downstream; the block's last bytes are room for
// what decoding adds to a canonical read and for the final dot.
constexpr std::size_t kBodyRead = 65536;
constexpr std::size_t kDot = 3;  // ".\r\n"
static_assert(IoBlock::kSize >= kBodyRead + smtp::DataDecoder::kMaxExpansion + kDot);
}  // namespace

DataRelay::DataRelay(FrontSide& front, TransactionRelay& relay, Shared& sh, const std::string& sid)
    : front_(front),
      relay_(relay),
      ds_(relay.downstream()),
      cfg_(sh.cfg),
      sh_(sh),
      sid_(sid),
      fast_(relay.fast_path()),
      early_(ds_.connected() && !relay.transaction().unrouted) {}

awaitable<bool> DataRelay::run() {
    const Transaction& txn = relay_.transaction();
    XPROXY_INVARIANT(txn.active && !txn.rcpt_lines.empty());  // the DATA row's flags
    if (early_) {
        data_sent_ = co_await ds_.send("DATA\r\n");
    } else if (!co_await start_late()) {
        co_return true;  // answered: 451, or the downstream's refusal of DATA
    }
    front_.reply("354 End data with <CR><LF>.<CR><LF>");
    if (!co_await front_.flush()) co_return false;
    if (early_) co_await read_early_answer();
    if (fast_) buf_.emplace(cfg_.fast_path_threshold, cfg_.spool_dir, &sh_.spill);
    XPROXY_INVARIANT(!ds_ok_ || ds_.connected());  // a body goes only to a downstream that took DATA
    if (!co_await receive_body()) co_return false;
    if (too_big_) {
        refuse_too_big();
        co_return true;
    }
    Reply fin = co_await final_reply();
    if (fin.failed() && buf_ && !buf_->failed()) fin = co_await fail_over(fin);
    answer(fin);
    co_return true;
}

// No early DATA: DATA goes down first and 354 up only once a destination has taken it.
// false: the client has its answer (451, or the downstream's refusal) and no body follows.
awaitable<bool> DataRelay::start_late() {
    Reply r;
    if (ds_.connected()) r = co_await ds_.command("DATA\r\n");
    if (r.failed() && (fast_ || relay_.transaction().unrouted)) r = co_await data_anywhere();
    if (r.failed()) {
        ds_.close();
        front_.reply("451 4.4.1 Error: downstream unavailable, try again later");
        co_return false;
    }
    if (r.code != 354) {
        front_.relay(r);
        co_return false;
    }
    XPROXY_INVARIANT(ds_.connected());
    co_return true;
}

// MAIL, RCPT and DATA on the next destination that takes them (no body byte has gone
// anywhere yet); a failed Reply when none does.
awaitable<Reply> DataRelay::data_anywhere() {
    Reply r;
    std::size_t next = ds_.connected() ? ds_.index() + 1 : 0;
    ds_.close();
    while (r.failed() && co_await relay_.restore(next)) {
        next = ds_.index() + 1;
        r = co_await ds_.command("DATA\r\n");
        if (r.failed()) ds_.close();
    }
    co_return r;
}

// The downstream's answer to the DATA sent before our 354: anything but 354 means the
// body goes nowhere; a 4xx/5xx becomes the reply to the client's final dot.
awaitable<void> DataRelay::read_early_answer() {
    Reply d;  // not a conditional expression: GCC 12 mishandles co_await inside one
    if (data_sent_) d = co_await ds_.reply();
    else d.error = "write failed";
    if (d.code == 354) co_return;
    ds_ok_ = false;
    if (d.code >= 400) {
        refused_ = std::move(d);
    } else {  // lost, or an answer that is no answer to DATA: the connection is unusable
        log::warning("event=downstream_lost sid=%s destination=%s stage=DATA error=\"%s\"", sid_.c_str(),
                     ds_.where().c_str(), escape_value(d.failed() ? d.error : d.wire(), 120).c_str());
    }
}

// Up to the client's end of data: each piece decoded, kept (fast path) and sent down, the
// final dot with the last piece. false: the client is gone or timed out.
awaitable<bool> DataRelay::receive_body() {
    IoBlock in, out;
    Input pending{in.data(), 0, 0};
    error_code ec;
    while (!dec_.done()) {
        std::size_t n = 0;
        if (!co_await decode_next(pending, out.data(), n, ec)) {
            co_await abort_body(ec);
            co_return false;
        }
        const std::string_view piece(out.data(), n);
        if (cfg_.max_message_size && dec_.size() > cfg_.max_message_size) too_big_ = true;
        keep_copy(piece);
        if (dec_.done() && ds_ok_ && !too_big_) {
            std::memcpy(out.data() + n, ".\r\n", kDot);  // the last piece and the final dot in one write
            n += kDot;
            dot_sent_ = true;
        }
        co_await forward(std::string_view(out.data(), n));
    }
    front_.conn().compact();
    co_return true;
}

// The next piece of the body through the decoder into `out` (n bytes): from what the
// connection has buffered (pipelined with DATA), else from what is left of the last read,
// else from a new read; bytes after the end of data (pipelined commands) go back to the
// connection's line buffer.
awaitable<bool> DataRelay::decode_next(Input& in, char* out, std::size_t& n, error_code& ec) {
    const std::size_t room = IoBlock::kSize - kDot;
    Conn& conn = front_.conn();
    if (const std::string_view buffered = conn.peek(); !buffered.empty()) {
        conn.consume(dec_.feed(buffered.data(), buffered.size(), out, room, n));
        co_return true;
    }
    if (in.pos == in.end) {
        in.pos = 0;
        in.end = co_await conn.read_some(in.data, kBodyRead, cfg_.client_timeout, ec);
        if (ec) co_return false;
    }
    in.pos += dec_.feed(in.data + in.pos, in.end - in.pos, out, room, n);
    XPROXY_INVARIANT(in.pos <= in.end);
    if (dec_.done() && in.pos < in.end) {
        conn.unread(std::string_view(in.data + in.pos, in.end - in.pos));
        in.pos = in.end;
    }
    co_return true;
}

// The client is gone or stalled: no final dot goes downstream, so nothing is delivered;
// the client never saw a 250 either.
awaitable<void> DataRelay::abort_body(error_code ec) {
    log::warning("event=data_aborted sid=%s reason=\"%s\" bytes=%llu", sid_.c_str(),
                 ec == asio::error::timed_out ? "client timeout" : "client disconnected",
                 static_cast<unsigned long long>(dec_.size()));
    if (ec == asio::error::timed_out) {
        front_.reply("421 4.4.2 " + cfg_.hostname + " Error: timeout exceeded");
        co_await front_.flush();
    }
    ds_.close();
}

// The fast path's copy. Over the spill quota the message is refused like an oversized
// one (no final dot goes downstream), with a 452 the client retries.
void DataRelay::keep_copy(std::string_view chunk) {
    if (chunk.empty() || too_big_ || !buf_ || buf_->failed()) return;
    std::string err;
    if (!buf_->append(chunk, &err)) log::warning("event=spill_failed sid=%s error=\"%s\"", sid_.c_str(), err.c_str());
    if (buf_->over_quota()) too_big_ = true;
}

awaitable<void> DataRelay::forward(std::string_view chunk) {
    if (chunk.empty() || too_big_ || !ds_ok_) co_return;
    const bool sent = co_await ds_.send(chunk);
    if (!sent) {
        ds_ok_ = false;
        log::warning("event=downstream_lost sid=%s destination=%s stage=DATA", sid_.c_str(), ds_.where().c_str());
    }
}

void DataRelay::refuse_too_big() {
    ds_.close();  // no final dot: the downstream discards the partial message
    if (buf_ && buf_->over_quota()) {
        log::warning("event=spill_quota sid=%s size=%llu quota=%llu", sid_.c_str(),
                     static_cast<unsigned long long>(dec_.size()), static_cast<unsigned long long>(sh_.spill.limit()));
        // The buffer (and its share of the quota) goes with this DataRelay.
        front_.reply("452 4.3.1 Error: insufficient system storage, try again later");
        return;
    }
    front_.reply("552 5.3.4 Error: message file too big");
}

// The downstream's reply to our final dot (sent now unless it went with the last piece),
// or its refusal of DATA; a failed Reply when the destination is lost.
awaitable<Reply> DataRelay::final_reply() {
    metrics::Timer timer(final_reply_seconds());
    Reply fin;
    if (refused_) fin = *refused_;
    else if (ds_ok_ && (dot_sent_ || co_await ds_.send(".\r\n"))) fin = co_await ds_.reply();
    co_return fin;
}

// The destination failed before its final reply: the next ones get MAIL, RCPT, DATA and
// the body from the fast path's copy, until one answers the final dot.
awaitable<Reply> DataRelay::fail_over(Reply fin) {
    XPROXY_INVARIANT(buf_ && !buf_->failed());
    std::size_t next = ds_.index() + 1;
    log::warning("event=downstream_lost sid=%s destination=%s stage=end-of-data error=\"%s\"", sid_.c_str(),
                 ds_.where().c_str(), escape_value(fin.error, 120).c_str());
    ds_.close();
    while (fin.failed() && co_await relay_.restore(next)) {
        next = ds_.index() + 1;
        failed_over_ = true;
        Reply d = co_await ds_.command("DATA\r\n");
        if (d.code != 354) {
            ds_.close();
            continue;
        }
        const bool ok = co_await replay_body();
        if (ok && co_await ds_.send(".\r\n")) fin = co_await ds_.reply();
        if (fin.failed()) ds_.close();
    }
    co_return fin;
}

// The body copy, as it was sent to the failed destination (without the final dot).
awaitable<bool> DataRelay::replay_body() {
    std::vector<char> tmp(65536);
    std::uint64_t off = 0;
    while (off < buf_->size()) {
        long n = buf_->read_at(off, tmp.data(), tmp.size());
        if (n <= 0) co_return false;
        if (!co_await ds_.send(std::string_view(tmp.data(), static_cast<std::size_t>(n)))) co_return false;
        off += static_cast<std::uint64_t>(n);
    }
    co_return true;
}

// The reply to the client's final dot: the downstream's, or 451 when no destination
// answered it.
void DataRelay::answer(const Reply& fin) {
    count_reply(RelayStage::data, fin);
    const bool spilled = buf_ && buf_->spilled();
    if (buf_) buf_->clear();
    const unsigned txn = relay_.count_transaction();
    const Transaction& t = relay_.transaction();
    if (fin.failed()) {
        ds_.close();
        front_.reply("451 4.4.2 Error: downstream failed during DATA, try again later");
        log::warning("event=deferred sid=%s txn=%u client=%s size=%llu fast_path=%s body_in=data body_out=data%s",
                     sid_.c_str(), txn, endpoint_text(t.source.client).c_str(),
                     static_cast<unsigned long long>(dec_.size()), fast_ ? "yes" : "no", t.tag.c_str());
        return;
    }
    ds_.dirty = refused_.has_value();  // after a refused DATA the downstream still holds MAIL and RCPT
    front_.relay(fin);
    if (fin.ok()) sh_.count_relayed(t.egress);
    if (!log::enabled(log::Level::info)) return;  // the line's values cost more than the rest of this
    log::info(
        "event=relayed sid=%s txn=%u client=%s destination=%s code=%d size=%llu fast_path=%s spilled=%s "
        "failover=%s body_in=data body_out=data%s",
        sid_.c_str(), txn, endpoint_text(t.source.client).c_str(), ds_.where().c_str(), fin.code,
        static_cast<unsigned long long>(dec_.size()), fast_ ? "yes" : "no", spilled ? "yes" : "no",
        failed_over_ ? "yes" : "no", t.tag.c_str());
}

}  // namespace xproxy::xproxyd
