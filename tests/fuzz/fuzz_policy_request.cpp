// fuzz_policy_request: the policy request parser on arbitrary bytes, with small bounds so
// the fuzzer reaches them. Fed whole, split in two at a data-dependent point and fed
// byte by byte, it must give the same requests, the same failure state and the same
// error; every request maps to a SourceInfo without crashing.
#include <cstdint>
#include <string>
#include <vector>

#include <xproxy/wire/policy_protocol.hpp>

namespace {

std::string dump(const std::vector<xproxy::PolicyRequest>& reqs, const xproxy::PolicyRequestParser& p) {
    std::string out;
    for (const auto& r : reqs) {
        for (std::size_t i = 0; i < xproxy::PolicyRequest::kKnownCount; ++i)
            if (r.present(i)) out += std::to_string(i) + "=" + r.field(i) + "\n";
        for (const auto& [k, v] : r.other) out.append(k).append("=").append(v).append("\n");
        out += "\n";
    }
    return out + (p.failed() ? "E" + p.error() : "ok") + std::to_string(p.pending_bytes());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const char* in = reinterpret_cast<const char*>(data);
    xproxy::PolicyLimits lim;
    lim.max_line = 64;
    lim.max_request = 512;
    lim.max_attributes = 8;
    xproxy::PolicyRequestParser whole(lim), split(lim), bytes(lim);
    std::vector<xproxy::PolicyRequest> a, b, c;
    whole.feed(in, size, a);
    const std::size_t cut = size ? data[0] % (size + 1) : 0;
    split.feed(in, cut, b);
    split.feed(in + cut, size - cut, b);
    for (std::size_t i = 0; i < size; ++i) bytes.feed(in + i, 1, c);
    const std::string want = dump(a, whole);
    if (dump(b, split) != want || dump(c, bytes) != want) __builtin_trap();
    for (const auto& r : a) (void)xproxy::policy_source_info(r);
    return 0;
}
