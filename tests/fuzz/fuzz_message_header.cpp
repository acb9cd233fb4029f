// fuzz_message_header: parse_message_header() and parse_received() on arbitrary input
// never crash and never read past it; a parsed header keeps its promises: every field
// name is printable ASCII without ':', every value is trimmed and holds no line break
// but inside a folded (CR)LF+WSP, and no field starts after the input's line count.
// parse_received() runs on every Received value, and on the whole input as a value.
#include <cstdint>
#include <string>

#include <xproxy/wire/message_header.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace xproxy;
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    MessageLimits lim;
    lim.max_header_bytes = 65536;
    lim.max_fields = 200;
    lim.max_field_bytes = 4096;
    auto h = parse_message_header(in, lim);
    if (h) {
        if (h->fields.size() > lim.max_fields) __builtin_trap();
        std::size_t lines = 1;
        for (char c : in) lines += c == '\n' ? 1 : 0;
        for (const auto& f : h->fields) {
            if (f.name.empty() || f.line == 0 || f.line > lines) __builtin_trap();
            for (char c : f.name)
                if (c == ':' || static_cast<unsigned char>(c) < 33 || static_cast<unsigned char>(c) > 126)
                    __builtin_trap();
            if (!f.value.empty() && (f.value.front() == ' ' || f.value.back() == ' ')) __builtin_trap();
            for (std::size_t i = 0; i < f.value.size(); ++i)
                if (f.value[i] == '\n' &&
                    (i + 1 >= f.value.size() || (f.value[i + 1] != ' ' && f.value[i + 1] != '\t')))
                    __builtin_trap();
            if (f.value.size() > lim.max_field_bytes + 1024) __builtin_trap();
            auto r = parse_received(f.value);
            if (r.from_ip.size() > f.value.size()) __builtin_trap();
        }
    }
    auto whole = parse_received(in);
    if (whole.date.size() > size || whole.from.size() > size + 8) __builtin_trap();
    return 0;
}
