// smtp_attrs.cpp: parse and build "VERB NAME=value ..." command lines.
#include "xproxy/smtp_attrs.hpp"

#include "xproxy/xtext.hpp"

namespace xproxy::smtp {

namespace {

std::string upper(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    return out;
}

bool is_name_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

std::string_view strip_crlf(std::string_view line) {
    if (line.size() >= 2 && line.substr(line.size() - 2) == "\r\n") return line.substr(0, line.size() - 2);
    if (!line.empty() && line.back() == '\n') return line.substr(0, line.size() - 1);
    return line;
}

std::string printable(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 64)) out += (c >= 32 && c < 127) ? c : '?';
    return out;
}

}  // namespace

const Attribute* Command::find(std::string_view name) const {
    for (const auto& a : attrs)
        if (a.name == name) return &a;
    return nullptr;
}

std::optional<Command> parse_command(std::string_view line, const std::set<std::string>& allowed, std::string* error) {
    auto fail = [&](std::string why) -> std::optional<Command> {
        if (error) *error = std::move(why);
        return std::nullopt;
    };
    line = strip_crlf(line);
    if (line.size() + 2 > kMaxCommandLine) return fail("command line longer than 512 bytes");
    for (char c : line)
        if (c == '\r' || c == '\n' || c == '\0') return fail("control character in command line");
    Command cmd;
    std::size_t i = 0;
    while (i < line.size() && line[i] != ' ') ++i;
    cmd.verb = upper(line.substr(0, i));
    if (cmd.verb.empty()) return fail("missing command verb");
    std::set<std::string> seen;
    while (i < line.size()) {
        while (i < line.size() && line[i] == ' ') ++i;
        if (i == line.size()) break;
        std::size_t start = i;
        while (i < line.size() && line[i] != ' ') ++i;
        std::string_view pair = line.substr(start, i - start);
        auto eq = pair.find('=');
        if (eq == std::string_view::npos || eq == 0) return fail("malformed attribute '" + printable(pair) + "'");
        auto name_raw = pair.substr(0, eq);
        for (char c : name_raw)
            if (!is_name_char(c)) return fail("malformed attribute name '" + printable(name_raw) + "'");
        Attribute a;
        a.name = upper(name_raw);
        if (!allowed.empty() && !allowed.count(a.name)) return fail("unknown attribute '" + printable(a.name) + "'");
        if (!seen.insert(a.name).second) return fail("duplicate attribute '" + a.name + "'");
        auto value = pair.substr(eq + 1);
        if (value == "[UNAVAILABLE]") {
            a.status = ValueStatus::unavailable;
        } else if (value == "[TEMPUNAVAIL]") {
            a.status = ValueStatus::tempunavail;
        } else {
            auto decoded = xtext_decode(value);
            if (!decoded) return fail("bad xtext in attribute '" + a.name + "'");
            a.value = std::move(*decoded);
        }
        cmd.attrs.push_back(std::move(a));
    }
    return cmd;
}

std::string format_attribute(const Attribute& a) {
    switch (a.status) {
        case ValueStatus::unavailable: return a.name + "=[UNAVAILABLE]";
        case ValueStatus::tempunavail: return a.name + "=[TEMPUNAVAIL]";
        case ValueStatus::value: break;
    }
    return a.name + "=" + xtext_encode(a.value);
}

std::vector<std::string> pack_commands(std::string_view verb, const std::vector<Attribute>& attrs,
                                       const std::set<std::string>& last) {
    std::vector<std::string> early, final_items;
    for (const auto& a : attrs) (last.count(a.name) ? final_items : early).push_back(format_attribute(a));
    std::vector<std::string> lines;
    std::string cur;
    const std::size_t room = kMaxCommandLine - 2;  // CRLF
    auto flush = [&] {
        if (!cur.empty()) lines.push_back(cur + "\r\n");
        cur.clear();
    };
    auto add = [&](const std::string& item) {
        if (verb.size() + 1 + item.size() > room) return false;
        if (!cur.empty() && cur.size() + 1 + item.size() > room) flush();
        if (cur.empty()) cur = std::string(verb);
        cur += ' ';
        cur += item;
        return true;
    };
    for (const auto& item : early)
        if (!add(item)) return {};
    // The `last` group must end up together in the final command.
    std::size_t final_len = verb.size();
    for (const auto& item : final_items) final_len += 1 + item.size();
    if (!final_items.empty()) {
        if (final_len > room) return {};
        if (!cur.empty() && cur.size() + (final_len - verb.size()) > room) flush();
        for (const auto& item : final_items) add(item);
    }
    flush();
    return lines;
}

std::set<std::string> parse_ehlo_keyword(std::string_view line) {
    std::set<std::string> out;
    line = strip_crlf(line);
    if (line.size() >= 4 && line.substr(0, 3) == "250" && (line[3] == '-' || line[3] == ' ')) line = line.substr(4);
    std::size_t i = 0;
    bool first = true;
    while (i < line.size()) {
        while (i < line.size() && line[i] == ' ') ++i;
        std::size_t start = i;
        while (i < line.size() && line[i] != ' ') ++i;
        if (start == i) break;
        std::string word = upper(line.substr(start, i - start));
        if (!(first && (word == "XCLIENT" || word == "XFORWARD"))) out.insert(word);
        first = false;
    }
    return out;
}

}  // namespace xproxy::smtp
