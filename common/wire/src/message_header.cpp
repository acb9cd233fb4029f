// message_header.cpp: the header section splitter, unfolding and the Received clauses
// (see message_header.hpp).
#include <xproxy/wire/message_header.hpp>

#include <algorithm>

#include <xproxy/base/text.hpp>

namespace xproxy {

namespace {

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

std::string_view trim_wsp(std::string_view s) {
    while (!s.empty() && (is_wsp(s.front()) || s.front() == '\r' || s.front() == '\n')) s.remove_prefix(1);
    while (!s.empty() && (is_wsp(s.back()) || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
    return s;
}

bool valid_name(std::string_view n) {
    if (n.empty()) return false;
    for (char c : n) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 33 || u > 126 || c == ':') return false;
    }
    return true;
}

}  // namespace

std::size_t MessageHeader::find(std::string_view name, std::size_t from) const {
    for (std::size_t i = from; i < fields.size(); ++i)
        if (iequals(fields[i].name, name)) return i;
    return fields.size();
}

Expected<MessageHeader> parse_message_header(std::string_view message, const MessageLimits& limits) {
    MessageHeader out;
    std::size_t pos = 0, line_no = 0;
    std::size_t used = 0;
    bool first = true;
    while (pos < message.size()) {
        const std::size_t eol = message.find('\n', pos);
        const std::size_t end = eol == std::string_view::npos ? message.size() : eol;
        std::string_view line = message.substr(pos, end - pos);
        pos = eol == std::string_view::npos ? message.size() : eol + 1;
        ++line_no;
        used += line.size() + 1;
        if (used > limits.max_header_bytes)
            return Failure{"the header section is larger than " + std::to_string(limits.max_header_bytes) + " bytes"};
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) break;  // the end of the header section
        if (first && line.substr(0, 5) == "From ") {
            first = false;
            continue;  // mbox separator
        }
        first = false;
        if (is_wsp(line.front())) {
            if (out.fields.empty()) return Failure{"line " + std::to_string(line_no) + " continues no field"};
            auto& v = out.fields.back().value;
            if (v.size() + line.size() > limits.max_field_bytes)
                return Failure{"the field of line " + std::to_string(out.fields.back().line) + " is longer than " +
                               std::to_string(limits.max_field_bytes) + " bytes"};
            v.append(line);
            continue;
        }
        const std::size_t colon = line.find(':');
        if (colon == std::string_view::npos || !valid_name(line.substr(0, colon)))
            return Failure{"line " + std::to_string(line_no) + " is not a header field"};
        if (line.size() > limits.max_field_bytes)
            return Failure{"the field of line " + std::to_string(line_no) + " is longer than " +
                           std::to_string(limits.max_field_bytes) + " bytes"};
        if (out.fields.size() >= limits.max_fields)
            return Failure{"more than " + std::to_string(limits.max_fields) + " header fields"};
        out.fields.push_back(
            HeaderField{std::string(line.substr(0, colon)), std::string(line.substr(colon + 1)), line_no});
    }
    for (auto& f : out.fields) f.value = std::string(trim_wsp(f.value));
    return out;
}

namespace {

// The clause keywords of RFC 5321's Received (and "for").
std::string* clause_of(ReceivedFields& r, std::string_view word) {
    if (iequals(word, "from")) return &r.from;
    if (iequals(word, "by")) return &r.by;
    if (iequals(word, "via")) return &r.via;
    if (iequals(word, "with")) return &r.with;
    if (iequals(word, "id")) return &r.id;
    if (iequals(word, "for")) return &r.for_;
    return nullptr;
}

void append_word(std::string& to, std::string_view w) {
    if (!to.empty()) to += ' ';
    to.append(w);
}

}  // namespace

ReceivedFields parse_received(std::string_view value) {
    ReceivedFields r;
    // The date follows the last ';' outside comments.
    std::size_t semi = std::string_view::npos;
    int depth = 0;
    for (std::size_t i = 0; i < value.size(); ++i) {
        if (value[i] == '\\' && depth > 0) {
            ++i;
        } else if (value[i] == '(') {
            ++depth;
        } else if (value[i] == ')' && depth > 0) {
            --depth;
        } else if (value[i] == ';' && depth == 0) {
            semi = i;
        }
    }
    std::string_view clauses = value.substr(0, semi);
    if (semi != std::string_view::npos) r.date = std::string(trim_wsp(value.substr(semi + 1)));
    std::string* current = nullptr;
    std::string unnamed;  // words before any keyword
    std::size_t i = 0;
    while (i < clauses.size()) {
        if (is_wsp(clauses[i]) || clauses[i] == '\r' || clauses[i] == '\n') {
            ++i;
            continue;
        }
        std::size_t start = i;
        if (clauses[i] == '(') {  // a comment, nested and with quoted pairs, is one word
            depth = 0;
            for (; i < clauses.size(); ++i) {
                if (clauses[i] == '\\') {
                    ++i;
                } else if (clauses[i] == '(') {
                    ++depth;
                } else if (clauses[i] == ')' && --depth == 0) {
                    ++i;
                    break;
                }
            }
            i = std::min(i, clauses.size());
        } else {
            while (i < clauses.size() && !is_wsp(clauses[i]) && clauses[i] != '(' && clauses[i] != '\r' &&
                   clauses[i] != '\n')
                ++i;
        }
        const std::string_view word = clauses.substr(start, i - start);
        if (std::string* c = clause_of(r, word); c && c->empty()) {
            current = c;
            continue;
        }
        append_word(current ? *current : unnamed, word);
    }
    // The last [address] of the from clause: the address the receiving MTA saw.
    const std::size_t close = r.from.rfind(']');
    const std::size_t open = close == std::string::npos ? close : r.from.rfind('[', close);
    if (open != std::string::npos) {
        std::string_view ip = std::string_view(r.from).substr(open + 1, close - open - 1);
        if (ip.size() > 5 && iequals(ip.substr(0, 5), "IPv6:")) ip.remove_prefix(5);
        r.from_ip = std::string(ip);
    }
    return r;
}

}  // namespace xproxy
