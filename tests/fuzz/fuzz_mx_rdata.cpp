// fuzz_mx_rdata: xproxyd's decode_mx_rdata (the rdata of an MX record as libunbound hands
// it over) on arbitrary bytes, checking its promises: no crash or read past the input; an
// accepted record is exactly its input (preference, then the lower-cased labels of the
// target up to the root label), its target "" or a name check_domain_name accepts; a
// refusal has a reason of printable ASCII and bounded length.
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mx_records.hpp"

using namespace xproxy;
using namespace xproxy::xproxyd;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

// The wire form of a decoded record, to compare with the (lower-cased) input.
std::string encode(const MxRecord& r) {
    std::string out;
    out += static_cast<char>(r.preference >> 8);
    out += static_cast<char>(r.preference & 0xff);
    std::size_t start = 0;
    while (start < r.target.size()) {
        std::size_t dot = r.target.find('.', start);
        if (dot == std::string::npos) dot = r.target.size();
        out += static_cast<char>(dot - start);
        out.append(r.target, start, dot - start);
        start = dot + 1;
    }
    out += '\0';
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    auto rec = decode_mx_rdata(in);
    if (rec) {
        check(rec->target.empty() || check_domain_name(rec->target).has_value());
        std::string lowered(in);
        for (std::size_t i = 2; i < lowered.size(); ++i)
            lowered[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(lowered[i])));
        check(encode(*rec) == lowered);
    } else {
        check(!rec.error().empty() && rec.error().size() <= 400);
        for (char c : rec.error()) check(c >= 0x20 && c < 0x7f);
    }
    return 0;
}
