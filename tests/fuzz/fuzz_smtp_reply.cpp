// fuzz_smtp_reply: the SMTP client side's codecs (the deposit daemon's injection).
// The reply decoder's result must not depend on where the input is cut (a strict prefix
// of a complete reply is need_more), stay within its limits, and what it reads out of a
// reply (enhanced status, printable text, queue id) must be printable and bounded. A
// message the DATA form scan calls canonical must come out of BdatToData unchanged, and
// one it does not must change (so the injection's zero-copy path sends exactly what the
// conversion would); the conversion followed by the final dot is read back by the DATA
// decoder as itself, with no bare CR or LF. All live in xproxy_wire.
#include <cstdint>
#include <string>

#include <xproxy/wire/bdat.hpp>
#include <xproxy/wire/data_decoder.hpp>
#include <xproxy/wire/data_scan.hpp>
#include <xproxy/wire/smtp_reply.hpp>

using namespace xproxy;
using namespace xproxy::smtp;

namespace {

bool printable(const std::string& s) {
    for (char c : s)
        if (c < ' ' || c > '~') return false;
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);

    SmtpReply r;
    const DecodeResult d = decode_reply(in, r);
    if (d.complete()) {
        if (d.consumed == 0 || d.consumed > in.size() || r.code < 200 || r.code > 599 || r.lines.empty() ||
            r.lines.size() > kMaxReplyLinesCount)
            __builtin_trap();
        const std::size_t cut = data[0] % d.consumed;
        SmtpReply p;
        if (!decode_reply(in.substr(0, cut), p).need_more()) __builtin_trap();
        const std::string status = enhanced_status(r);
        const std::string text = printable_text(r, 200);
        const std::string id = queued_as(r);
        if (!printable(status) || !printable(text) || text.size() > 200 || !printable(id) || id.size() > kMaxQueueId)
            __builtin_trap();
        if (!status.empty() && status[0] != static_cast<char>('0' + r.code / 100)) __builtin_trap();
    } else if (d.need_more() && in.size() >= kMaxReplyLineBytes * kMaxReplyLinesCount) {
        __builtin_trap();  // no reply is that long
    }

    const DataBodyScan scan = scan_data_body(in);
    std::string wire;
    BdatToData conv;
    conv.feed(in, wire);
    conv.finish(wire);
    if (scan.canonical != (wire == in)) __builtin_trap();
    for (std::size_t i = 0; i < wire.size(); ++i) {
        if (wire[i] == '\r' && (i + 1 == wire.size() || wire[i + 1] != '\n')) __builtin_trap();
        if (wire[i] == '\n' && (i == 0 || wire[i - 1] != '\r')) __builtin_trap();
    }
    const std::string full = wire + ".\r\n";
    DataDecoder dec;
    std::string out;
    const std::size_t used = dec.feed(full.data(), full.size(), out);
    if (!dec.done() || used != full.size() || out != wire) __builtin_trap();
    return 0;
}
