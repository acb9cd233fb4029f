// data_scan.cpp: is a message already in DATA's wire form; see data_scan.hpp.
#include <xproxy/wire/data_scan.hpp>

#include "line_scan.hpp"

namespace xproxy::smtp {

using detail::find_line_end;

DataBodyScan scan_data_body(std::string_view message) {
    DataBodyScan s;
    const char* p = message.data();
    const std::size_t n = message.size();
    unsigned char high = 0;  // OR of every byte
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

}  // namespace xproxy::smtp
