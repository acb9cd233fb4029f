// fuzz_dovecot_auth: the Dovecot auth server line decoder on arbitrary bytes, the way
// the client reads them (decode what arrived, consume exactly `consumed`, wait for
// more). Fed whole, split at a data-dependent point and byte by byte, it must give the
// same lines and the same end; a complete line is never longer than kMaxLine + 1 bytes.
// The input also goes through tab_escape/tab_unescape (a round trip) and, cut in two,
// into an AUTH request whose resp= decodes back to NUL authcid NUL password.
#include <cstdint>
#include <string>

#include <xproxy/base/base64.hpp>
#include <xproxy/wire/dovecot_auth.hpp>

using namespace xproxy;
using namespace xproxy::dovecot;

namespace {

std::string dump(const ServerLine& l) {
    std::string out = std::to_string(static_cast<int>(l.kind)) + "|" + std::to_string(l.major) + "." +
                      std::to_string(l.minor) + "|" + std::to_string(l.id) + "|" + l.word;
    for (const auto& [k, v] : l.params) out += "|" + k + "=" + v;
    return out + "\n";
}

// Feeds `in` in pieces of `step` bytes (0: all at once); what was decoded, and how it ended.
std::string run(std::string_view in, std::size_t cut, bool bytewise) {
    ServerDecoder d;
    std::string buffer, out;
    std::size_t pos = 0;
    while (pos < in.size()) {
        const std::size_t n = bytewise ? 1 : pos == 0 && cut ? cut : in.size() - pos;
        buffer.append(in.substr(pos, n));
        pos += n;
        for (;;) {
            ServerLine line;
            const DecodeResult r = d.decode(buffer, line);
            if (r.invalid()) return out + "invalid " + std::string(r.reason);
            if (r.need_more()) break;
            if (r.consumed == 0 || r.consumed > kMaxLine + 1 || r.consumed > buffer.size()) __builtin_trap();
            if (buffer[r.consumed - 1] != '\n') __builtin_trap();
            out += dump(line);
            buffer.erase(0, r.consumed);
        }
    }
    return out + (d.handshake_done() ? "done" : "handshake");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const std::size_t cut = size ? data[0] % (size + 1) : 0;
    const std::string whole = run(in, 0, false);
    if (run(in, cut, false) != whole || run(in, 0, true) != whole) __builtin_trap();

    const std::string escaped = tab_escape(in);
    if (escaped.find_first_of(std::string_view("\t\r\n\0", 4)) != std::string::npos) __builtin_trap();
    std::string back;
    if (!tab_unescape(escaped, back) || back != in) __builtin_trap();

    AuthRequest r;
    r.authcid = in.substr(0, cut);
    r.password = in.substr(cut);
    SecretBytes line;
    const bool ok = encode_auth_plain(r, line);
    const std::string_view nul("\0", 1);
    const bool want = !r.authcid.empty() && !r.password.empty() && r.authcid.find(nul) == std::string_view::npos &&
                      r.password.find(nul) == std::string_view::npos;
    if (ok != want) __builtin_trap();
    if (!ok) return 0;
    const std::string_view l = line.view();
    if (l.find('\n') != l.size() - 1 || l.find('\r') != std::string_view::npos) __builtin_trap();
    const std::size_t resp = l.rfind("\tresp=");
    if (resp == std::string_view::npos) __builtin_trap();
    const auto message = base64_decode(l.substr(resp + 6, l.size() - resp - 7));
    if (!message || *message != std::string(nul) + std::string(r.authcid) + std::string(nul) + std::string(r.password))
        __builtin_trap();
    return 0;
}
