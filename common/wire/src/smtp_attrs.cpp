// smtp_attrs.cpp: parse and build "VERB NAME=value ..." command lines and EHLO keyword
// lines.
#include <xproxy/wire/smtp_attrs.hpp>

#include <xproxy/base/text.hpp>
#include <xproxy/wire/xtext.hpp>

namespace xproxy::smtp {

namespace {

bool is_alnum(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_name_char(char c) { return is_alnum(c) || c == '_' || c == '-'; }
bool is_wsp(char c) { return c == ' ' || c == '\t'; }

// At most 64 bytes of untrusted text, non-printable bytes shown as '?'.
std::string printable(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 64)) out += (c >= 32 && c < 127) ? c : '?';
    if (s.size() > 64) out += "...";
    return out;
}

bool has_controls(std::string_view s) {
    return s.find_first_of(std::string_view("\0\r\n", 3)) != std::string_view::npos;
}

}  // namespace

const Attribute* Command::find(std::string_view name) const {
    for (const auto& a : attrs)
        if (a.name == name) return &a;
    return nullptr;
}

std::string Encoded::joined() const {
    std::string out;
    for (const auto& l : lines) out += l;
    return out;
}

Parsed<Command> parse_command(std::string_view line, const LineRules& rules) {
    if (line.size() >= 2 && line.substr(line.size() - 2) == "\r\n") line.remove_suffix(2);
    else if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    if (line.size() + 2 > kMaxCommandLine) return Failure{"command line longer than 512 bytes"};
    if (has_controls(line)) return Failure{"NUL, CR or LF inside the command line"};

    Command cmd;
    std::size_t i = 0;
    while (i < line.size() && !is_wsp(line[i])) ++i;
    auto verb = line.substr(0, i);
    if (verb.empty()) return Failure{"missing command verb"};
    for (char c : verb)
        if (!is_alnum(c)) return Failure{"malformed command verb '" + printable(verb) + "'"};
    cmd.verb = to_upper(verb);

    std::set<std::string> seen;
    while (i < line.size()) {
        while (i < line.size() && is_wsp(line[i])) ++i;
        if (i == line.size()) break;
        std::size_t start = i;
        while (i < line.size() && !is_wsp(line[i])) ++i;
        std::string_view pair = line.substr(start, i - start);
        auto eq = pair.find('=');
        if (eq == std::string_view::npos || eq == 0)
            return Failure{"malformed attribute '" + printable(pair) + "' (NAME=value expected)"};
        auto raw_name = pair.substr(0, eq);
        for (char c : raw_name)
            if (!is_name_char(c)) return Failure{"malformed attribute name '" + printable(raw_name) + "'"};
        Attribute a;
        a.name = to_upper(raw_name);
        if (rules.names && !rules.names->count(a.name)) return Failure{"unknown attribute '" + printable(a.name) + "'"};
        if (!seen.insert(a.name).second) return Failure{"duplicate attribute '" + printable(a.name) + "'"};
        auto raw = pair.substr(eq + 1);
        if (raw.empty()) return Failure{"attribute '" + a.name + "' has an empty value"};
        if (rules.max_value && raw.size() > rules.max_value)
            return Failure{"value of attribute '" + a.name + "' longer than " + std::to_string(rules.max_value) +
                           " bytes"};
        std::string_view why;
        auto decoded = xtext_decode(raw, false, &why);
        if (!decoded) return Failure{"bad xtext in attribute '" + a.name + "': " + std::string(why)};
        a.value = std::move(*decoded);
        cmd.attrs.push_back(std::move(a));
    }
    return cmd;
}

std::optional<ValueStatus> special_value(std::string_view decoded) {
    if (iequals(decoded, "[UNAVAILABLE]")) return ValueStatus::unavailable;
    if (iequals(decoded, "[TEMPUNAVAIL]")) return ValueStatus::tempunavail;
    return std::nullopt;
}

std::optional<std::uint16_t> parse_port(std::string_view s) {
    return parse_decimal<std::uint16_t>(s, 65535, LeadingZeros::forbidden);
}

std::string format_attribute(const Attribute& a) {
    switch (a.status) {
        case ValueStatus::unavailable: return a.name + "=[UNAVAILABLE]";
        case ValueStatus::tempunavail: return a.name + "=[TEMPUNAVAIL]";
        case ValueStatus::value: break;
    }
    return a.name + "=" + xtext_encode(a.value);
}

Encoded pack_commands(std::string_view verb, const std::vector<Attribute>& attrs, const PackRules& rules) {
    Encoded out;
    auto fail = [&out](std::string why) {
        out.lines.clear();
        out.error = std::move(why);
        return out;
    };
    const std::size_t room = kMaxCommandLine - 2;  // CRLF
    // " NAME=value" for each attribute, in the given order.
    std::vector<std::string> items;
    std::size_t total = verb.size();
    for (const auto& a : attrs) {
        if (a.status == ValueStatus::value) {
            if (a.value.empty()) return fail("attribute '" + a.name + "' has an empty value");
            if (has_controls(a.value)) return fail("attribute '" + a.name + "' contains NUL, CR or LF");
        }
        items.push_back(" " + format_attribute(a));
        std::size_t value_len = items.back().size() - 2 - a.name.size();
        if (rules.max_value && value_len > rules.max_value)
            return fail("value of attribute '" + a.name + "' longer than " + std::to_string(rules.max_value) +
                        " bytes once encoded");
        total += items.back().size();
    }
    if (total <= room) {
        std::string line(verb);
        for (const auto& it : items) line += it;
        out.lines.push_back(line + "\r\n");
        return out;
    }

    const std::string more = rules.more_suffix.empty() ? "" : " " + rules.more_suffix;
    const std::string last = rules.last_suffix.empty() ? "" : " " + rules.last_suffix;
    // The final command: the preferred names, in priority order, while they fit.
    std::vector<bool> in_final(items.size(), false);
    std::size_t final_len = verb.size() + last.size();
    bool first_present = true;
    for (const auto& name : rules.final_priority) {
        for (std::size_t k = 0; k < attrs.size(); ++k) {
            if (attrs[k].name != name || in_final[k]) continue;
            if (final_len + items[k].size() <= room) {
                in_final[k] = true;
                final_len += items[k].size();
            } else if (first_present) {
                return fail("attribute '" + name + "' does not fit in one command");
            }
            first_present = false;
        }
    }
    // The others, in order, into the commands before it.
    std::vector<std::vector<std::size_t>> groups;
    std::size_t cur_len = 0;
    for (std::size_t k = 0; k < items.size(); ++k) {
        if (in_final[k]) continue;
        if (verb.size() + items[k].size() + more.size() > room)
            return fail("attribute '" + attrs[k].name + "' does not fit in one command");
        if (groups.empty() || cur_len + items[k].size() > room) {
            groups.emplace_back();
            cur_len = verb.size() + more.size();
        }
        groups.back().push_back(k);
        cur_len += items[k].size();
    }
    std::vector<std::size_t> final_group;
    for (std::size_t k = 0; k < items.size(); ++k)
        if (in_final[k]) final_group.push_back(k);
    if (final_group.empty() && !groups.empty()) {
        // No preferred attribute present: the last group becomes the final command (it
        // fits: the last suffix is checked below like any other line).
        final_group = std::move(groups.back());
        groups.pop_back();
    }
    auto render = [&](const std::vector<std::size_t>& g, const std::string& suffix) {
        std::string line(verb);
        for (auto k : g) line += items[k];
        return line + suffix + "\r\n";
    };
    for (const auto& g : groups) out.lines.push_back(render(g, more));
    out.lines.push_back(render(final_group, last));
    for (const auto& l : out.lines)
        if (l.size() > kMaxCommandLine) return fail("attributes do not fit in 512-byte commands");
    return out;
}

std::set<std::string> parse_ehlo_keyword(std::string_view line) {
    std::set<std::string> out;
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
    if (line.size() >= 4 && line.substr(0, 3) == "250" && (line[3] == '-' || line[3] == ' ')) line.remove_prefix(4);
    std::size_t i = 0;
    bool first = true;
    while (i < line.size()) {
        while (i < line.size() && is_wsp(line[i])) ++i;
        std::size_t start = i;
        while (i < line.size() && !is_wsp(line[i])) ++i;
        if (start == i) break;
        std::string word = to_upper(line.substr(start, i - start));
        if (!(first && (word == "XCLIENT" || word == "XFORWARD"))) out.insert(std::move(word));
        first = false;
    }
    return out;
}

std::optional<std::set<std::string>> find_ehlo_keyword(std::string_view reply, std::string_view keyword) {
    std::size_t pos = 0;
    while (pos < reply.size()) {
        auto nl = reply.find('\n', pos);
        auto line = reply.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? reply.size() : nl + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.size() >= 4 && (line[3] == '-' || line[3] == ' ')) line.remove_prefix(4);
        else if (line.size() == 3) continue;
        std::size_t end = 0;
        while (end < line.size() && !is_wsp(line[end])) ++end;
        if (!iequals(line.substr(0, end), keyword)) continue;
        std::set<std::string> names;
        std::size_t i = end;
        while (i < line.size()) {
            while (i < line.size() && is_wsp(line[i])) ++i;
            std::size_t start = i;
            while (i < line.size() && !is_wsp(line[i])) ++i;
            if (start < i) names.insert(to_upper(line.substr(start, i - start)));
        }
        return names;
    }
    return std::nullopt;
}

}  // namespace xproxy::smtp
