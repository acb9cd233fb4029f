// fuzz_xtext: decoding never crashes; decode(encode(x)) == x for every input; whatever
// decodes re-encodes into the canonical spelling, which decodes to the same bytes.
#include <cstdint>
#include <string>

#include <xproxy/wire/xtext.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    std::string_view why;
    if (auto d = xproxy::xtext_decode(in, false, &why)) {
        auto canon = xproxy::xtext_encode(*d);
        if (canon.size() > in.size() || xproxy::xtext_decode(canon) != d) __builtin_trap();
    } else if (why.empty()) {
        __builtin_trap();  // every rejection has a reason
    }
    auto back = xproxy::xtext_decode(xproxy::xtext_encode(in), true);
    if (!back || *back != in) __builtin_trap();
    return 0;
}
