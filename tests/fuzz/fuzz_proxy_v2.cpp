// fuzz_proxy_v2: decode / decode_v2 on arbitrary bytes, checking their promises: no crash
// or read past the buffer; over growing prefixes the status is need_more..., then invalid
// for good or complete with the same length for good; a complete header is 16 + its
// length field; what it says survives to_source_info -> encode_v2 -> decode_v2; the HMAC
// and TLV helpers accept whatever the decoder accepted, and never call a header authentic
// without its key; and a header encoded from fuzz-chosen fields decodes back to them and,
// with an HMAC, verifies exactly within the time window.
#include <cstdint>
#include <cstdlib>
#include <string>

#include <xproxy/wire/proxy_protocol.hpp>

using namespace xproxy;
using namespace xproxy::pp;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

const std::uint8_t* u8(const std::string& s) { return reinterpret_cast<const std::uint8_t*>(s.data()); }

void check_prefixes(const std::uint8_t* data, std::size_t size) {
    Header h;
    DecodeResult full = decode_v2(data, size, h);
    // Prefixes up to the end of the header are O(1) each until the last; after it, sample.
    const std::size_t end = full.complete() ? full.consumed : size;
    DecodeStatus seen = DecodeStatus::need_more;
    for (std::size_t k = 0; k <= end; ++k) {
        DecodeResult r = decode_v2(data, k, h);
        if (seen == DecodeStatus::need_more) {
            seen = r.status;
            if (r.complete()) check(r.consumed == k);
        } else {
            check(r.status == seen);
        }
        // decode() agrees with decode_v2 unless the input is a v1 candidate ('P').
        if (k == 0 || data[0] != 'P') check(decode(data, k, h).status == r.status);
    }
    check(seen == full.status);
    if (full.complete() && size > end) {
        for (std::size_t k : {end + 1, (end + size) / 2, size - 1}) {
            DecodeResult r = decode_v2(data, k, h);
            check(r.complete() && r.consumed == end);
        }
    }
}

void check_header(const std::uint8_t* data, std::size_t size) {
    Header h;
    DecodeResult r = decode(data, size, h);
    if (!r.complete() || h.version != 2) return;
    check(r.consumed == kV2HeaderLength + (std::size_t{data[14]} << 8 | data[15]));
    check(for_each_tlv(h.tlv_bytes, [](const TlvView&) {}));
    // Only a header with the right MAC can be authentic; none of the corpus' has this key.
    const HmacVerdict v = verify_hmac(data, r.consumed, h, {"fuzz key", 1790000000});
    check(v == HmacVerdict::absent || v == HmacVerdict::invalid);
    (void)hmac_key_id(h);
    (void)hmac_time(h);
    SourceInfo info;
    to_source_info(h, info);
    if (!h.has_addresses) return;
    EncodeOptions opt;
    opt.ssl = true;
    opt.xproxy_tlvs = true;
    const std::string again = encode_v2(info, opt);
    Header h2;
    check(decode_v2(u8(again), again.size(), h2).complete());
    SourceInfo back;
    to_source_info(h2, back);
    check(back.client == info.client && back.server == info.server && back.helo == info.helo &&
          back.login == info.login && back.session_id == info.session_id && back.tls.version == info.tls.version &&
          back.tls.cipher == info.tls.cipher);
}

// Fields taken from the input: byte 0 selects options, the rest is split into strings.
void check_encode(const std::uint8_t* data, std::size_t size) {
    if (size < 8) return;
    const std::uint8_t sel = data[0];
    std::uint8_t a[16];
    for (int i = 0; i < 16; ++i) a[i] = data[static_cast<std::size_t>(1 + i) % size];
    SourceInfo info;
    info.client = Endpoint{(sel & 1) ? IpAddress::v6_bytes(a).normalized() : IpAddress::v4_bytes(a),
                           static_cast<std::uint16_t>(data[1] << 8 | data[2])};
    info.server = Endpoint{(sel & 2) ? IpAddress::v6_bytes(a).normalized() : IpAddress::v4_bytes(a + 4),
                           static_cast<std::uint16_t>(data[3] << 8 | data[4])};
    const std::string rest(reinterpret_cast<const char*>(data) + 5, size - 5);
    const std::size_t third = rest.size() / 3;
    info.helo = rest.substr(0, third);
    info.login = rest.substr(third, third);
    info.session_id = rest.substr(2 * third);
    EncodeOptions opt;
    opt.xproxy_tlvs = true;
    opt.crc32c = sel & 4;
    static const std::string kKey = "k";
    const std::int64_t t = std::int64_t{data[5]} << 32 | std::int64_t{data[6]} << 8 | data[7];
    if (sel & 8) {
        opt.hmac_key = kKey;
        opt.hmac_key_id = sel;
        opt.hmac_time = t;
    }
    if (sel & 16) opt.unique_id = rest.substr(0, 128);
    opt.pad_to = (sel & 32) ? size * 3 : 0;
    const std::string out = encode_v2(info, opt);
    Header h;
    DecodeResult r = decode_v2(u8(out), out.size(), h);
    check(r.complete() && r.consumed == out.size());
    SourceInfo back;
    to_source_info(h, back);
    check(back.client == info.client && back.server == info.server && back.helo == info.helo &&
          back.login == info.login && back.session_id == info.session_id);
    if (sel & 8) {
        check(hmac_time(h) == t);
        check(verify_hmac(u8(out), out.size(), h, {"k", t}) == HmacVerdict::ok);
        check(verify_hmac(u8(out), out.size(), h, {"k", t + 60}) == HmacVerdict::ok);
        check(verify_hmac(u8(out), out.size(), h, {"k", t + 61}) == HmacVerdict::expired);
        check(verify_hmac(u8(out), out.size(), h, {"k", t - 61}) == HmacVerdict::future);
        check(verify_hmac(u8(out), out.size(), h, {"K", t}) == HmacVerdict::invalid);
    } else {
        check(verify_hmac(u8(out), out.size(), h, {"k", t}) == HmacVerdict::absent);
    }
    check(encode_v1(info.client, info.server).size() <= kV1MaxLength);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    check_prefixes(data, size);
    check_header(data, size);
    check_encode(data, size);
    return 0;
}
