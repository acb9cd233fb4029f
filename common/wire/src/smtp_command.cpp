// smtp_command.cpp: front-side SMTP command syntax; see smtp_command.hpp.
#include <xproxy/base/text.hpp>
#include <xproxy/wire/smtp_command.hpp>

#include <algorithm>
#include <cctype>

namespace xproxy::smtp {

namespace {

// A SIZE value: at most 19 characters (leading zeros count), so it fits 64 bits.
std::optional<std::uint64_t> parse_u64(std::string_view s) {
    return s.size() <= 19 ? parse_decimal<std::uint64_t>(s) : std::nullopt;
}

bool is_esmtp_keyword(std::string_view k) {
    if (k.empty()) return false;
    for (char c : k)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    return std::isalnum(static_cast<unsigned char>(k[0])) != 0;
}

bool is_esmtp_value(std::string_view v) {
    if (v.empty()) return false;
    for (char ch : v) {
        auto c = static_cast<unsigned char>(ch);
        if (c < 33 || c == '=' || c > 126) return false;
    }
    return true;
}

// The value of the first pair named `key` in an ordered NAME -> value list.
const std::string* find_value(const std::vector<std::pair<std::string, std::string>>& list, std::string_view key) {
    for (const auto& [name, value] : list)
        if (name == key) return &value;
    return nullptr;
}

}  // namespace

CommandLine split_command(std::string_view line) {
    CommandLine c;
    std::size_t i = 0;
    while (i < line.size() && line[i] != ' ') ++i;
    c.verb = to_upper(line.substr(0, i));
    while (i < line.size() && line[i] == ' ') ++i;
    std::string_view rest = line.substr(i);
    while (!rest.empty() && (rest.back() == ' ' || rest.back() == '\t')) rest.remove_suffix(1);
    c.arg = std::string(rest);
    return c;
}

bool PathArg::has(std::string_view name) const { return get(name) != nullptr; }

const std::string* PathArg::get(std::string_view name) const { return find_value(params, name); }

std::optional<PathArg> parse_path(std::string_view arg, std::string_view keyword, bool allow_null, bool allow_8bit,
                                  std::string* reply) {
    auto fail = [&](const char* why) -> std::optional<PathArg> {
        *reply = std::string("501 5.5.4 Syntax: ") + why;
        return std::nullopt;
    };
    if (arg.size() < keyword.size() + 1 || !iequals(arg.substr(0, keyword.size()), keyword) ||
        arg[keyword.size()] != ':')
        return fail(keyword == "FROM" ? "MAIL FROM:<address>" : "RCPT TO:<address>");
    std::string_view rest = arg.substr(keyword.size() + 1);
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    if (rest.empty() || rest.front() != '<') return fail("address must be in angle brackets");
    // Find the closing '>' outside a quoted local part.
    bool quoted = false;
    std::size_t end = std::string_view::npos;
    for (std::size_t i = 1; i < rest.size(); ++i) {
        char c = rest[i];
        if (quoted && c == '\\' && i + 1 < rest.size()) {
            ++i;
            continue;
        }
        if (c == '"') quoted = !quoted;
        else if (c == '>' && !quoted) {
            end = i;
            break;
        }
    }
    if (end == std::string_view::npos) return fail("unterminated address");
    PathArg out;
    out.path = std::string(rest.substr(1, end - 1));
    for (char ch : out.path) {
        auto c = static_cast<unsigned char>(ch);
        if (c < 32 || c == 127) return fail("control character in address");
        if (c >= 128 && !allow_8bit) return fail("8-bit address without SMTPUTF8");
    }
    if (out.path.empty() && !allow_null) return fail("empty address");
    rest = rest.substr(end + 1);
    if (!rest.empty() && rest.front() != ' ') return fail("garbage after address");
    while (!rest.empty()) {
        while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
        if (rest.empty()) break;
        auto sp = rest.find(' ');
        std::string_view item = rest.substr(0, sp);
        rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp);
        auto eq = item.find('=');
        std::string_view name = item.substr(0, eq);
        std::string_view value = eq == std::string_view::npos ? std::string_view{} : item.substr(eq + 1);
        if (!is_esmtp_keyword(name) || (eq != std::string_view::npos && !is_esmtp_value(value)))
            return fail("bad parameter");
        std::string uname = to_upper(name);
        if (out.has(uname)) return fail("repeated parameter");
        out.params.emplace_back(uname, std::string(value));
    }
    return out;
}

std::optional<MailParams> check_mail_params(const PathArg& mail, const MailLimits& limits, std::string* reply) {
    MailParams p;
    for (const auto& [name, value] : mail.params) {
        if (name == "SIZE") {
            auto v = parse_u64(value);
            if (!v) {
                *reply = "501 5.5.4 Bad SIZE parameter";
                return std::nullopt;
            }
            p.size = *v;
        } else if (name == "BODY") {
            if (iequals(value, "8BITMIME")) p.eight_bit = true;
            else if (!iequals(value, "7BIT")) {
                *reply = "501 5.5.4 Bad BODY parameter";
                return std::nullopt;
            }
        } else if (name == "SMTPUTF8" && value.empty()) {
            p.smtputf8 = true;
        } else if (name == "REQUIRETLS" && value.empty() && limits.requiretls) {
            p.requiretls = true;
        } else {
            *reply = "555 5.5.4 Unsupported option: " + name;
            return std::nullopt;
        }
    }
    if (limits.max_size && p.size > limits.max_size) {
        *reply = "552 5.3.4 Message size exceeds fixed limit";
        return std::nullopt;
    }
    return p;
}

bool EhloKeywords::has(std::string_view kw) const { return get(kw) != nullptr; }

const std::string* EhloKeywords::get(std::string_view kw) const { return find_value(items, kw); }

EhloKeywords parse_ehlo(const std::vector<std::string>& reply_lines) {
    EhloKeywords k;
    for (std::size_t i = 1; i < reply_lines.size(); ++i) {
        std::string_view l = reply_lines[i];
        auto sp = l.find(' ');
        std::string kw = to_upper(l.substr(0, sp));
        std::string rest = sp == std::string_view::npos ? std::string() : std::string(l.substr(sp + 1));
        if (!kw.empty() && !k.has(kw)) k.items.emplace_back(kw, rest);
    }
    return k;
}

std::optional<std::string> refuse_for_downstream(const MailParams& p, const EhloKeywords& ds, bool downstream_tls) {
    if (p.smtputf8 && !ds.has("SMTPUTF8")) return "553 5.6.7 SMTPUTF8 is not supported by the next hop";
    if (p.eight_bit && !ds.has("8BITMIME")) return "554 5.6.3 8BITMIME is not supported by the next hop";
    if (p.requiretls && (!ds.has("REQUIRETLS") || !downstream_tls))
        return "550 5.7.30 REQUIRETLS is not supported by the next hop";
    if (p.size) {
        if (const std::string* lim = ds.get("SIZE")) {
            auto v = parse_u64(*lim);
            if (v && *v > 0 && p.size > *v) return "552 5.3.4 Message size exceeds the next hop's limit";
        }
    }
    return std::nullopt;
}

std::string downstream_mail_line(const PathArg& mail, const MailParams& p, const EhloKeywords& ds) {
    std::string line = "MAIL FROM:<" + mail.path + ">";
    if (p.size && ds.has("SIZE")) line += " SIZE=" + std::to_string(p.size);
    if (p.eight_bit) line += " BODY=8BITMIME";
    if (p.smtputf8) line += " SMTPUTF8";
    if (p.requiretls) line += " REQUIRETLS";
    line += "\r\n";
    return line;
}

}  // namespace xproxy::smtp
