// fuzz_srv_rdata: the deposit client's decode_srv_rdata (an SRV record's rdata from the
// DNS, tools/deposit/srv_records.hpp) on arbitrary bytes: no crash nor read past the
// input; an accepted record re-encodes to its (lower-cased) input, its target "" or a
// name check_domain_name accepts; the order of several records keeps every non-root one.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "srv_records.hpp"

using namespace xproxy::deposit;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

std::string encode(const SrvRecord& r) {
    std::string out;
    for (std::uint16_t v : {r.priority, r.weight, r.port}) {
        out += static_cast<char>(v >> 8);
        out += static_cast<char>(v & 0xff);
    }
    std::size_t start = 0;
    while (start < r.target.size()) {
        std::size_t dot = r.target.find('.', start);
        if (dot == std::string::npos) dot = r.target.size();
        out += static_cast<char>(dot - start);
        out += r.target.substr(start, dot - start);
        start = dot + 1;
    }
    out += '\0';
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    auto r = decode_srv_rdata(in);
    if (!r) {
        check(!r.error().empty() && r.error().size() < 2000);
        return 0;
    }
    check(r->target.empty() || static_cast<bool>(check_domain_name(r->target)));
    check(encode(*r) == std::string(in.substr(0, 6)) + lower(in.substr(6)));
    auto ordered = order_srv_records({*r, *r}, default_srv_random());
    check(ordered.size() == (r->target.empty() ? 0u : 2u));
    return 0;
}
