// data_decoder.cpp: end-of-data detection and line-end normalisation; see the header.
#include <xproxy/wire/data_decoder.hpp>

#include <algorithm>
#include <cstring>
#include <limits>

#include "line_scan.hpp"

namespace xproxy::smtp {

namespace {

using detail::find_line_end;

// Output pieces are either input bytes passed as they came (verbatim) or bytes of the
// decoder's own (literal). Verbatim pieces that follow each other in the input are
// joined and copied once: canonical input costs one copy per feed.
template <class Dest>
class Joiner {
public:
    explicit Joiner(Dest& d) : d_(d) {}
    void verbatim(const char* from, std::size_t n) {
        if (from == span_ + span_n_) {
            span_n_ += n;
            return;
        }
        flush();
        span_ = from;
        span_n_ = n;
    }
    void literal(const char* s, std::size_t n) {
        flush();
        d_.put(s, n);
    }
    std::size_t room() const { return d_.room() - span_n_; }
    void flush() {
        if (span_n_ > 0) d_.put(span_, span_n_);
        span_ = nullptr;
        span_n_ = 0;
    }

private:
    Dest& d_;
    const char* span_ = nullptr;
    std::size_t span_n_ = 0;
};

struct StringDest {
    std::string& out;
    void put(const char* s, std::size_t n) { out.append(s, n); }
    std::size_t room() const { return std::numeric_limits<std::size_t>::max() / 2; }
};

struct BufferDest {
    char* out;
    std::size_t cap;
    std::size_t used = 0;
    void put(const char* s, std::size_t n) {
        std::memcpy(out + used, s, n);
        used += n;
    }
    std::size_t room() const { return cap - used; }
};

}  // namespace

template <class Out>
std::size_t DataDecoder::decode(const char* p, std::size_t n, Out& out) {
    std::size_t i = 0;
    std::size_t checked = n;  // the byte whose room was checked (a byte may pass several states)
    while (i < n && state_ != State::done) {
        if (i != checked) {
            if (out.room() < kMaxExpansion) break;
            checked = i;
        }
        const char c = p[i];
        switch (state_) {
            case State::bol:
                if (c == '.') {
                    state_ = State::dot;
                    ++i;
                    continue;
                }
                state_ = State::mid;
                continue;  // re-read c as part of the line
            case State::dot:
                if (c == '\r') {
                    state_ = State::dot_cr;
                    ++i;
                    continue;
                }
                if (c == '\n') {  // "." ended by a bare LF: dropped, never an end
                    end_dot_line(false);
                    ++i;
                    continue;
                }
                // A dot-stuffed line: keep the leading dot for the downstream, count it out.
                if (i > 0) out.verbatim(p + i - 1, 1);  // the dot came in this piece
                else out.literal(".", 1);
                state_ = State::mid;
                continue;
            case State::dot_cr:
                if (c == '\r') {  // more CRs before the LF belong to the line end
                    ++i;
                    continue;
                }
                if (c == '\n') {
                    ++i;
                    if (prev_crlf_) state_ = State::done;  // CRLF "." CRLF
                    else end_dot_line(true);               // after a bare line end: dropped
                    continue;
                }
                end_dot_line(false);  // "." ended by a bare CR: dropped; c starts a line
                continue;
            case State::cr:
                if (c == '\r') {
                    single_cr_ = false;
                    ++i;
                    continue;
                }
                if (c == '\n') {
                    if (single_cr_ && i > 0) out.verbatim(p + i - 1, 2);  // CRLF as it came
                    else out.literal("\r\n", 2);
                    size_ += 2;
                    end_dot_line(true);
                    ++i;
                    continue;
                }
                out.literal("\r\n", 2);  // a bare CR ends the line; c starts the next one
                size_ += 2;
                end_dot_line(false);
                continue;
            case State::mid: {
                // The run up to the next CR or LF, as far as the room allows; canonical
                // lines after it (CRLF, then neither "." nor CR nor LF) join the run.
                const std::size_t limit = i + std::min(n - i, out.room());
                const std::size_t start = i;
                std::size_t j = find_line_end(p, i, limit);
                while (limit - j > 2 && p[j] == '\r' && p[j + 1] == '\n' && p[j + 2] != '.' && p[j + 2] != '\r' &&
                       p[j + 2] != '\n') {
                    prev_crlf_ = true;
                    j = find_line_end(p, j + 2, limit);
                }
                if (j > start) {
                    out.verbatim(p + start, j - start);
                    size_ += j - start;
                }
                i = j;
                if (i == limit) continue;
                if (p[i] == '\r') {
                    state_ = State::cr;
                    single_cr_ = true;
                } else {
                    if (out.room() < 2) return i;  // the LF's CRLF goes with the next call
                    out.literal("\r\n", 2);
                    size_ += 2;
                    end_dot_line(false);
                }
                ++i;
                continue;
            }
            case State::done: break;
        }
    }
    return i;
}

std::size_t DataDecoder::feed(const char* p, std::size_t n, std::string& out) {
    StringDest dest{out};
    Joiner<StringDest> j(dest);
    const std::size_t used = decode(p, n, j);
    j.flush();
    return used;
}

std::size_t DataDecoder::feed(const char* p, std::size_t n, char* out, std::size_t room, std::size_t& produced) {
    BufferDest dest{out, room};
    Joiner<BufferDest> j(dest);
    const std::size_t used = decode(p, n, j);
    j.flush();
    produced = dest.used;
    return used;
}

}  // namespace xproxy::smtp
