// data_decoder.hpp: finds the end of an SMTP DATA body across arbitrary chunk boundaries
// and produces the body in a canonical wire form to relay downstream.
//
// Line ends: CRLF, or a bare LF, or a bare CR (a CR not followed by LF). A run of CRs
// before an LF belongs to that line end (as Postfix reads it). Every line is emitted with
// CRLF and still dot-stuffed (the downstream unstuffs it): no bare CR or LF ever goes
// downstream, so a lenient next hop that ends lines at either cannot find an end of data
// that xproxyd did not (no SMTP smuggling through the proxy, RFC 5321 2.3.8).
// The body ends only at CRLF "." CRLF (RFC 5321 4.1.1.4): a "." line ended by a bare CR
// or LF, or following a line so ended, is not an end of data and is dropped, as Postfix
// 3.9's smtpd does with smtpd_forbid_bare_newline=normalize (its default), so
// <LF>.<LF> and <CR>.<CR> neither end the message here nor reach the downstream.
// size() counts the message as the downstream will store it: unstuffed, CRLF line ends.
//
// Speed: the bytes inside a line are found with a vector compare (16 at a time where
// SSE2 exists), and output that equals the input (canonical CRLF lines, the usual case)
// is copied in one piece per call, not line by line.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace xproxy::smtp {

class DataDecoder {
public:
    // An input byte never produces more than this much output (a stuffed dot held from
    // the previous byte, then CRLF for a bare line end).
    static constexpr std::size_t kMaxExpansion = 3;

    // Decodes bytes [p, p+n); appends the wire form of the body to `out`. Returns the
    // number of bytes consumed: n, or fewer when the end of data was reached (what
    // follows belongs to the next command).
    std::size_t feed(const char* p, std::size_t n, std::string& out);
    // The same into the fixed buffer [out, out+room): `produced` is set to the bytes
    // written. Returns the bytes consumed, which is also fewer than n when the rest would
    // not fit (feed again with more room); with room >= n * kMaxExpansion it always fits.
    // At least one byte is consumed when room >= kMaxExpansion, n > 0 and not done().
    std::size_t feed(const char* p, std::size_t n, char* out, std::size_t room, std::size_t& produced);
    bool done() const { return state_ == State::done; }
    std::uint64_t size() const { return size_; }
    // Line ends other than CRLF seen so far (each normalised to CRLF).
    std::uint64_t bare_line_ends() const { return bare_; }
    void reset() { *this = DataDecoder(); }

private:
    // bol: start of a line; dot: the line so far is "."; dot_cr: ".", then CRs;
    // mid: inside a line; cr: inside a line, then CRs.
    enum class State { bol, dot, dot_cr, mid, cr, done };
    template <class Out>
    std::size_t decode(const char* p, std::size_t n, Out& out);
    void end_dot_line(bool crlf) {
        prev_crlf_ = crlf;
        if (!crlf) ++bare_;
        state_ = State::bol;
    }
    State state_ = State::bol;
    bool prev_crlf_ = true;   // the previous line ended with CRLF (DATA's own line did)
    bool single_cr_ = false;  // cr: one CR so far (a CRLF then is the input as it came)
    std::uint64_t size_ = 0;
    std::uint64_t bare_ = 0;
};

}  // namespace xproxy::smtp
