// data_decoder.cpp: end-of-data detection and line-end normalisation; see the header.
#include <xproxy/wire/data_decoder.hpp>

namespace xproxy::smtp {

std::size_t DataDecoder::feed(const char* p, std::size_t n, std::string& out) {
    std::size_t i = 0;
    while (i < n && state_ != State::done) {
        char c = p[i];
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
                out.push_back('.');
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
                    ++i;
                    continue;
                }
                if (c == '\n') {
                    end_line(out, true);
                    ++i;
                    continue;
                }
                end_line(out, false);  // a bare CR ends the line; c starts the next one
                continue;
            case State::mid: {
                // Copy the run up to the next CR or LF in one go.
                std::size_t j = i;
                while (j < n && p[j] != '\r' && p[j] != '\n') ++j;
                if (j > i) emit(out, p + i, j - i);
                i = j;
                if (i == n) break;
                if (p[i] == '\r') state_ = State::cr;
                else end_line(out, false);
                ++i;
                continue;
            }
            case State::done: break;
        }
    }
    return i;
}

}  // namespace xproxy::smtp
