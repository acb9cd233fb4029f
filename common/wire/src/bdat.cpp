// bdat.cpp: the BDAT argument and a chunked body's DATA form; see the header.
#include <xproxy/wire/bdat.hpp>

#include <xproxy/base/text.hpp>

namespace xproxy::smtp {

namespace {
constexpr std::size_t kMaxDigits = 20;  // UINT64_MAX has 20
}  // namespace

BdatArg parse_bdat(std::string_view arg) {
    BdatArg a;
    const std::size_t sp = arg.find(' ');
    const std::string_view first = arg.substr(0, sp);
    if (first.size() <= kMaxDigits) a.size = parse_decimal<std::uint64_t>(first);
    if (!a.size) return a;
    std::string_view rest = sp == std::string_view::npos ? std::string_view() : arg.substr(sp);
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    if (rest.empty()) {
        a.valid = true;
    } else if (iequals(rest, "LAST")) {
        a.last = true;
        a.valid = true;
    }
    return a;
}

void BdatToData::feed(std::string_view raw, std::string& out) {
    std::size_t i = 0;
    const std::size_t n = raw.size();
    while (i < n) {
        const char c = raw[i];
        if (cr_) {
            if (c == '\r') {
                ++i;
                continue;
            }
            out += "\r\n";
            cr_ = false;
            bol_ = true;
            if (c == '\n') ++i;
            continue;
        }
        if (c == '\r') {
            cr_ = true;
            ++i;
            continue;
        }
        if (c == '\n') {
            out += "\r\n";
            bol_ = true;
            ++i;
            continue;
        }
        if (bol_ && c == '.') out += '.';
        bol_ = false;
        // The rest of the line up to its CR or LF, in one piece.
        const std::size_t end = raw.find_first_of("\r\n", i);
        const std::size_t stop = end == std::string_view::npos ? n : end;
        out.append(raw.data() + i, stop - i);
        i = stop;
    }
}

void BdatToData::finish(std::string& out) {
    if (cr_ || !bol_) out += "\r\n";
    cr_ = false;
    bol_ = true;
}

}  // namespace xproxy::smtp
