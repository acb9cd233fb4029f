// fuzz_smtp_data: xproxyd's front-side decoders: the DATA end-of-data decoder and the
// MAIL/RCPT argument parser. The decoder's result must not depend on where the input is
// cut; its output, followed by the end-of-data line, must decode to itself (the downstream
// finds the end exactly where xproxyd did), never contain a lone "." line and never a CR
// or LF outside a CRLF pair (a lenient downstream must not see a line end that xproxyd
// did not), and the end is only ever CRLF "." CRLF. xproxyd's own path, the feed into a
// fixed buffer, gives the same bytes whatever the buffer's room. The parser
// never accepts a path with CR, LF or NUL. Both live in the wire layer (xproxy_wire).
#include <cstdint>
#include <string>
#include <vector>

#include <xproxy/wire/data_decoder.hpp>
#include <xproxy/wire/smtp_command.hpp>

using namespace xproxy::smtp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);

    DataDecoder whole;
    std::string out;
    std::size_t used = whole.feed(in.data(), in.size(), out);
    if (used > in.size() || (used < in.size() && !whole.done())) __builtin_trap();

    std::size_t cut = size ? data[0] % (size + 1) : 0;
    DataDecoder split;
    std::string out2;
    std::size_t used2 = split.feed(in.data(), cut, out2);
    if (!split.done()) used2 += split.feed(in.data() + cut, in.size() - cut, out2);
    if (used2 != used || out2 != out || split.done() != whole.done() || split.size() != whole.size()) __builtin_trap();

    // The feed into a fixed buffer (what xproxyd relays from), with a small room taken
    // from the input: the same output and end, and progress on every call.
    const std::size_t room = DataDecoder::kMaxExpansion + (size > 1 ? data[1] % 64 : 0);
    std::vector<char> buf(room);
    DataDecoder fixed;
    std::string out4;
    std::size_t used4 = 0;
    while (used4 < in.size() && !fixed.done()) {
        std::size_t produced = 0;
        const std::size_t u = fixed.feed(in.data() + used4, in.size() - used4, buf.data(), room, produced);
        if (u == 0 || produced > room) __builtin_trap();
        used4 += u;
        out4.append(buf.data(), produced);
    }
    if (used4 != used || out4 != out || fixed.done() != whole.done() || fixed.size() != whole.size()) __builtin_trap();

    for (std::size_t i = 0; i < out.size(); ++i) {
        if (out[i] == '\r' && (i + 1 == out.size() || out[i + 1] != '\n')) __builtin_trap();
        if (out[i] == '\n' && (i == 0 || out[i - 1] != '\r')) __builtin_trap();
    }
    if (whole.done()) {  // "." and CRs and LF, at the start or after CRLF
        std::size_t k = used - 1;
        if (in[k] != '\n' || k == 0 || in[k - 1] != '\r') __builtin_trap();
        while (k > 0 && in[k - 1] == '\r') --k;
        if (k == 0 || in[k - 1] != '.') __builtin_trap();
        --k;
        if (k != 0 && (k < 2 || in[k - 2] != '\r' || in[k - 1] != '\n')) __builtin_trap();
    }

    // Once the end was found, what goes downstream (the body, then the final dot)
    // decodes to itself and ends exactly at that dot.
    if (whole.done()) {
        std::string wire = out + ".\r\n";
        DataDecoder again;
        std::string out3;
        std::size_t used3 = again.feed(wire.data(), wire.size(), out3);
        if (!again.done() || used3 != wire.size() || out3 != out) __builtin_trap();
        if (out.rfind(".\r\n", 0) == 0 || out.find("\r\n.\r\n") != std::string::npos) __builtin_trap();
    }

    std::string reply;
    for (const char* kw : {"FROM", "TO"}) {
        auto p = parse_path(in, kw, true, true, &reply);
        if (p) {
            if (p->path.find_first_of(std::string("\r\n\0", 3)) != std::string::npos) __builtin_trap();
            (void)check_mail_params(*p, MailLimits{1000, true}, &reply);
        } else if (reply.rfind("501 5.5.4", 0) != 0) {
            __builtin_trap();
        }
    }
    (void)split_command(in);
    return 0;
}
