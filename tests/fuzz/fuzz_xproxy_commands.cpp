// fuzz_xproxy_commands: XPROXYFROM / XPROXY / XPROXYTO / DESTINATIONLEFT parsers; what
// parses re-encodes into something that parses to the same value.
#include <cstdint>
#include <string>

#include "xproxy/xproxy_commands.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace xproxy::smtp;
    std::string_view in(reinterpret_cast<const char*>(data), size);
    std::string err;
    if (auto f = parse_xproxyfrom(in, &err)) {
        auto line = encode(*f);
        if (!line.empty() && !(parse_xproxyfrom(line, &err) == f)) __builtin_trap();
    }
    if (auto x = parse_xproxy(in, &err)) {
        auto line = encode(*x);
        if (!line.empty() && !(parse_xproxy(line, &err) == x)) __builtin_trap();
    }
    XproxyToAccumulator acc;
    std::size_t pos = 0;
    while (pos <= in.size()) {
        auto nl = in.find('\n', pos);
        auto st = acc.add(in.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos));
        if (st != XproxyToAccumulator::State::need_more || nl == std::string_view::npos) break;
        pos = nl + 1;
    }
    (void)parse_destination_left(in, &err);
    return 0;
}
