// smtp_reply.cpp: SMTP reply decoding and the reading of its parts; see smtp_reply.hpp.
#include <xproxy/wire/smtp_reply.hpp>

#include <xproxy/base/text.hpp>

namespace xproxy::smtp {

namespace {

// What there is of a line's first four bytes: three digits (the first 2 to 5, all equal
// to `code`'s once a line set it) and a separator.
bool good_start(std::string_view rest, int code) {
    const std::string c = code ? std::to_string(code) : std::string();
    for (std::size_t k = 0; k < rest.size() && k < 4; ++k) {
        const char ch = rest[k];
        if (k == 0 && (ch < '2' || ch > '5')) return false;
        if (k < 3 && !ascii_digit(ch)) return false;
        if (k < 3 && code && ch != c[k]) return false;
        if (k == 3 && ch != ' ' && ch != '-' && ch != '\r' && ch != '\n') return false;
    }
    return true;
}

// An RFC 3463 status code's length at the start of `t` ("5.1.1", "4.7.30": class digit,
// then 1-3 digits twice), followed by a space or the end; 0 when there is none.
std::size_t status_length(std::string_view t, char klass) {
    if (t.size() < 5 || t[0] != klass || t[1] != '.') return 0;
    std::size_t i = 2;
    for (int part = 0; part < 2; ++part) {
        const std::size_t start = i;
        while (i < t.size() && ascii_digit(t[i]) && i - start < 4) ++i;
        if (i == start || i - start > 3) return 0;
        if (part == 0) {
            if (i >= t.size() || t[i] != '.') return 0;
            ++i;
        }
    }
    return i == t.size() || t[i] == ' ' ? i : 0;
}

bool queue_id_char(char c) {
    return ascii_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '.' || c == '-' || c == '_';
}

}  // namespace

DecodeResult decode_reply(std::string_view buf, SmtpReply& out) {
    SmtpReply r;
    std::size_t pos = 0;
    for (;;) {
        const std::string_view rest = buf.substr(pos);
        if (!good_start(rest, r.code)) return DecodeResult::bad("malformed reply line");
        const auto nl = rest.find('\n');
        if (nl == std::string_view::npos) {
            if (rest.size() >= kMaxReplyLineBytes) return DecodeResult::bad("reply line too long");
            return DecodeResult::more();
        }
        if (nl + 1 > kMaxReplyLineBytes) return DecodeResult::bad("reply line too long");
        if (r.lines.size() >= kMaxReplyLinesCount) return DecodeResult::bad("too many reply lines");
        std::string_view line = rest.substr(0, nl);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.size() < 3) return DecodeResult::bad("malformed reply line");
        r.code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        r.lines.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view());
        pos += nl + 1;
        if (line.size() == 3 || line[3] == ' ') {
            out = std::move(r);
            return DecodeResult::done(pos);
        }
    }
}

std::string enhanced_status(const SmtpReply& r) {
    if (r.lines.empty() || r.code < 200 || r.code > 599) return {};
    const std::string_view t = r.lines.front();
    return std::string(t.substr(0, status_length(t, static_cast<char>('0' + r.code / 100))));
}

std::string printable_text(const SmtpReply& r, std::size_t max) {
    const std::string status = enhanced_status(r);
    std::string out;
    for (const auto& l : r.lines) {
        std::string_view t = l;
        if (!status.empty() && t.substr(0, status.size()) == status &&
            (t.size() == status.size() || t[status.size()] == ' '))
            t.remove_prefix(status.size());
        t = trim(t, " ");
        if (t.empty()) continue;
        if (!out.empty()) out += ' ';
        for (char c : t) out += c >= ' ' && c <= '~' ? c : '?';
        if (out.size() >= max) break;
    }
    if (out.size() > max) out.resize(max);
    return out;
}

std::string queued_as(const SmtpReply& r) {
    constexpr std::string_view key = "queued as ";
    for (const auto& l : r.lines) {
        const std::string_view t = l;
        for (std::size_t i = 0; i + key.size() <= t.size(); ++i) {
            if (!istarts_with(t.substr(i), key)) continue;
            std::size_t j = i + key.size();
            const std::size_t start = j;
            while (j < t.size() && queue_id_char(t[j])) ++j;
            // Up to a space, the end or a closing parenthesis (Sendmail: "(queued as ...)").
            if (j == start || j - start > kMaxQueueId) return {};
            if (j < t.size() && t[j] != ' ' && t[j] != ')') return {};
            return std::string(t.substr(start, j - start));
        }
    }
    return {};
}

}  // namespace xproxy::smtp
