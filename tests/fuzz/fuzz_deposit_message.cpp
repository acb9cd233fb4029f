// fuzz_deposit_message: extract_envelope() and parse_address_list() on arbitrary input
// never crash and never read past it; what they return keeps envelope.hpp's promises:
// every address is usable (a local part and a domain, no control bytes), canonical
// (canonical_address() leaves it as it is), recipients hold no duplicates and stay within
// the limit, and the Message-ID is trimmed.
#include <algorithm>
#include <cstdint>
#include <string>

#include <xproxy/wire/mail_address.hpp>

#include "envelope.hpp"

namespace {

void check_address(const std::string& a) {
    if (!xproxy::depositd::usable_address(a)) __builtin_trap();
    if (xproxy::canonical_address(a) != a) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace xproxy::depositd;
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    EnvelopeLimits lim;
    lim.max_header_bytes = 65536;
    lim.max_addresses = 50;
    if (auto env = extract_envelope(in, lim)) {
        check_address(env->from);
        if (env->recipients.size() > lim.max_addresses) __builtin_trap();
        for (std::size_t i = 0; i < env->recipients.size(); ++i) {
            check_address(env->recipients[i]);
            if (std::count(env->recipients.begin(), env->recipients.end(), env->recipients[i]) != 1) __builtin_trap();
        }
        const std::string& id = env->message_id;
        if (!id.empty() && (id.front() == ' ' || id.back() == ' ' || id.size() > size)) __builtin_trap();
    }
    if (auto list = parse_address_list(in, 20)) {
        if (list->size() > 20) __builtin_trap();
        for (const auto& a : *list) check_address(a);
    }
    return 0;
}
