// fuzz_trace_header: verify() on arbitrary input never crashes and never says ok for a
// header the fuzzer made up (it cannot know the key).
#include <cstdint>
#include <string>

#include "xproxy/trace_header.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const xproxy::KeyRing keys = [] {
        std::string err;
        return *xproxy::KeyRing::parse("k1 hex:00112233445566778899aabbccddeeff", &err);
    }();
    std::string_view in(reinterpret_cast<const char*>(data), size);
    auto r = xproxy::trace::verify(in, {"a@example.org", "<m@example.org>"}, keys, 1790000000, 86400);
    if (r.verdict == xproxy::trace::Verdict::ok) {
        // Only possible if the input carries the right MAC: re-signing must reproduce it.
        auto again = xproxy::trace::sign(r.source, r.by, r.source.time, r.binding, {"a@example.org", "<m@example.org>"},
                                         keys);
        if (again.empty()) __builtin_trap();
    }
    return 0;
}
