// fuzz_xtext: decoding never crashes; decode(encode(x)) == x for every input.
#include <cstdint>
#include <string>

#include "xproxy/xtext.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    (void)xproxy::xtext_decode(in);
    auto back = xproxy::xtext_decode(xproxy::xtext_encode(in), true);
    if (!back || *back != in) __builtin_trap();
    return 0;
}
