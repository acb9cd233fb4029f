// bdat_relay.cpp: BDAT chunks relayed as BDAT or as DATA, the fast path's copy and
// failover; see bdat_relay.hpp.
#include "bdat_relay.hpp"
#include "relay_metrics.hpp"

#include <algorithm>
#include <cstring>

#include <xproxy/base/escape.hpp>
#include <xproxy/base/invariant.hpp>
#include <xproxy/daemon/log.hpp>

namespace xproxy::xproxyd {

using asio::awaitable;

namespace {

constexpr std::size_t kRead = 65536;
static_assert(IoBlock::kSize >= kRead);

Reply ok_reply() {
    Reply r;
    r.code = 250;
    r.lines = {"2.0.0 Ok"};
    return r;
}

Reply own_reply(int code, const char* text) {
    Reply r;
    r.code = code;
    r.lines = {text};
    return r;
}

// The next piece of a chunk, at most `left` bytes: from what the connection holds after
// the command line (pipelined), else from one read, which never reads past the chunk.
awaitable<std::size_t> read_piece(Conn& conn, char* p, std::uint64_t left, Seconds timeout, error_code& ec) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(kRead, left));
    if (const std::string_view b = conn.peek(); !b.empty()) {
        const std::size_t n = std::min(want, b.size());
        std::memcpy(p, b.data(), n);
        conn.consume(n);
        co_return n;
    }
    const std::size_t n = co_await conn.read_some(p, want, timeout, ec);
    if (n == 0 && !ec) ec = asio::error::eof;
    co_return n;
}

// The client is gone or stalled inside a chunk.
awaitable<void> client_lost(FrontSide& front, const Config& cfg, error_code ec) {
    if (ec != asio::error::timed_out) co_return;
    front.reply("421 4.4.2 " + cfg.hostname + " Error: timeout exceeded");
    co_await front.flush();
}

}  // namespace

awaitable<bool> skip_chunk(FrontSide& front, const Config& cfg, std::uint64_t size) {
    IoBlock in;
    error_code ec;
    while (size > 0) {
        const std::size_t n = co_await read_piece(front.conn(), in.data(), size, cfg.client_timeout, ec);
        if (ec) {
            co_await client_lost(front, cfg, ec);
            co_return false;
        }
        size -= n;
    }
    front.conn().compact();
    co_return true;
}

BdatRelay::BdatRelay(FrontSide& front, TransactionRelay& relay, Shared& sh, const std::string& sid)
    : front_(front),
      relay_(relay),
      ds_(relay.downstream()),
      cfg_(sh.cfg),
      sh_(sh),
      sid_(sid),
      fast_(relay.fast_path()) {
    if (fast_) buf_.emplace(cfg_.fast_path_threshold, cfg_.spool_dir, &sh_.spill);
}

BdatRelay::~BdatRelay() { abandon_downstream(); }

void BdatRelay::abandon_downstream() {
    if (open_) ds_.close();  // inside DATA: no final dot, the partial message is discarded
    open_ = false;
}

std::string BdatRelay::header(std::uint64_t size, bool last) const {
    return "BDAT " + std::to_string(size) + (last ? " LAST\r\n" : "\r\n");
}

awaitable<bool> BdatRelay::chunk(std::uint64_t size, bool last) {
    XPROXY_INVARIANT(!done_);
    ++chunks_;
    const std::uint64_t max = cfg_.max_message_size;
    if (!refused_ && max && size > max - size_) {  // size_ <= max: checked for every chunk before
        if (!co_await skip_chunk(front_, cfg_, size)) co_return false;
        too_big(size);
        co_return true;
    }
    if (!refused_ && !started_) {
        started_ = true;
        co_await start();
    }
    if (refused_) {  // read and dropped; answered as Postfix's smtpd answers after an error
        if (!co_await skip_chunk(front_, cfg_, size)) co_return false;
        if (refusal_told_) {
            const int code = refused_->code;
            front_.reply(std::to_string(code) + " " + std::to_string(code / 100) + ".0.0 Discarded " +
                         std::to_string(size) + " bytes after earlier error");
        } else {
            front_.relay(*refused_);
            refusal_told_ = true;
        }
        if (last) {
            done_ = true;
            log::info(
                "event=not_relayed sid=%s txn=%u client=%s code=%d size=%llu body_in=bdat body_out=%s chunks=%llu",
                sid_.c_str(), relay_.count_transaction(), endpoint_text(relay_.transaction().source.client).c_str(),
                refused_->code, static_cast<unsigned long long>(size_), mode_ == Mode::bdat ? "bdat" : "data",
                static_cast<unsigned long long>(chunks_));
        }
        co_return true;
    }
    if (!co_await receive(size, last)) co_return false;
    if (buf_ && buf_->over_quota()) {
        log::warning("event=spill_quota sid=%s size=%llu quota=%llu", sid_.c_str(),
                     static_cast<unsigned long long>(size_), static_cast<unsigned long long>(sh_.spill.limit()));
        ds_.close();  // no last chunk, no final dot: the downstream discards the partial message
        open_ = false;
        buf_->clear();
        front_.reply("452 4.3.1 Error: insufficient system storage, try again later");
        done_ = true;
        co_return true;
    }
    Reply r = in_step(co_await chunk_reply(size, last));
    if (r.failed() && buf_ && !buf_->failed()) {
        log::warning("event=downstream_lost sid=%s destination=%s stage=BDAT error=\"%s\"", sid_.c_str(),
                     ds_.where().c_str(), escape_value(r.error, 120).c_str());
        const std::size_t next = ds_.index() + 1;
        ds_.close();
        open_ = false;
        r = co_await resume(next, last);
        if (!r.failed()) failed_over_ = true;
    }
    if (last) {
        answer_last(r);
        done_ = true;
        co_return true;
    }
    if (r.failed()) {
        ds_.close();
        open_ = false;
        log::warning("event=deferred sid=%s client=%s size=%llu body_in=bdat fast_path=%s", sid_.c_str(),
                     endpoint_text(relay_.transaction().source.client).c_str(), static_cast<unsigned long long>(size_),
                     fast_ ? "yes" : "no");
        r = own_reply(451, "4.4.2 Error: downstream failed during BDAT, try again later");
    }
    if (!r.ok()) {
        refuse(r);
        front_.relay(*refused_);
        refusal_told_ = true;
        co_return true;
    }
    front_.reply("250 2.0.0 Ok: " + std::to_string(size) + " bytes");
    co_return true;
}

// The first chunk: the destination that holds MAIL and RCPT gets the body as BDAT when it
// advertises CHUNKING, else DATA now; without one (unrouted, or lost since) the next that
// takes MAIL, RCPT (and DATA). A refusal, or no destination (451), answers every chunk.
// A reply to a chunk or to the end of the message that is neither 2xx nor a refusal
// (a 1xx or 3xx from a downstream out of step) counts as a lost destination.
Reply BdatRelay::in_step(Reply r) {
    if (!r.failed() && !r.ok() && r.code < 400) return Reply{0, {}, "unexpected reply " + std::to_string(r.code)};
    return r;
}

awaitable<void> BdatRelay::start() {
    std::size_t next = 0;
    if (ds_.connected() && !relay_.transaction().unrouted) {
        mode_ = ds_.ehlo().has("CHUNKING") ? Mode::bdat : Mode::data;
        if (mode_ == Mode::bdat) co_return;
        const Reply d = co_await ds_.command("DATA\r\n");
        if (d.code == 354) {
            open_ = true;
            co_return;
        }
        if (d.code >= 400) {
            ds_.dirty = true;  // still holds MAIL and RCPT
            refuse(d);
            co_return;
        }
        // Neither 354 nor a refusal (a 2xx, 3xx, or nothing): out of step, as the DATA path
        // treats it; never taken for an answer to the message.
        log::warning("event=downstream_lost sid=%s destination=%s stage=DATA error=\"%s\"", sid_.c_str(),
                     ds_.where().c_str(),
                     escape_value(d.failed() ? d.error : "unexpected reply " + std::to_string(d.code), 120).c_str());
        next = ds_.index() + 1;
    } else if (ds_.connected()) {
        next = ds_.index() + 1;
    }
    ds_.close();
    const Reply r = co_await resume(next, false);
    if (r.failed()) refuse(own_reply(451, "4.4.1 Error: downstream unavailable, try again later"));
    else if (!r.ok()) refuse(r);
}

// The transaction on the first destination from `next` on that takes it: MAIL and RCPT
// (TransactionRelay::restore), then DATA when it has no CHUNKING, then the body copy so
// far (as one BDAT, or in DATA's form; with `last` as the last chunk or with the final
// dot). Returns its answer to that, or 250 when nothing is to be answered yet, or a
// failed Reply when no destination is left.
awaitable<Reply> BdatRelay::resume(std::size_t next, bool last) {
    Reply r;
    while (r.failed() && co_await relay_.restore(next)) {
        next = ds_.index() + 1;
        mode_ = ds_.ehlo().has("CHUNKING") ? Mode::bdat : Mode::data;
        enc_.reset();
        open_ = false;
        if (mode_ == Mode::data) {
            Reply d = co_await ds_.command("DATA\r\n");
            if (d.code >= 400) {
                ds_.dirty = true;
                r = std::move(d);
                break;
            }
            if (d.code != 354) {  // lost, or out of step (a 2xx or 3xx to DATA): the next one
                ds_.close();
                continue;
            }
            open_ = true;
        }
        const std::uint64_t copied = buf_ ? buf_->size() : 0;
        if (mode_ == Mode::bdat && copied == 0 && !last) {
            r = ok_reply();
            break;
        }
        if (!co_await replay(last)) {
            ds_.close();
            open_ = false;
            continue;
        }
        if (mode_ == Mode::data && !last) {
            r = ok_reply();
            break;
        }
        r = in_step(co_await ds_.reply());
        if (r.failed()) ds_.close();
    }
    co_return r;
}

// The body copy to the destination resume() opened, as one BDAT or in DATA's form.
awaitable<bool> BdatRelay::replay(bool last) {
    const std::uint64_t total = buf_ ? buf_->size() : 0;
    out_.clear();
    if (mode_ == Mode::bdat) out_ = header(total, last);
    IoBlock tmp;
    std::uint64_t off = 0;
    while (off < total) {
        const long n = buf_->read_at(off, tmp.data(), kRead);
        if (n <= 0) co_return false;
        const std::string_view piece(tmp.data(), static_cast<std::size_t>(n));
        if (mode_ == Mode::bdat) out_.append(piece);
        else enc_.feed(piece, out_);
        if (!co_await ds_.send(out_)) co_return false;
        out_.clear();
        off += static_cast<std::uint64_t>(n);
    }
    if (mode_ == Mode::data && last) {
        enc_.finish(out_);
        out_ += ".\r\n";
        open_ = false;
    }
    bool ok = true;  // not a short-circuit expression: GCC 12 mishandles co_await inside one
    if (!out_.empty()) ok = co_await ds_.send(out_);
    out_.clear();
    co_return ok;
}

// One client chunk, read whole: kept (fast path) and sent down piece by piece, after its
// BDAT (bdat mode) or in DATA's form with the final dot after the last chunk (data mode).
// false: the client is gone or stalled; the downstream is closed without the rest.
awaitable<bool> BdatRelay::receive(std::uint64_t size, bool last) {
    ds_ok_ = ds_.connected();
    out_.clear();
    if (mode_ == Mode::bdat && (size > 0 || last)) out_ = header(size, last);
    IoBlock in;
    error_code ec;
    std::uint64_t left = size;
    while (left > 0) {
        const std::size_t n = co_await read_piece(front_.conn(), in.data(), left, cfg_.client_timeout, ec);
        if (ec) {
            log::warning("event=data_aborted sid=%s reason=\"%s\" bytes=%llu body_in=bdat", sid_.c_str(),
                         ec == asio::error::timed_out ? "client timeout" : "client disconnected",
                         static_cast<unsigned long long>(size_ + size - left));
            ds_.close();
            open_ = false;
            co_await client_lost(front_, cfg_, ec);
            co_return false;
        }
        left -= n;
        const std::string_view piece(in.data(), n);
        keep_copy(piece);
        if (mode_ == Mode::bdat && out_.empty()) {
            co_await forward(piece);
            continue;
        }
        if (mode_ == Mode::bdat) {
            out_.append(piece);
        } else {
            enc_.feed(piece, out_);
            if (left == 0 && last) {
                enc_.finish(out_);
                out_ += ".\r\n";
                open_ = false;
            }
        }
        co_await forward(out_);
        out_.clear();
    }
    size_ += size;
    if (mode_ == Mode::data && last && open_) {  // BDAT 0 LAST
        enc_.finish(out_);
        out_ += ".\r\n";
        open_ = false;
    }
    if (!out_.empty()) co_await forward(out_);  // a BDAT 0 LAST's header, or the final dot
    out_.clear();
    front_.conn().compact();
    co_return true;
}

void BdatRelay::keep_copy(std::string_view piece) {
    if (piece.empty() || !buf_ || buf_->failed() || buf_->over_quota()) return;
    std::string err;
    if (!buf_->append(piece, &err)) log::warning("event=spill_failed sid=%s error=\"%s\"", sid_.c_str(), err.c_str());
}

awaitable<void> BdatRelay::forward(std::string_view piece) {
    if (piece.empty() || !ds_ok_ || (buf_ && buf_->over_quota())) co_return;
    const bool sent = co_await ds_.send(piece);
    if (!sent) {
        ds_ok_ = false;
        log::warning("event=downstream_lost sid=%s destination=%s stage=BDAT", sid_.c_str(), ds_.where().c_str());
    }
}

// The downstream's answer to the chunk just sent: to its BDAT, or to the final dot after
// the last chunk in data mode (earlier chunks need none). Failed when it was lost.
awaitable<Reply> BdatRelay::chunk_reply(std::uint64_t size, bool last) {
    Reply r;
    if (!ds_ok_) co_return r;
    if ((mode_ == Mode::bdat && (size > 0 || last)) || (mode_ == Mode::data && last)) r = co_await ds_.reply();
    else r = ok_reply();
    if (r.failed()) ds_ok_ = false;
    co_return r;
}

void BdatRelay::refuse(const Reply& r) {
    if (r.code >= 500) log::info("event=refused sid=%s stage=BDAT code=%d", sid_.c_str(), r.code);
    // Only a 4xx or 5xx refuses; anything else would pass for an acceptance.
    refused_ = r.code >= 400 ? r : own_reply(451, "4.4.2 Error: downstream out of step, try again later");
}

void BdatRelay::too_big(std::uint64_t size) {
    log::warning("event=too_big sid=%s size=%llu chunk=%llu limit=%llu", sid_.c_str(),
                 static_cast<unsigned long long>(size_), static_cast<unsigned long long>(size),
                 static_cast<unsigned long long>(cfg_.max_message_size));
    abandon_downstream();
    ds_.dirty = ds_.dirty || started_;  // a BDAT downstream holds the chunks until RSET
    if (buf_) buf_->clear();
    front_.reply("552 5.3.4 Error: message file too big");
    done_ = true;
}

// The reply to BDAT LAST: the downstream's, or 451 when no destination answered it.
void BdatRelay::answer_last(const Reply& fin) {
    count_reply(mode_ == Mode::bdat ? RelayStage::bdat : RelayStage::data, fin);
    const bool spilled = buf_ && buf_->spilled();
    if (buf_) buf_->clear();
    const unsigned txn = relay_.count_transaction();
    const Transaction& t = relay_.transaction();
    const char* out = mode_ == Mode::bdat ? "bdat" : "data";
    if (fin.failed()) {
        ds_.close();
        open_ = false;
        front_.reply("451 4.4.2 Error: downstream failed during BDAT, try again later");
        log::warning("event=deferred sid=%s txn=%u client=%s size=%llu fast_path=%s body_in=bdat body_out=%s",
                     sid_.c_str(), txn, endpoint_text(t.source.client).c_str(), static_cast<unsigned long long>(size_),
                     fast_ ? "yes" : "no", out);
        return;
    }
    ds_.dirty = !fin.ok();
    front_.relay(fin);
    if (!log::enabled(log::Level::info)) return;
    log::info(
        "event=relayed sid=%s txn=%u client=%s destination=%s code=%d size=%llu fast_path=%s spilled=%s "
        "failover=%s body_in=bdat body_out=%s chunks=%llu",
        sid_.c_str(), txn, endpoint_text(t.source.client).c_str(), ds_.where().c_str(), fin.code,
        static_cast<unsigned long long>(size_), fast_ ? "yes" : "no", spilled ? "yes" : "no",
        failed_over_ ? "yes" : "no", out, static_cast<unsigned long long>(chunks_));
}

}  // namespace xproxy::xproxyd
