// fuzz_xproxy_commands: XPROXYFROM / XPROXY / XPROXYTO through the accumulator (one line
// per input line) and the DESTINATIONLEFT reply decoder. A completed command re-encodes
// into lines of at most 512 bytes that accumulate to the same command; a decoded reply
// re-encodes and decodes to the same value, and each of its strict prefixes needs more.
#include <cstdint>
#include <string>

#include <xproxy/wire/xproxy_commands.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace xproxy::smtp;
    std::string_view in(reinterpret_cast<const char*>(data), size);

    XproxyAccumulator acc;
    std::size_t pos = 0;
    while (pos < in.size()) {
        auto nl = in.find('\n', pos);
        auto line = in.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl + 1 - pos);
        pos = nl == std::string_view::npos ? in.size() : nl + 1;
        auto r = acc.add(line);
        if (r.invalid() && (acc.error().empty() || r.reason.empty())) __builtin_trap();
        if (!r.complete()) continue;
        if (r.consumed != line.size()) __builtin_trap();
        auto e = encode(acc.command());
        if (!e) continue;  // e.g. a value only a split the sender chose could carry
        XproxyAccumulator again;
        xproxy::DecodeResult last;
        for (const auto& l : e.lines) {
            if (l.size() > kMaxCommandLine) __builtin_trap();
            last = again.add(l);
        }
        if (!last.complete() || !(again.command() == acc.command())) __builtin_trap();
    }

    DestinationLeft d;
    auto r = decode_destination_left(in, d);
    if (r.complete()) {
        if (r.consumed == 0 || r.consumed > in.size()) __builtin_trap();
        auto e = encode(d);
        if (e) {
            std::string reply = e.joined();
            DestinationLeft back;
            if (!decode_destination_left(reply, back).complete() || !(back == d)) __builtin_trap();
            if (reply.size() < 4096)
                for (std::size_t k = 0; k < reply.size(); ++k)
                    if (!decode_destination_left(std::string_view(reply).substr(0, k), back).need_more())
                        __builtin_trap();
        }
    }
    return 0;
}
