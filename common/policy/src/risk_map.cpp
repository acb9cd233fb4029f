// risk_map.cpp: parser and lookups of the risk file (risk_map.hpp).
#include <xproxy/base/text.hpp>
#include <xproxy/policy/risk_map.hpp>

#include <algorithm>

namespace xproxy {

namespace {

bool is_blank(char c) { return c == ' ' || c == '\t'; }

std::string quoted(std::string_view s) {
    std::string out = "'";
    const std::size_t n = s.size() > 64 ? 64 : s.size();
    for (std::size_t i = 0; i < n; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        out += c < 0x20 || c == 0x7f ? '?' : static_cast<char>(c);
    }
    if (n < s.size()) out += "...";
    return out + "'";
}

// Next word of `rest`; false at the end of the line or at a word beginning with '#'.
bool next_word(std::string_view& rest, std::string_view& word) {
    std::size_t i = 0;
    while (i < rest.size() && is_blank(rest[i])) ++i;
    if (i == rest.size() || rest[i] == '#') return false;
    std::size_t j = i;
    while (j < rest.size() && !is_blank(rest[j])) ++j;
    word = rest.substr(i, j - i);
    rest = rest.substr(j);
    return true;
}

bool valid_class_name(std::string_view s) {
    if (s.empty() || s.size() > 64) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
               c == '.';
    });
}

// "transport:" or "transport:destination": printable, no white space, a non-empty name
// before the first ':'.
bool valid_transport(std::string_view s) {
    if (s.size() > 255) return false;
    const std::size_t colon = s.find(':');
    if (colon == 0 || colon == std::string_view::npos) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u > 0x20 && u < 0x7f;
    });
}

bool valid_domain(std::string_view s) {
    if (s.empty() || s.size() > 253 || s.front() == '.' || s.back() == '.') return false;
    char prev = 0;
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        const bool ok = c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                        c == '-' || c == '_' || c == '.';
        if (!ok || (c == '.' && prev == '.')) return false;
        prev = ch;
    }
    return true;
}

}  // namespace

std::optional<std::uint16_t> RiskMap::class_index(std::string_view name) const {
    for (std::size_t i = 0; i < classes_.size(); ++i)
        if (classes_[i].name == name) return static_cast<std::uint16_t>(i);
    return std::nullopt;
}

bool RiskMap::add_class(std::string_view name, std::string_view transport, std::string* error) {
    std::string scratch;
    if (!error) error = &scratch;
    if (!valid_class_name(name)) {
        *error = "class name " + quoted(name) + " is not 1-64 letters, digits, '-', '_' or '.'";
        return false;
    }
    if (class_index(name)) {
        *error = "class " + std::string(name) + " is already defined";
        return false;
    }
    if (!transport.empty() && !valid_transport(transport)) {
        *error = "transport " + quoted(transport) + " is not transport:destination (e.g. smtp-high:)";
        return false;
    }
    if (classes_.size() >= 0xFFFF) {
        *error = "too many classes";
        return false;
    }
    classes_.push_back(RiskClass{std::string(name), std::string(transport)});
    return true;
}

bool RiskMap::add_network(std::string_view cidr, std::string_view class_name, std::string* error) {
    std::string scratch;
    if (!error) error = &scratch;
    const auto c = Cidr::parse(cidr);
    if (!c) {
        *error = "network " + quoted(cidr) + " is not an address or address/prefix (host bits must be zero)";
        return false;
    }
    const auto cls = class_index(class_name);
    if (!cls) {
        *error = "class " + quoted(class_name) + " is not defined (a class line must come first)";
        return false;
    }
    const std::string text = c->to_string();
    for (const Network& n : networks_) {
        if (n.text == text) {
            *error = "network " + text + " is already listed";
            return false;
        }
    }
    // Keep the longest prefixes first (stable among equal lengths): the first match wins.
    auto pos = std::find_if(networks_.begin(), networks_.end(),
                            [&](const Network& n) { return n.cidr.prefix() < c->prefix(); });
    networks_.insert(pos, Network{*c, text, *cls});
    return true;
}

bool RiskMap::add_sender_domain(std::string_view domain, std::string_view class_name, std::string* error) {
    std::string scratch;
    if (!error) error = &scratch;
    if (!valid_domain(domain)) {
        *error = "sender domain " + quoted(domain) + " is not a domain name";
        return false;
    }
    const auto cls = class_index(class_name);
    if (!cls) {
        *error = "class " + quoted(class_name) + " is not defined (a class line must come first)";
        return false;
    }
    std::string key(domain);
    std::transform(key.begin(), key.end(), key.begin(), ascii_lower);
    if (!domains_.emplace(std::move(key), *cls).second) {
        *error = "sender domain " + std::string(domain) + " is already listed";
        return false;
    }
    return true;
}

std::optional<RiskMatch> RiskMap::classify(const std::optional<IpAddress>& client, std::string_view sender) const {
    std::optional<RiskMatch> net, dom;
    if (client) {
        for (const Network& n : networks_) {
            if (n.cidr.contains(*client)) {
                net = RiskMatch{&classes_[n.cls], RiskMatch::Source::network, n.text};
                break;
            }
        }
    }
    const std::size_t at = sender.rfind('@');
    if (!domains_.empty() && at != std::string_view::npos && sender.size() - at - 1 <= 253) {
        char buf[253];
        const std::string_view d = sender.substr(at + 1);
        for (std::size_t i = 0; i < d.size(); ++i) buf[i] = ascii_lower(d[i]);
        std::string_view name(buf, d.size());
        while (!name.empty()) {
            auto it = domains_.find(name);
            if (it != domains_.end()) {
                dom = RiskMatch{&classes_[it->second], RiskMatch::Source::sender_domain, it->first};
                break;
            }
            const std::size_t dot = name.find('.');
            if (dot == std::string_view::npos) break;
            name.remove_prefix(dot + 1);
        }
    }
    if (net && dom) return dom->risk_class > net->risk_class ? dom : net;  // later class wins
    return net ? net : dom;
}

Expected<RiskMap> RiskMap::parse(std::string_view text) {
    RiskMap map;
    std::size_t line_no = 0, pos = 0;
    std::string why;
    auto fail = [&](const std::string& message) -> Expected<RiskMap> {
        return Failure{"line " + std::to_string(line_no) + ": " + message};
    };
    while (pos < text.size()) {
        ++line_no;
        std::size_t end = text.find('\n', pos);
        if (end == std::string_view::npos) end = text.size();
        std::string_view rest = text.substr(pos, end - pos);
        pos = end + 1;
        if (rest.size() > kMaxRiskLine) return fail("line longer than " + std::to_string(kMaxRiskLine) + " bytes");
        if (!rest.empty() && rest.back() == '\r') rest.remove_suffix(1);
        std::string_view keyword, subject, word;
        if (!next_word(rest, keyword)) continue;
        if (keyword != "class" && keyword != "network" && keyword != "sender-domain")
            return fail("unknown keyword " + quoted(keyword) + " (want class, network or sender-domain)");
        if (!next_word(rest, subject)) return fail(std::string(keyword) + " line without a value");
        std::string_view transport, cls;
        bool seen_transport = false, seen_class = false;
        while (next_word(rest, word)) {
            const std::size_t eq = word.find('=');
            const std::string_view key = word.substr(0, eq);
            const std::string_view value = eq == std::string_view::npos ? std::string_view() : word.substr(eq + 1);
            if (eq == std::string_view::npos || value.empty()) return fail("expected name=value, got " + quoted(word));
            if (keyword == "class" && key == "transport") {
                if (seen_transport) return fail("attribute transport given twice");
                seen_transport = true;
                transport = value;
            } else if (keyword != "class" && key == "class") {
                if (seen_class) return fail("attribute class given twice");
                seen_class = true;
                cls = value;
            } else {
                return fail("unknown attribute " + quoted(key) + " for " + std::string(keyword) +
                            (keyword == "class" ? " (want transport)" : " (want class)"));
            }
        }
        bool ok;
        if (keyword == "class") {
            ok = map.add_class(subject, transport, &why);
        } else {
            if (!seen_class) return fail(std::string(keyword) + " " + quoted(subject) + " without class=");
            ok = keyword == "network" ? map.add_network(subject, cls, &why) : map.add_sender_domain(subject, cls, &why);
        }
        if (!ok) return fail(why);
    }
    return map;
}

}  // namespace xproxy
