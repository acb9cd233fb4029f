// fuzz_proxy_v1: decode_v1 on arbitrary bytes, checking its promises: no crash or read
// past the buffer; the status over growing prefixes is need_more..., then either invalid
// for good or complete with the same length for good; a complete line is at most 107
// bytes, ends in CRLF and survives encode_v1 -> decode_v1. The input is also used as an
// address literal inside a TCP4 and a TCP6 line, which must decode exactly when
// inet_pton accepts it, to the same address.
#include <arpa/inet.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <xproxy/wire/proxy_protocol.hpp>

using namespace xproxy;
using namespace xproxy::pp;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

DecodeResult run(std::string_view s, Header& h) {
    return decode_v1(reinterpret_cast<const std::uint8_t*>(s.data()), s.size(), h);
}

void check_prefixes(const std::uint8_t* data, std::size_t size) {
    Header h;
    // decode_v1 never looks further than ~120 bytes: beyond that the status cannot change.
    const std::size_t limit = size < 160 ? size : 160;
    DecodeStatus seen = DecodeStatus::need_more;
    std::size_t consumed = 0;
    for (std::size_t k = 0; k <= limit; ++k) {
        DecodeResult r = decode_v1(data, k, h);
        if (seen == DecodeStatus::need_more) {
            seen = r.status;
            consumed = r.consumed;
            if (r.complete()) check(consumed == k);
        } else {
            check(r.status == seen && r.consumed == consumed);
        }
    }
    DecodeResult full = decode_v1(data, size, h);
    if (size > limit && seen != DecodeStatus::need_more) check(full.status == seen && full.consumed == consumed);
    check(!full.need_more() || size < kV1MaxLength);
    if (!full.complete()) return;
    check(full.consumed <= kV1MaxLength && full.consumed >= 15);
    check(data[full.consumed - 2] == '\r' && data[full.consumed - 1] == '\n');
    check(decode(data, size, h).complete());
    if (!h.has_addresses) return;
    const Endpoint src = h.source, dst = h.destination;
    const std::string again = encode_v1(src, dst);
    check(run(again, h).complete() && h.source == src && h.destination == dst);
}

void check_literal(std::string_view lit) {
    if (lit.size() > 60 || lit.find_first_of(std::string_view(" \r\n\0", 4)) != std::string_view::npos) return;
    const std::string text(lit);
    for (int af : {AF_INET, AF_INET6}) {
        std::uint8_t want[16];
        const bool ok = inet_pton(af, text.c_str(), want) == 1;
        const std::string line = std::string(af == AF_INET ? "PROXY TCP4 " : "PROXY TCP6 ") + text +
                                 (af == AF_INET ? " 1.2.3.4 1 2\r\n" : " ::1 1 2\r\n");
        Header h;
        DecodeResult r = run(line, h);
        // A valid TCP6 line can still be too long (two long literals); ours stay short.
        check(r.complete() == ok);
        if (!ok) continue;
        const IpAddress a = af == AF_INET ? IpAddress::v4_bytes(want) : IpAddress::v6_bytes(want).normalized();
        check(h.source.addr == a);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    check_prefixes(data, size);
    check_literal(std::string_view(reinterpret_cast<const char*>(data), size));
    return 0;
}
