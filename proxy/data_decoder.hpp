// data_decoder.hpp: finds the end of an SMTP DATA body across arbitrary chunk boundaries
// and produces the body in a canonical wire form to relay downstream.
//
// Lines end at LF; a CR right before the LF belongs to the line end. The body ends at a
// line that is exactly "." (".\r\n" or ".\n"), as Postfix's smtpd reads it. Every other
// line is emitted with CRLF, still dot-stuffed (the downstream unstuffs it), so a bare
// LF can never end the message at the next hop earlier or later than here (no SMTP
// smuggling through the proxy). A CR not followed by LF is kept as a plain byte.
// size() counts the message as the downstream will store it: unstuffed, CRLF line ends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace xproxy::proxyd {

class DataDecoder {
public:
    // Decodes bytes [p, p+n); appends the wire form of the body to `out`. Returns the
    // number of bytes consumed: n, or fewer when the end of data was reached (what
    // follows belongs to the next command).
    std::size_t feed(const char* p, std::size_t n, std::string& out);
    bool done() const { return state_ == State::done; }
    std::uint64_t size() const { return size_; }
    void reset() { *this = DataDecoder(); }

private:
    enum class State { bol, dot, dot_cr, mid, cr, done };
    void emit(std::string& out, const char* p, std::size_t n) {
        out.append(p, n);
        size_ += n;
    }
    State state_ = State::bol;
    std::uint64_t size_ = 0;
};

}  // namespace xproxy::proxyd
