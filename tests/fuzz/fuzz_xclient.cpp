// fuzz_xclient: the attribute-command parser, XCLIENT / XFORWARD parsing, merging and
// application, and the EHLO keyword parsers. Every line the parsers accept re-encodes
// into commands of at most 512 bytes that parse back to the same model.
#include <cstdint>
#include <string>

#include <xproxy/wire/xclient.hpp>

namespace {

using namespace xproxy::smtp;

template <class Model, class ParseFn>
void round_trip(const Model& m, ParseFn parse) {
    auto e = encode(m);
    if (!e) __builtin_trap();
    Model back;
    for (const auto& l : e.lines) {
        if (l.size() > kMaxCommandLine) __builtin_trap();
        auto p = parse(l);
        if (!p) __builtin_trap();
        merge(back, *p);
    }
    if (!(back == m)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    (void)parse_command(in);
    Xclient xc;
    Xforward xf;
    bool any_c = false, any_f = false;
    std::size_t pos = 0;
    while (pos < in.size()) {  // one command per line
        auto nl = in.find('\n', pos);
        auto line = in.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl + 1 - pos);
        pos = nl == std::string_view::npos ? in.size() : nl + 1;
        if (auto c = parse_xclient(line)) {
            round_trip(*c, [](std::string_view l) { return parse_xclient(l); });
            merge(xc, *c);
            any_c = true;
        } else if (c.error().empty()) {
            __builtin_trap();
        }
        if (auto f = parse_xforward(line)) {
            round_trip(*f, [](std::string_view l) { return parse_xforward(l); });
            merge(xf, *f);
            any_f = true;
        }
    }
    xproxy::SourceInfo si;
    if (any_c) {
        apply(xc, si);
        // What the source now says can be announced again.
        if (!encode_xclient(si)) __builtin_trap();
    }
    if (any_f) apply(xf, si);
    (void)parse_ehlo_keyword(in);
    (void)find_ehlo_keyword(in, "XCLIENT");
    return 0;
}
