// data_relay.cpp: DATA. With a connected downstream, DATA goes down and 354 goes up at
// once, and the downstream's answer is read while the client sends its body (one round
// trip less on every message); a downstream that refuses DATA makes the body read and
// dropped, and its refusal is the reply to the final dot. Without a downstream (MAIL was
// answered unrouted) 354 waits until one has taken MAIL, RCPT and DATA. The body streams
// through the DataDecoder to the downstream and, on the fast path, into a BodyBuffer; the
// reply to the client's final dot is the downstream's reply to ours, or, when the
// destination failed before answering, the next destination's after a replay from the
// body copy, or 451 when none is left. Nothing is ever acknowledged that the downstream
// did not accept.
#include "session_impl.hpp"

namespace xproxy::xproxyd::session_detail {

awaitable<bool> Session::cmd_data() {
    if (!txn_.active) {
        reply("503 5.5.1 Error: need RCPT command");
        co_return true;
    }
    if (txn_.rcpt_lines.empty()) {
        reply("554 5.5.1 Error: no valid recipients");
        co_return true;
    }
    const bool fast = fast_path();
    const bool early = ds_.connected() && !txn_.unrouted;
    bool data_sent = false;
    if (early) {
        data_sent = co_await ds_.send("DATA\r\n");
    } else {
        Reply r;
        if (ds_.connected()) r = co_await ds_.command("DATA\r\n");
        if (r.failed() && (fast || txn_.unrouted)) {  // no body byte has gone anywhere yet
            std::size_t next = ds_.connected() ? ds_.index() + 1 : 0;
            ds_.close();
            while (r.failed() && co_await restore(next)) {
                next = ds_.index() + 1;
                r = co_await ds_.command("DATA\r\n");
                if (r.failed()) ds_.close();
            }
        }
        if (r.failed()) {
            ds_.close();
            reply("451 4.4.1 Error: downstream unavailable, try again later");
            end_transaction();
            co_return true;
        }
        if (r.code != 354) {
            out_ += r.wire();
            end_transaction();
            co_return true;
        }
    }
    reply("354 End data with <CR><LF>.<CR><LF>");
    if (!co_await flush()) co_return false;
    bool ds_ok = true;
    std::optional<Reply> refused;  // the downstream's 4xx/5xx to DATA: the final reply
    if (early) {
        Reply d;  // not a conditional expression: GCC 12 mishandles co_await inside one
        if (data_sent) d = co_await ds_.reply();
        else d.error = "write failed";
        if (d.code != 354) {
            ds_ok = false;
            if (d.code >= 400) {
                refused = std::move(d);
            } else {  // lost, or an answer that is no answer to DATA: the connection is unusable
                log::warning("event=downstream_lost sid=%s destination=%s stage=DATA error=\"%s\"", sid_.c_str(),
                             ds_.where().c_str(), escape_value(d.failed() ? d.error : d.wire(), 120).c_str());
            }
        }
    }

    smtp::DataDecoder dec;
    std::optional<BodyBuffer> buf;
    if (fast) buf.emplace(cfg_.fast_path_threshold, cfg_.spool_dir, &sh_.spill);
    bool too_big = false, dot_sent = false;
    std::string chunk;
    error_code ec;
    // Body reads go to a 64 KiB buffer that lives only for this transaction; what follows
    // the end of data (pipelined commands) goes back to the connection's line buffer.
    constexpr std::size_t kBodyRead = 65536;
    std::unique_ptr<char[]> rbuf(new char[kBodyRead]);
    while (!dec.done()) {
        const char* p = nullptr;
        std::size_t n = 0;
        bool from_line_buffer = conn_->in_pos < conn_->in.size();
        if (from_line_buffer) {
            p = conn_->in.data() + conn_->in_pos;
            n = conn_->in.size() - conn_->in_pos;
        } else {
            conn_->in.clear();
            conn_->in_pos = 0;
            n = co_await conn_->read_some(rbuf.get(), kBodyRead, cfg_.client_timeout, ec);
            if (ec) {
                // The client is gone or stalled: no final dot goes downstream, so nothing is
                // delivered; the client never saw a 250 either.
                log::warning("event=data_aborted sid=%s reason=\"%s\" bytes=%llu", sid_.c_str(),
                             ec == asio::error::timed_out ? "client timeout" : "client disconnected",
                             static_cast<unsigned long long>(dec.size()));
                if (ec == asio::error::timed_out) {
                    reply("421 4.4.2 " + cfg_.hostname + " Error: timeout exceeded");
                    co_await flush();
                }
                ds_.close();
                end_transaction();
                co_return false;
            }
            p = rbuf.get();
        }
        std::size_t used = dec.feed(p, n, chunk);
        if (from_line_buffer) {
            conn_->in_pos += used;
        } else if (used < n) {
            conn_->in.assign(p + used, n - used);
        }
        if (cfg_.max_message_size && dec.size() > cfg_.max_message_size) too_big = true;
        if (!chunk.empty() && !too_big && buf && !buf->failed()) {
            std::string err;
            if (!buf->append(chunk, &err))
                log::warning("event=spill_failed sid=%s error=\"%s\"", sid_.c_str(), err.c_str());
            // Over the spill quota: refused like an oversized message (no final dot goes
            // downstream), with a 452 the client retries.
            if (buf->over_quota()) too_big = true;
        }
        if (dec.done() && ds_ok && !too_big) {
            chunk += ".\r\n";  // the last piece and the final dot in one write
            dot_sent = true;
        }
        if (!chunk.empty() && !too_big) {
            if (ds_ok && !co_await ds_.send(chunk)) {
                ds_ok = false;
                log::warning("event=downstream_lost sid=%s destination=%s stage=DATA", sid_.c_str(),
                             ds_.where().c_str());
            }
        }
        chunk.clear();
    }
    conn_->compact();
    const std::uint64_t size = dec.size();
    if (too_big) {
        ds_.close();  // no final dot: the downstream discards the partial message
        if (buf && buf->over_quota()) {
            log::warning("event=spill_quota sid=%s size=%llu quota=%llu", sid_.c_str(),
                         static_cast<unsigned long long>(size), static_cast<unsigned long long>(sh_.spill.limit()));
            reply("452 4.3.1 Error: insufficient system storage, try again later");
            end_transaction();  // the buffer (and its share of the quota) goes with the frame
            co_return true;
        }
        reply("552 5.3.4 Error: message file too big");
        end_transaction();
        co_return true;
    }
    Reply fin;
    if (refused) fin = *refused;
    else if (ds_ok && (dot_sent || co_await ds_.send(".\r\n"))) fin = co_await ds_.reply();
    bool failed_over = false;
    if (fin.failed() && buf && !buf->failed()) {
        std::size_t next = ds_.index() + 1;
        log::warning("event=downstream_lost sid=%s destination=%s stage=end-of-data error=\"%s\"", sid_.c_str(),
                     ds_.where().c_str(), escape_value(fin.error, 120).c_str());
        ds_.close();
        while (fin.failed() && co_await restore(next)) {
            next = ds_.index() + 1;
            failed_over = true;
            Reply d = co_await ds_.command("DATA\r\n");
            if (d.code != 354) {
                ds_.close();
                continue;
            }
            std::vector<char> tmp(65536);
            std::uint64_t off = 0;
            bool ok = true;
            while (ok && off < buf->size()) {
                long n = buf->read_at(off, tmp.data(), tmp.size());
                if (n <= 0) {
                    ok = false;
                    break;
                }
                ok = co_await ds_.send(std::string_view(tmp.data(), static_cast<std::size_t>(n)));
                off += static_cast<std::uint64_t>(n);
            }
            if (ok && co_await ds_.send(".\r\n")) fin = co_await ds_.reply();
            if (fin.failed()) ds_.close();
        }
    }
    const bool spilled = buf && buf->spilled();
    if (buf) buf->clear();
    ++txn_count_;
    if (fin.failed()) {
        ds_.close();
        reply("451 4.4.2 Error: downstream failed during DATA, try again later");
        log::warning("event=deferred sid=%s txn=%u client=%s size=%llu fast_path=%s", sid_.c_str(), txn_count_,
                     endpoint_text(txn_.source.client).c_str(), static_cast<unsigned long long>(size),
                     fast ? "yes" : "no");
    } else {
        ds_.dirty = refused.has_value();  // after a refused DATA the downstream still holds MAIL and RCPT
        out_ += fin.wire();
        log::info("event=relayed sid=%s txn=%u client=%s destination=%s code=%d size=%llu fast_path=%s spilled=%s "
                  "failover=%s",
                  sid_.c_str(), txn_count_, endpoint_text(txn_.source.client).c_str(), ds_.where().c_str(), fin.code,
                  static_cast<unsigned long long>(size), fast ? "yes" : "no", spilled ? "yes" : "no",
                  failed_over ? "yes" : "no");
    }
    end_transaction();
    co_return true;
}

}  // namespace xproxy::xproxyd::session_detail
