// escape.cpp: \xHH escaping of untrusted bytes for log lines (see escape.hpp).
#include <xproxy/base/escape.hpp>

namespace xproxy {

namespace {

constexpr char kHex[] = "0123456789abcdef";

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

namespace {

// The escaping loop; `also` holds the printable bytes that are written as \xHH too.
bool escape_into(std::string& out, std::string_view in, std::size_t max_output, std::string_view also) {
    std::size_t written = 0;
    for (char ch : in) {
        const auto c = static_cast<unsigned char>(ch);
        const bool plain = c >= 0x20 && c < 0x7F && also.find(ch) == std::string_view::npos;
        const std::size_t need = (c == '\\') ? 2 : plain ? 1 : 4;
        if (max_output != 0 && written + need > max_output) {
            out += "...";
            return false;
        }
        if (c == '\\') {
            out += "\\\\";
        } else if (need == 1) {
            out += ch;
        } else {
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 0x0F];
        }
        written += need;
    }
    return true;
}

std::string escaped(std::string_view in, std::size_t max_output, std::string_view also) {
    std::string out;
    out.reserve(max_output != 0 && in.size() > max_output ? max_output + 3 : in.size());
    escape_into(out, in, max_output, also);
    return out;
}

}  // namespace

bool escape_append(std::string& out, std::string_view in, std::size_t max_output) {
    return escape_into(out, in, max_output, {});
}

std::string escape(std::string_view in, std::size_t max_output) { return escaped(in, max_output, {}); }

std::string escape_value(std::string_view in, std::size_t max_output, bool quoted) {
    return escaped(in, max_output, quoted ? std::string_view("\"") : std::string_view("\" "));
}

std::optional<std::string> unescape(std::string_view escaped) {
    std::string out;
    out.reserve(escaped.size());
    for (std::size_t i = 0; i < escaped.size(); ++i) {
        const auto c = static_cast<unsigned char>(escaped[i]);
        if (c < 0x20 || c >= 0x7F) return std::nullopt;
        if (c != '\\') {
            out += escaped[i];
            continue;
        }
        if (i + 1 < escaped.size() && escaped[i + 1] == '\\') {
            out += '\\';
            i += 1;
            continue;
        }
        if (i + 3 >= escaped.size() || escaped[i + 1] != 'x') return std::nullopt;
        const int hi = hex_value(escaped[i + 2]);
        const int lo = hex_value(escaped[i + 3]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out += static_cast<char>(hi * 16 + lo);
        i += 3;
    }
    return out;
}

}  // namespace xproxy
