// data_relay.hpp: one DATA command, from the client's DATA to the reply to its final dot.
//
// With a connected downstream, DATA goes down and 354 goes up at once, and the
// downstream's answer is read while the client sends its body (one round trip less on
// every message); a downstream that refuses DATA gets no body: the body is read and
// dropped, and the refusal is the reply to the final dot. Without one (MAIL was answered
// unrouted, or the destination was lost at RCPT) 354 waits until a destination has taken
// MAIL, RCPT and DATA (every destination is tried again when unrouted or with the fast
// path; otherwise 451). The body streams through the DataDecoder to the downstream and,
// on the fast path, into a BodyBuffer; the reply to the client's final dot is the
// downstream's reply to ours, or, when the destination failed before answering, the next
// destination's after a replay from the body copy, or 451 when none is left. Nothing is
// ever acknowledged that the downstream did not accept.
//
// The Session runs one DataRelay per DATA its CommandTable lets through (a transaction
// with recipients), on its TransactionRelay's downstream and transaction, and ends the
// transaction after it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <xproxy/wire/data_decoder.hpp>

#include "body_buffer.hpp"
#include "front_side.hpp"
#include "session_shared.hpp"
#include "transaction_relay.hpp"

namespace xproxy::xproxyd {

class DataRelay {
public:
    DataRelay(FrontSide& front, TransactionRelay& relay, Shared& sh, const std::string& sid);
    DataRelay(const DataRelay&) = delete;
    DataRelay& operator=(const DataRelay&) = delete;

    // Relays DATA and the body and answers the client. false: the session must end (the
    // client is gone, or stalled and told 421).
    asio::awaitable<bool> run();

private:
    asio::awaitable<bool> start_late();
    asio::awaitable<Reply> data_anywhere();
    asio::awaitable<void> read_early_answer();
    // A read of the body: bytes [pos, end) of data are not decoded yet.
    struct Input {
        char* data;
        std::size_t pos;
        std::size_t end;
    };
    asio::awaitable<bool> receive_body();
    asio::awaitable<bool> decode_next(Input& in, char* out, std::size_t& n, error_code& ec);
    asio::awaitable<void> abort_body(error_code ec);
    void keep_copy(std::string_view chunk);
    asio::awaitable<void> forward(std::string_view chunk);
    void refuse_too_big();
    asio::awaitable<Reply> final_reply();
    asio::awaitable<Reply> fail_over(Reply fin);
    asio::awaitable<bool> replay_body();
    void answer(const Reply& fin);

    FrontSide& front_;
    TransactionRelay& relay_;
    Downstream& ds_;
    const Config& cfg_;
    Shared& sh_;
    const std::string& sid_;
    const bool fast_;               // the body is kept for failover
    const bool early_;              // DATA goes down with 354 going up, its answer read afterwards
    bool data_sent_ = false;        // early: DATA written
    bool ds_ok_ = true;             // the downstream takes the body
    std::optional<Reply> refused_;  // the downstream's 4xx/5xx to DATA: the final reply
    smtp::DataDecoder dec_;
    std::optional<BodyBuffer> buf_;  // fast path only
    bool too_big_ = false;           // over --max-message-size or the spill quota: no final dot
    bool dot_sent_ = false;          // the final dot went with the last piece
    bool failed_over_ = false;       // another destination took the message
};

}  // namespace xproxy::xproxyd
