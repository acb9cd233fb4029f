// fuzz_bdat: the BDAT argument parser and a chunked body's DATA form (xproxy_wire). A
// valid argument always has a size and prints back to an equivalent argument; the DATA
// form must not depend on where the body is cut, never holds a CR or LF outside a CRLF
// pair nor a lone "." line, and followed by ".\r\n" the DATA decoder reads it back as
// itself, ending exactly after that dot (a BDAT body relayed with DATA can neither end
// early nor smuggle a command).
#include <cstdint>
#include <string>

#include <xproxy/wire/bdat.hpp>
#include <xproxy/wire/data_decoder.hpp>

using namespace xproxy::smtp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);

    const BdatArg a = parse_bdat(in);
    if (a.valid && !a.size) __builtin_trap();
    if (a.last && !a.valid) __builtin_trap();
    if (a.valid) {
        const BdatArg b = parse_bdat(std::to_string(*a.size) + (a.last ? " LAST" : ""));
        if (!b.valid || b.size != a.size || b.last != a.last) __builtin_trap();
    }

    BdatToData whole;
    std::string out;
    whole.feed(in, out);
    whole.finish(out);

    const std::size_t cut = size ? data[0] % (size + 1) : 0;
    BdatToData split;
    std::string out2;
    split.feed(in.substr(0, cut), out2);
    split.feed(in.substr(cut), out2);
    split.finish(out2);
    if (out2 != out) __builtin_trap();

    if (!out.empty() && (out.size() < 2 || out.compare(out.size() - 2, 2, "\r\n") != 0)) __builtin_trap();
    for (std::size_t i = 0; i < out.size(); ++i) {
        if (out[i] == '\r' && (i + 1 == out.size() || out[i + 1] != '\n')) __builtin_trap();
        if (out[i] == '\n' && (i == 0 || out[i - 1] != '\r')) __builtin_trap();
    }
    if (out.rfind(".\r\n", 0) == 0 || out.find("\r\n.\r\n") != std::string::npos) __builtin_trap();

    const std::string body = out + ".\r\n";
    DataDecoder d;
    std::string back;
    const std::size_t used = d.feed(body.data(), body.size(), back);
    if (!d.done() || used != body.size() || back != out) __builtin_trap();
    return 0;
}
