// data_encoder.cpp: a message in DATA's wire form; see data_encoder.hpp.
#include <xproxy/wire/data_encoder.hpp>

#include "line_scan.hpp"

namespace xproxy::smtp {

using detail::find_line_end;

DataBodyScan scan_data_body(std::string_view message) {
    DataBodyScan s;
    const char* p = message.data();
    const std::size_t n = message.size();
    unsigned char high = 0;  // OR of every byte: a plain loop the compiler vectorises
    for (std::size_t k = 0; k < n; ++k) high = static_cast<unsigned char>(high | static_cast<unsigned char>(p[k]));
    s.eight_bit = (high & 0x80) != 0;
    std::size_t i = 0;
    while (i < n) {  // i: the start of a line
        const std::size_t j = find_line_end(p, i, n);
        if (p[i] == '.' || j == n || p[j] != '\r' || j + 1 == n || p[j + 1] != '\n') {
            s.canonical = false;
            break;
        }
        i = j + 2;
    }
    return s;
}

void encode_data_body(std::string_view message, std::string& out) {
    const char* p = message.data();
    const std::size_t n = message.size();
    out.reserve(out.size() + n + n / 32 + 2);
    std::size_t span = 0;  // input from here on is still to be copied as it is
    std::size_t i = 0;     // the start of a line
    while (i < n) {
        if (p[i] == '.') {  // the stuffed dot goes before the line's own, which stays in the span
            out.append(p + span, i - span);
            out += '.';
            span = i;
        }
        const std::size_t j = find_line_end(p, i, n);
        if (j == n) {  // a last line without a line end
            out.append(p + span, n - span);
            out += "\r\n";
            return;
        }
        if (p[j] == '\r' && j + 1 < n && p[j + 1] == '\n') {
            i = j + 2;
            continue;
        }
        out.append(p + span, j - span);
        out += "\r\n";
        std::size_t k = j;
        while (k < n && p[k] == '\r') ++k;
        if (k < n && p[k] == '\n') ++k;
        i = span = k;
    }
    out.append(p + span, n - span);
}

}  // namespace xproxy::smtp
