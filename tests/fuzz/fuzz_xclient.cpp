// fuzz_xclient: XCLIENT / XFORWARD / generic attribute command parsing and application.
#include <cstdint>
#include <string>

#include "xproxy/xclient.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view line(reinterpret_cast<const char*>(data), size);
    std::string err;
    for (auto cmd : {xproxy::smtp::parse_xclient(line, &err), xproxy::smtp::parse_xforward(line, &err)}) {
        if (!cmd) continue;
        xproxy::SourceInfo si;
        if (xproxy::smtp::apply_command(*cmd, si, &err) && si.client) {
            // Whatever was accepted re-encodes into commands that parse again.
            for (const auto& l : xproxy::smtp::encode_xclient(si))
                if (!xproxy::smtp::parse_xclient(l, &err)) __builtin_trap();
        }
    }
    (void)xproxy::smtp::parse_ehlo_keyword(line);
    return 0;
}
