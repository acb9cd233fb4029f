// proxy_v1.cpp: the PROXY protocol v1 text line, encode and incremental decode.
//
// The decoder is one left-to-right pass that checks every byte as it arrives, so it says
// need_more exactly while the bytes seen can still be completed into a valid line of at
// most 107 bytes, and invalid at the first byte that makes that impossible (including
// when even the shortest completion would pass 107 bytes). IPv4 and IPv6 literals are
// parsed here, not by inet_pton: this is what lets a partial address be judged, and the
// fuzz target checks the result against inet_pton for complete ones.
#include <array>
#include <cstring>
#include <string>

#include "proxy_internal.hpp"
#include <xproxy/wire/proxy_protocol.hpp>

namespace xproxy::pp {

namespace {

enum class Step { ok, more, bad };

// The input and the decoder's position in it; `why` holds the reason of a `bad` step.
struct Scan {
    const std::uint8_t* d;
    std::size_t n;
    std::size_t pos = 0;
    std::string_view why{};

    bool at_end() const { return pos == n; }
    Step fail(std::string_view reason) {
        why = reason;
        return Step::bad;
    }
};

bool is_digit(std::uint8_t c) { return c >= '0' && c <= '9'; }

// Matches `lit` at s.pos: more if the input stops inside it while matching.
Step literal(Scan& s, std::string_view lit, std::string_view reason) {
    std::size_t avail = s.n - s.pos;
    std::size_t m = avail < lit.size() ? avail : lit.size();
    if (std::memcmp(s.d + s.pos, lit.data(), m) != 0) return s.fail(reason);
    s.pos += m;
    return m == lit.size() ? Step::ok : Step::more;
}

// Where a partial token stopped, to compute the shortest possible completion.
struct Partial {
    std::size_t min_rest = 0;  // bytes still needed to finish the current token
};

// A decimal number at s.pos: at least one digit (else `none`), no leading zero, at most
// `max`. ok: s.pos is after the last digit, at a byte that is not a digit. more: the
// input ended (`digits` digits so far, and the number could still grow).
[[gnu::always_inline]] inline Step scan_decimal(Scan& s, unsigned max, unsigned& value, std::size_t& digits,
                                                std::string_view none, std::string_view leading_zero,
                                                std::string_view too_big) {
    const std::uint8_t* const p = s.d + s.pos;
    const std::size_t avail = s.n - s.pos;
    digits = 0;
    if (avail == 0) return Step::more;
    unsigned v = static_cast<unsigned>(p[0]) - '0';
    if (v > 9) return s.fail(none);
    std::size_t i = 1;
    if (v == 0) {  // "0" is the whole number
        if (avail > 1 && is_digit(p[1])) return s.fail(leading_zero);
    } else {
        for (; i < avail; ++i) {
            const unsigned c = static_cast<unsigned>(p[i]) - '0';
            if (c > 9) break;
            v = v * 10 + c;
            if (v > max) return s.fail(too_big);
        }
    }
    s.pos += i;
    digits = i;
    value = v;
    return i == avail ? Step::more : Step::ok;
}

// Decimal octets idx..3 of a dotted quad at s.pos (for idx > 0 the '.' before octet idx
// has been consumed). ok: stopped right after the 4th octet's last digit, at a byte that
// is not a digit (the input ending there is `more`: the octet could still grow).
[[gnu::always_inline]] inline Step scan_octets(Scan& s, std::uint8_t out[4], int idx, Partial& part) {
    for (int o = idx; o < 4; ++o) {
        unsigned v = 0;
        std::size_t digits = 0;
        const Step r = scan_decimal(s, 255, v, digits, "IPv4 octet expected", "leading zero in IPv4 octet",
                                    "IPv4 octet above 255");
        if (r == Step::more) {
            const auto missing = static_cast<std::size_t>(3 - o);
            part.min_rest = digits > 0 ? 2 * missing : 1 + 2 * missing;
        }
        if (r != Step::ok) return r;
        out[o] = static_cast<std::uint8_t>(v);
        if (o < 3) {
            if (s.d[s.pos] != '.') return s.fail("'.' expected in IPv4 address");
            ++s.pos;
        }
    }
    return Step::ok;
}

constexpr std::array<std::int8_t, 256> kHexValue = [] {
    std::array<std::int8_t, 256> t{};
    t.fill(-1);
    for (int c = '0'; c <= '9'; ++c) t[static_cast<std::size_t>(c)] = static_cast<std::int8_t>(c - '0');
    for (int c = 'a'; c <= 'f'; ++c) t[static_cast<std::size_t>(c)] = static_cast<std::int8_t>(c - 'a' + 10);
    for (int c = 'A'; c <= 'F'; ++c) t[static_cast<std::size_t>(c)] = static_cast<std::int8_t>(c - 'A' + 10);
    return t;
}();

// An IPv6 literal (RFC 4291 text: groups of 1-4 hex digits, one "::", optional dotted
// IPv4 tail) ending at a space. ok: s.pos is at that space and out holds the address.
// Walks group by group; `prev` is what came before the current group. The position is
// kept in a local (written back to s.pos on ok/more) so that it stays in a register.
Step scan_v6(Scan& s, std::uint8_t out[16], Partial& part) {
    std::uint16_t groups[8] = {};
    int k = 0;     // completed 16-bit groups (an IPv4 tail counts for two)
    int dbl = -1;  // number of groups before "::", -1 if none
    enum { start, colon, double_colon } prev = start;
    const std::uint8_t* const d = s.d;
    const std::size_t n = s.n;
    std::size_t pos = s.pos;
    if (pos < n && d[pos] == ':') {  // only "::" may open the literal
        if (++pos == n) {
            s.pos = pos;
            part.min_rest = 1;
            return Step::more;
        }
        if (d[pos] != ':') return s.fail("IPv6 address starts with a single ':'");
        ++pos;
        dbl = 0;
        prev = double_colon;
    }
    // Fast path for the groups of the common form, 1 to 4 hex digits and a ':', while a
    // whole group, its ':' and the byte after it are here and the group cannot be one too
    // many: the general loop below would do exactly the same with more checks. Anything
    // else (the last group, "::", an IPv4 tail, an error) is left to it, from the group's
    // first digit.
    const int max_fast = dbl >= 0 ? 5 : 6;  // groups stored before this one, at most
    while (n - pos >= 6 && k <= max_fast) {
        const int h0 = kHexValue[d[pos]];
        if (h0 < 0) break;
        unsigned val = static_cast<unsigned>(h0);
        std::size_t e = pos + 1;  // after the group's digits
        for (int i = 0; i < 3; ++i) {
            const int h = kHexValue[d[e]];
            if (h < 0) break;
            val = val << 4 | static_cast<unsigned>(h);
            ++e;
        }
        if (d[e] != ':') break;
        groups[k++] = static_cast<std::uint16_t>(val);
        prev = colon;
        pos = e + 1;
    }
    for (;;) {
        const std::size_t g0 = pos;
        unsigned val = 0;
        if (n - pos >= 5) {  // a whole group and the byte after it are here: no bound checks
            const int h0 = kHexValue[d[pos]];
            if (h0 >= 0) {
                val = static_cast<unsigned>(h0);
                ++pos;
                for (int i = 0; i < 3; ++i) {
                    const int h = kHexValue[d[pos]];
                    if (h < 0) break;
                    val = val << 4 | static_cast<unsigned>(h);
                    ++pos;
                }
            }
        } else {
            while (pos < n && pos - g0 < 4) {
                const int h = kHexValue[d[pos]];
                if (h < 0) break;
                val = val << 4 | static_cast<unsigned>(h);
                ++pos;
            }
        }
        const std::size_t nd = pos - g0;
        if (nd > 0 && dbl >= 0 && k == 7) return s.fail("too many IPv6 groups");
        if (pos == n) {
            s.pos = pos;
            if (nd > 0) {
                part.min_rest = (dbl >= 0 || k == 7) ? 0 : 2;  // "::" completes it
            } else {
                part.min_rest = prev == start ? 2 : prev == colon ? 1 : 0;
            }
            return Step::more;
        }
        const std::uint8_t c = d[pos];
        if (c == ':') {
            if (nd == 0) {
                if (prev == double_colon) return s.fail("':::' in IPv6 address");
                if (dbl >= 0) return s.fail("second '::' in IPv6 address");
                dbl = k;
                prev = double_colon;
            } else {
                groups[k++] = static_cast<std::uint16_t>(val);
                if (k >= (dbl >= 0 ? 7 : 8)) return s.fail("too many IPv6 groups");
                prev = colon;
            }
            ++pos;
            continue;
        }
        if (nd == 4 && kHexValue[c] >= 0) return s.fail("IPv6 group longer than 4 digits");
        if (c == ' ') {
            if (nd > 0) {
                groups[k++] = static_cast<std::uint16_t>(val);
            } else if (prev != double_colon) {
                return s.fail(prev == start ? "IPv6 address expected" : "IPv6 address ends with a single ':'");
            }
            s.pos = pos;
            break;
        }
        if (c != '.') return s.fail("bad character in IPv6 address");
        // The current group was the first octet of an IPv4 tail: decimal, no leading
        // zero, <= 255, and exactly two group slots must remain for it.
        if (nd == 0) return s.fail("misplaced '.' in IPv6 address");
        if (dbl >= 0 ? k > 5 : k != 6) return s.fail("IPv4 tail at the wrong place in IPv6 address");
        unsigned v = 0;
        for (std::size_t i = g0; i < pos; ++i) {
            if (!is_digit(d[i])) return s.fail("IPv4 octet expected");
            v = v * 10 + static_cast<unsigned>(d[i] - '0');
        }
        if (nd > 1 && d[g0] == '0') return s.fail("leading zero in IPv4 octet");
        if (v > 255) return s.fail("IPv4 octet above 255");
        s.pos = pos + 1;
        std::uint8_t quad[4];
        quad[0] = static_cast<std::uint8_t>(v);
        const Step r = scan_octets(s, quad, 1, part);
        if (r != Step::ok) return r;
        if (d[s.pos] != ' ') return s.fail("garbage after IPv4 tail of IPv6 address");
        groups[k++] = static_cast<std::uint16_t>(quad[0] << 8 | quad[1]);
        groups[k++] = static_cast<std::uint16_t>(quad[2] << 8 | quad[3]);
        break;
    }
    if (dbl < 0) {
        if (k != 8) return s.fail("IPv6 address too short");
        dbl = k;
    }
    // Groups before the "::" from the front, those after it against the end, zeros between.
    std::memset(out, 0, 16);
    for (int i = 0; i < k; ++i) {
        const int slot = i < dbl ? i : 8 - k + i;
        out[2 * slot] = static_cast<std::uint8_t>(groups[i] >> 8);
        out[2 * slot + 1] = static_cast<std::uint8_t>(groups[i]);
    }
    return Step::ok;
}

// A dotted quad ending at a space.
[[gnu::always_inline]] inline Step scan_v4(Scan& s, std::uint8_t out[4], Partial& part) {
    Step r = scan_octets(s, out, 0, part);
    if (r != Step::ok) return r;
    if (s.d[s.pos] != ' ') return s.fail("space expected after IPv4 address");
    return Step::ok;
}

// A decimal port 0..65535 without leading zeros; ok: s.pos is at the byte after it
// (which the caller checks). more: part.min_rest is 0 or 1 (a digit is still needed).
[[gnu::always_inline]] inline Step scan_port(Scan& s, std::uint16_t& port, Partial& part) {
    unsigned v = 0;
    std::size_t digits = 0;
    const Step r = scan_decimal(s, 65535, v, digits, "port expected", "leading zero in port", "port above 65535");
    if (r == Step::more) part.min_rest = digits > 0 ? 0 : 1;
    port = static_cast<std::uint16_t>(v);
    return r;
}

constexpr std::string_view kTooLong = "no CRLF within 107 bytes";

// need_more, unless even the shortest completion (rest more bytes) passes 107 bytes.
DecodeResult more_within_limit(const Scan& s, std::size_t rest) {
    return s.pos + rest > kV1MaxLength ? DecodeResult::bad(kTooLong) : DecodeResult::more();
}

// "UNKNOWN" has been matched: anything but CR and LF up to the CRLF.
DecodeResult finish_unknown(Scan& s) {
    for (; s.pos < s.n; ++s.pos) {
        std::uint8_t c = s.d[s.pos];
        if (c == '\n') return DecodeResult::bad("LF without CR");
        if (c != '\r') continue;
        if (s.pos + 2 > kV1MaxLength) return DecodeResult::bad(kTooLong);
        if (s.pos + 1 == s.n) return DecodeResult::more();
        if (s.d[s.pos + 1] != '\n') return DecodeResult::bad("CR without LF");
        return DecodeResult::done(s.pos + 2);
    }
    return more_within_limit(s, 2);
}

// "PROXY TCP4 ", "PROXY TCP6 " or "PROXY UNKNOWN" at the start, byte by byte.
Step scan_keyword(Scan& s, bool& v6, bool& unknown) {
    Step r = literal(s, "PROXY ", "not a PROXY v1 header");
    if (r != Step::ok) return r;
    if (s.at_end()) return Step::more;
    if (s.d[s.pos] == 'U') {
        unknown = true;
        return literal(s, "UNKNOWN", "unknown v1 protocol");
    }
    r = literal(s, "TCP", "unknown v1 protocol");
    if (r != Step::ok) return r;
    if (s.at_end()) return Step::more;
    v6 = s.d[s.pos] == '6';
    if (!v6 && s.d[s.pos] != '4') return s.fail("unknown v1 protocol");
    ++s.pos;
    if (s.at_end()) return Step::more;
    if (s.d[s.pos] != ' ') return s.fail("single space expected after protocol");
    ++s.pos;
    return Step::ok;
}

}  // namespace

DecodeResult decode_v1(const std::uint8_t* data, std::size_t size, Header& out) {
    detail::reset_header(out, 1);
    Scan s{data, size};
    Partial part;
    bool v6 = false;
    if (size > 11 && std::memcmp(data, "PROXY TCP", 9) == 0 && (data[9] == '4' || data[9] == '6') && data[10] == ' ') {
        v6 = data[9] == '6';  // the common case, with constant-size compares
        s.pos = 11;
    } else {
        bool unknown = false;
        switch (scan_keyword(s, v6, unknown)) {
            case Step::bad: return DecodeResult::bad(s.why);
            case Step::more: return DecodeResult::more();
            case Step::ok: break;
        }
        if (unknown) return finish_unknown(s);
    }

    // Shortest completions: an address ("0.0.0.0" / "::"), " 0 0\r\n" after the addresses.
    const std::size_t min_addr = v6 ? 2 : 7;
    std::uint8_t src[16], dst[16];
    std::uint16_t sport = 0, dport = 0;

    Step r = v6 ? scan_v6(s, src, part) : scan_v4(s, src, part);
    if (r == Step::bad) return DecodeResult::bad(s.why);
    if (r == Step::more) return more_within_limit(s, part.min_rest + 1 + min_addr + 6);
    ++s.pos;  // the space
    r = v6 ? scan_v6(s, dst, part) : scan_v4(s, dst, part);
    if (r == Step::bad) return DecodeResult::bad(s.why);
    if (r == Step::more) return more_within_limit(s, part.min_rest + 6);
    ++s.pos;

    r = scan_port(s, sport, part);
    if (r == Step::bad) return DecodeResult::bad(s.why);
    if (r == Step::more) return more_within_limit(s, part.min_rest + 4);
    if (s.d[s.pos] != ' ') return DecodeResult::bad("single space expected after source port");
    ++s.pos;
    r = scan_port(s, dport, part);
    if (r == Step::bad) return DecodeResult::bad(s.why);
    if (r == Step::more) return more_within_limit(s, part.min_rest + 2);
    if (s.d[s.pos] != '\r')
        return DecodeResult::bad(s.d[s.pos] == '\n' ? "LF without CR" : "CRLF expected after destination port");
    ++s.pos;
    if (s.at_end()) return more_within_limit(s, 1);
    if (s.d[s.pos] != '\n') return DecodeResult::bad("CR without LF");
    ++s.pos;
    if (s.pos > kV1MaxLength) return DecodeResult::bad(kTooLong);

    out.family = v6 ? Family::inet6 : Family::inet;
    out.transport = Transport::stream;
    out.has_addresses = true;
    if (v6) {
        detail::set_v6(out.source.addr, src);
        detail::set_v6(out.destination.addr, dst);
    } else {
        detail::set_v4(out.source.addr, src);
        detail::set_v4(out.destination.addr, dst);
    }
    out.source.port = sport;
    out.destination.port = dport;
    return DecodeResult::done(s.pos);
}

std::string encode_v1(const std::optional<Endpoint>& src, const std::optional<Endpoint>& dst) {
    if (!src || !dst) return "PROXY UNKNOWN\r\n";
    const bool v4 = src->addr.is_v4() && dst->addr.is_v4();
    std::string line = v4 ? "PROXY TCP4 " : "PROXY TCP6 ";
    line += v4 ? src->addr.to_string() : src->addr.to_v4_mapped().to_string();
    line += ' ';
    line += v4 ? dst->addr.to_string() : dst->addr.to_v4_mapped().to_string();
    line += ' ';
    line += std::to_string(src->port);
    line += ' ';
    line += std::to_string(dst->port);
    line += "\r\n";
    return line;
}

}  // namespace xproxy::pp
