// fuzz_policy_request: the policy request parser on arbitrary bytes, fed whole and split
// in two at a data-dependent point: both must give the same requests.
#include <cstdint>
#include <string>
#include <vector>

#include "xproxy/policy_protocol.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const char* p = reinterpret_cast<const char*>(data);
    xproxy::policy::Limits lim;
    lim.max_line = 64;
    lim.max_request = 512;
    lim.max_attributes = 8;
    xproxy::policy::RequestParser whole(lim), split(lim);
    std::vector<xproxy::policy::Request> a, b;
    bool ok_a = whole.feed(p, size, a);
    size_t cut = size ? data[0] % (size + 1) : 0;
    bool ok_b = split.feed(p, cut, b);
    if (ok_b) ok_b = split.feed(p + cut, size - cut, b);
    if (ok_a != ok_b || a.size() != b.size()) __builtin_trap();
    for (const auto& r : a) (void)xproxy::policy::to_source_info(r);
    return 0;
}
