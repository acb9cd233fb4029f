// fuzz_trace_header: verify_trace_header() on arbitrary input never crashes, never reads
// past the input, and says ok only for a header that carries the right MAC (so only for
// the corpus' valid seeds and their white-space variants): re-signing what it decoded
// must give a header that verifies to the same values. The input also drives a sign ->
// format -> verify round trip with arbitrary value bytes, which must always verify, and
// the canonical sender: canonical_address() is a fixed point, and a header bound to the
// input as sender verifies with the input's canonical spelling.
#include <cstdint>
#include <string>

#include <xproxy/wire/mail_address.hpp>
#include <xproxy/wire/trace_header.hpp>

namespace {

const xproxy::KeyRing& keys() {
    static const xproxy::KeyRing k = [] {
        auto r = xproxy::KeyRing::parse(
            "k2026 hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
            "k2025 hex:202122232425262728292a2b2c2d2e2f\n");
        if (!r) __builtin_trap();
        return std::move(*r);
    }();
    return k;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace xproxy;
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const MessageBinding msg{TraceBinding::message_id, "<20260101.1234@client.example>", "alice@example.org"};
    const auto r = verify_trace_header(in, msg, keys(), 1790000010, 86400);
    if (r.ok()) {
        MessageBinding again_msg = msg;
        again_msg.kind = r.binding;
        const auto again = verify_trace_header(sign_trace_header(r.source, r.by, r.time, again_msg, keys()), msg,
                                               keys(), 1790000010, 86400);
        if (!again.ok() || !(again.source == r.source) || again.by != r.by) __builtin_trap();
    }

    // Round trip with the input as value bytes, split into helo / login / tls parts.
    SourceInfo s;
    const std::size_t third = size / 3;
    s.helo = std::string(in.substr(0, third));
    s.login = std::string(in.substr(third, third));
    s.tls.version = "v" + std::string(in.substr(2 * third, 8));
    s.tls.peer_fingerprint = std::string(in.substr(2 * third));
    const std::string v = sign_trace_header(s, "by", 1790000000, msg, keys());
    const auto back = verify_trace_header(format_field(v), msg, keys(), 1790000000, 0, 0);
    if (!back.ok()) __builtin_trap();
    if (back.source.helo != s.helo.substr(0, kTraceMaxText) || back.source.login != s.login.substr(0, kTraceMaxText))
        __builtin_trap();

    const std::string canon = canonical_address(in);
    if (canonical_address(canon) != canon) __builtin_trap();
    const MessageBinding as_sent{TraceBinding::envelope, "", std::string(in)};
    const MessageBinding respelled{TraceBinding::envelope, "", canon};
    if (!verify_trace_header(sign_trace_header(s, "by", 1790000000, as_sent, keys()), respelled, keys(), 1790000000, 0,
                             0)
             .ok())
        __builtin_trap();
    return 0;
}
