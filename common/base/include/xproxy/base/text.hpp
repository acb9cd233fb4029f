// text.hpp: the ASCII text helpers every protocol parser needs, written once.
//
// SMTP verbs, ESMTP keywords, XCLIENT attribute names, header names, policy attribute
// names and configuration words are ASCII and case-insensitive; numbers on the wire and
// in configuration files are unsigned decimal. None of these use the C locale: isalpha(),
// tolower() and strtoul() depend on it and accept signs, spaces and "0x".
#pragma once

#include <charconv>
#include <cstddef>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

namespace xproxy {

constexpr char ascii_upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }
constexpr char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
constexpr bool ascii_digit(char c) { return c >= '0' && c <= '9'; }

// ASCII case-insensitive comparison (bytes >= 0x80 compare exactly).
constexpr bool istarts_with(std::string_view text, std::string_view prefix) {
    if (text.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i)
        if (ascii_upper(text[i]) != ascii_upper(prefix[i])) return false;
    return true;
}
constexpr bool iequals(std::string_view a, std::string_view b) { return a.size() == b.size() && istarts_with(a, b); }

// A copy of `s` in ASCII upper / lower case (bytes >= 0x80 unchanged).
inline std::string to_upper(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = ascii_upper(c);
    return out;
}
inline std::string to_lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = ascii_lower(c);
    return out;
}

// `s` without the leading and trailing bytes that are in `chars`.
inline constexpr std::string_view kBlanks = " \t";
inline constexpr std::string_view kWhitespace = " \t\r\n";
constexpr std::string_view trim(std::string_view s, std::string_view chars = kWhitespace) {
    while (!s.empty() && chars.find(s.front()) != std::string_view::npos) s.remove_prefix(1);
    while (!s.empty() && chars.find(s.back()) != std::string_view::npos) s.remove_suffix(1);
    return s;
}

enum class LeadingZeros { allowed, forbidden };

// An unsigned decimal number that is the whole of `s`: digits only (no sign, no space,
// no "0x"), at least one, at most `max`. With LeadingZeros::forbidden, "0" is the only
// number that may start with 0 (the canonical form, as wire formats that are signed or
// compared byte for byte need).
template <class T>
constexpr std::optional<T> parse_decimal(std::string_view s, T max = std::numeric_limits<T>::max(),
                                         LeadingZeros zeros = LeadingZeros::allowed) {
    static_assert(std::is_unsigned_v<T>, "parse_decimal reads unsigned numbers");
    if (s.empty()) return std::nullopt;
    if (zeros == LeadingZeros::forbidden && s.size() > 1 && s[0] == '0') return std::nullopt;
    for (char c : s)
        if (!ascii_digit(c)) return std::nullopt;
    T v{};
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || v > max) return std::nullopt;
    return v;
}

}  // namespace xproxy
