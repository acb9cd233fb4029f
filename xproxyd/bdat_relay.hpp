// bdat_relay.hpp: one transaction's body sent with BDAT (CHUNKING, RFC 3030), from its
// first chunk to the reply to BDAT LAST.
//
// Each client chunk is read whole (exactly the size its BDAT names, the bytes already
// buffered after the command line included) and answered before the next command is
// read: 250 for a chunk the downstream took, the downstream's final reply for BDAT LAST.
// When the downstream advertises CHUNKING the chunks go down as they came, one BDAT per
// client BDAT, each answer read before the client's chunk is answered; otherwise DATA
// goes down at the first chunk and the chunks follow in DATA's form (BdatToData: CRLF
// line ends, dot-stuffing, CRLF added at the end), the final dot after the last one.
// A refusal of a chunk (or of the DATA sent for the first one) is the reply to that BDAT;
// every later chunk of the transaction is read, dropped and answered as Postfix's smtpd
// does after an error: the refusal's code, "X.0.0 Discarded N bytes after earlier
// error"; the transaction ends at BDAT LAST (or RSET). A chunk that would take the message over
// --max-message-size is read and dropped, answered 552, and ends the transaction.
//
// Without loss, as DATA: on the fast path the raw chunks are kept in a BodyBuffer; a
// destination lost before its answer to a chunk is replaced by the next one (MAIL and
// RCPT replayed, then the copy so far as one BDAT, or as DATA); with none left the
// client gets 451. A client gone inside a chunk gets nothing delivered: the downstream
// connection is closed without its last chunk or final dot.
//
// The Session keeps one BdatRelay from the transaction's first BDAT to its end.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <xproxy/wire/bdat.hpp>

#include "body_buffer.hpp"
#include "front_side.hpp"
#include "session_shared.hpp"
#include "transaction_relay.hpp"

namespace xproxy::xproxyd {

// Reads and drops the `size` bytes of a chunk that will not be relayed. false: the
// client is gone or timed out (told 421).
asio::awaitable<bool> skip_chunk(FrontSide& front, const Config& cfg, std::uint64_t size);

class BdatRelay {
public:
    BdatRelay(FrontSide& front, TransactionRelay& relay, Shared& sh, const std::string& sid);
    // A transaction left unfinished (RSET, HELO, QUIT, a lost client): a downstream
    // inside DATA is closed (no final dot), one inside BDAT keeps the transaction until
    // its RSET.
    ~BdatRelay();
    BdatRelay(const BdatRelay&) = delete;
    BdatRelay& operator=(const BdatRelay&) = delete;

    // One BDAT with a valid argument: reads its chunk and answers it. false: the session
    // must end (the client is gone, or stalled and told 421).
    asio::awaitable<bool> chunk(std::uint64_t size, bool last);
    // BDAT LAST was answered, or the message grew too big: the transaction is over.
    bool done() const { return done_; }

private:
    enum class Mode : std::uint8_t { bdat, data };
    asio::awaitable<void> start();
    asio::awaitable<Reply> resume(std::size_t next, bool last);
    asio::awaitable<bool> receive(std::uint64_t size, bool last);
    asio::awaitable<bool> replay(bool last);
    asio::awaitable<void> forward(std::string_view piece);
    void keep_copy(std::string_view piece);
    asio::awaitable<Reply> chunk_reply(std::uint64_t size, bool last);
    static Reply in_step(Reply r);
    void refuse(const Reply& r);
    void too_big(std::uint64_t size);
    void answer_last(const Reply& fin);
    void abandon_downstream();
    std::string header(std::uint64_t size, bool last) const;

    FrontSide& front_;
    TransactionRelay& relay_;
    Downstream& ds_;
    const Config& cfg_;
    Shared& sh_;
    const std::string& sid_;
    const bool fast_;                // the chunks are kept for failover
    Mode mode_ = Mode::bdat;         // how the current destination gets the body
    bool started_ = false;           // the first chunk came
    bool open_ = false;              // data mode: DATA accepted downstream, no final dot yet
    bool ds_ok_ = true;              // the destination takes the chunk being read
    bool done_ = false;              // the transaction is over
    bool failed_over_ = false;       // another destination took the message
    std::optional<Reply> refused_;   // a refusal: every further chunk is dropped
    bool refusal_told_ = false;      // the client has it; later chunks get "Discarded N bytes"
    std::uint64_t size_ = 0;         // raw bytes of the chunks so far
    std::uint64_t chunks_ = 0;       // BDAT commands taken
    smtp::BdatToData enc_;           // data mode
    std::string out_;                // data mode: the DATA form of a piece; bdat mode: header + first piece
    std::optional<BodyBuffer> buf_;  // fast path only: the raw chunks
};

}  // namespace xproxy::xproxyd
