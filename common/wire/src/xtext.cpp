// xtext.cpp: RFC 3461 xtext encoding (canonical, upper-case hex) and strict decoding.
#include <xproxy/wire/xtext.hpp>

namespace xproxy {

namespace {

constexpr char kHex[] = "0123456789ABCDEF";

bool is_xchar(unsigned char c) { return c >= 33 && c <= 126 && c != '+' && c != '='; }

// 0..15 for an upper-case hex digit, -1 for a lower-case one, -2 for anything else.
int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return -1;
    return -2;
}

}  // namespace

std::string xtext_encode(std::string_view raw) {
    std::string out;
    out.reserve(raw.size());
    for (char ch : raw) {
        auto c = static_cast<unsigned char>(ch);
        if (is_xchar(c)) {
            out += ch;
        } else {
            out += '+';
            out += kHex[c >> 4];
            out += kHex[c & 15];
        }
    }
    return out;
}

std::optional<std::string> xtext_decode(std::string_view text, bool allow_controls) {
    return xtext_decode(text, allow_controls, nullptr);
}

std::optional<std::string> xtext_decode(std::string_view text, bool allow_controls, std::string_view* reason) {
    auto fail = [reason](std::string_view why) -> std::optional<std::string> {
        if (reason) *reason = why;
        return std::nullopt;
    };
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        auto c = static_cast<unsigned char>(text[i]);
        if (c == '+') {
            if (text.size() - i < 3) return fail("truncated +HH escape");
            int hi = hex_value(text[i + 1]), lo = hex_value(text[i + 2]);
            if (hi == -1 || lo == -1) return fail("lower-case hex digit in +HH");
            if (hi < 0 || lo < 0) return fail("non-hex digit in +HH");
            char d = static_cast<char>(hi * 16 + lo);
            if (!allow_controls && (d == '\0' || d == '\r' || d == '\n')) return fail("NUL, CR or LF in value");
            out += d;
            i += 2;
        } else if (c == '=') {
            return fail("raw '=' (must be +3D)");
        } else if (is_xchar(c)) {
            out += static_cast<char>(c);
        } else {
            return fail("byte outside 33..126 (must be +HH)");
        }
    }
    return out;
}

}  // namespace xproxy
