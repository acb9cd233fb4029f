// proxy_decode.cpp: decode() picks the PROXY protocol version from the first byte, so a
// caller learns after one byte whether the peer can be speaking PROXY at all.
#include "proxy_internal.hpp"
#include <xproxy/wire/proxy_protocol.hpp>

namespace xproxy::pp {

DecodeResult decode(const std::uint8_t* data, std::size_t size, Header& out) {
    if (size == 0) {
        detail::reset_header(out, 0);
        return DecodeResult::more();
    }
    if (data[0] == 'P') return decode_v1(data, size, out);
    if (data[0] == kV2Signature[0]) return decode_v2(data, size, out);
    detail::reset_header(out, 0);
    return DecodeResult::bad("not a PROXY protocol header");
}

}  // namespace xproxy::pp
