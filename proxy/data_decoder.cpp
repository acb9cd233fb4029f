// data_decoder.cpp: end-of-data detection and line-end normalisation; see the header.
#include "data_decoder.hpp"

#include <cstring>

namespace xproxy::proxyd {

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
                if (c == '\n') {
                    state_ = State::done;
                    ++i;
                    continue;
                }
                // A dot-stuffed line: keep the leading dot for the downstream, count it out.
                out.push_back('.');
                state_ = State::mid;
                continue;
            case State::dot_cr:
                if (c == '\n') {
                    state_ = State::done;
                    ++i;
                    continue;
                }
                out.push_back('.');
                state_ = State::cr;  // the CR after the dot is pending, c is re-read
                continue;
            case State::cr:
                if (c == '\n') {
                    emit(out, "\r\n", 2);
                    state_ = State::bol;
                    ++i;
                    continue;
                }
                emit(out, "\r", 1);
                state_ = State::mid;
                continue;
            case State::mid: {
                // Copy the run up to the next CR or LF in one go.
                std::size_t j = i;
                while (j < n && p[j] != '\r' && p[j] != '\n') ++j;
                if (j > i) emit(out, p + i, j - i);
                i = j;
                if (i == n) break;
                if (p[i] == '\r') state_ = State::cr;
                else {
                    emit(out, "\r\n", 2);
                    state_ = State::bol;
                }
                ++i;
                continue;
            }
            case State::done:
                break;
        }
    }
    return i;
}

}  // namespace xproxy::proxyd
