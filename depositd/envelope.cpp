// envelope.cpp: From:, To:, Cc:, Bcc: and Message-ID of a deposited message; see
// envelope.hpp.
#include "envelope.hpp"

#include <algorithm>

#include <xproxy/base/text.hpp>
#include <xproxy/wire/mail_address.hpp>
#include <xproxy/wire/message_header.hpp>
#include <xproxy/wire/trace_header.hpp>

namespace xproxy::depositd {

namespace {

constexpr std::string_view kTraceResultFieldName = "X-Original-Source-Result";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// One mailbox of a list while it is read: the bare addr-spec text outside angle
// brackets, or the angle address.
struct Mailbox {
    std::string bare;   // tokens outside <>, white space and comments removed
    std::string angle;  // inside <>
    bool has_angle = false;
    bool after_angle = false;  // a token after the angle address is an error
    bool phrase = false;       // words separated by white space: a display name, not an address
};

class ListReader {
public:
    ListReader(std::string_view v, std::size_t max) : v_(v), max_(max) {}

    Expected<std::vector<std::string>> read() {
        while (i_ < v_.size()) {
            const char c = v_[i_];
            if (is_space(c)) {
                ++i_;
                gap_ = true;
            } else if (c == '(') {
                if (!skip_comment()) return Failure{"an unterminated comment"};
            } else if (c == '"') {
                if (!token_to(quoted())) return Failure{"an unterminated quoted string"};
            } else if (c == '<') {
                if (auto ok = angle(); !ok) return Failure{ok.error()};
            } else if (c == ',' || c == ';') {
                ++i_;
                if (auto ok = finish(); !ok) return Failure{ok.error()};
            } else if (c == ':' && !cur_.has_angle && !in_group_) {
                ++i_;
                in_group_ = true;  // the display name of a group: dropped
                cur_ = Mailbox{};
            } else {
                const std::size_t start = i_;
                while (i_ < v_.size() && !is_space(v_[i_]) &&
                       std::string_view("(\"<>,;:").find(v_[i_]) == std::string_view::npos)
                    ++i_;
                if (i_ == start) return Failure{"a stray special character"};
                if (!token_to(std::string(v_.substr(start, i_ - start)))) return Failure{"text after an address"};
            }
        }
        if (auto ok = finish(); !ok) return Failure{ok.error()};
        return std::move(out_);
    }

private:
    // A token of a bare addr-spec or of a display name: kept in `bare`, which a later
    // angle address replaces. An empty optional: the quoted string did not end.
    bool token_to(const std::optional<std::string>& t) {
        if (!t) return false;
        if (cur_.after_angle) return false;
        // A display name's words are separated by spaces; an addr-spec has none outside
        // quotes, so the space marks a phrase (kept only to refuse "a b" as an address).
        if (!cur_.bare.empty() && gap_) cur_.phrase = true;
        cur_.bare += *t;
        gap_ = false;
        return true;
    }
    std::optional<std::string> quoted() {
        const std::size_t start = i_++;
        while (i_ < v_.size() && v_[i_] != '"') i_ += v_[i_] == '\\' ? 2u : 1u;
        if (i_ >= v_.size()) return std::nullopt;
        ++i_;
        return std::string(v_.substr(start, i_ - start));
    }
    bool skip_comment() {
        int depth = 0;
        while (i_ < v_.size()) {
            const char c = v_[i_];
            if (c == '\\') {
                i_ += 2;
                continue;
            }
            ++i_;
            if (c == '(') ++depth;
            if (c == ')' && --depth == 0) return true;
        }
        return false;
    }
    Expected<void> angle() {
        if (cur_.has_angle) return Failure{"two angle addresses in one mailbox"};
        ++i_;
        std::string a;
        while (i_ < v_.size() && v_[i_] != '>') {
            if (v_[i_] == '"') {
                auto q = quoted();
                if (!q) return Failure{"an unterminated quoted string"};
                a += *q;
            } else if (v_[i_] == '(') {
                if (!skip_comment()) return Failure{"an unterminated comment"};
            } else if (is_space(v_[i_]) || v_[i_] == '<') {
                if (v_[i_] == '<') return Failure{"a '<' inside an angle address"};
                ++i_;
            } else {
                a += v_[i_++];
            }
        }
        if (i_ >= v_.size()) return Failure{"an unterminated angle address"};
        ++i_;
        cur_.has_angle = true;
        cur_.after_angle = true;
        cur_.angle = std::move(a);
        return {};
    }
    Expected<void> finish() {
        Mailbox m = std::move(cur_);
        cur_ = Mailbox{};
        gap_ = false;
        if (!m.has_angle && m.bare.empty()) return {};  // an empty list item or an empty group
        if (!m.has_angle && m.phrase) return Failure{"words without an angle address"};
        const std::string& raw = m.has_angle ? m.angle : m.bare;
        std::string a = canonical_address(raw);
        if (!usable_address(a)) return Failure{"an address without a local part or domain, or with control bytes"};
        if (out_.size() >= max_) return Failure{"more than " + std::to_string(max_) + " addresses"};
        if (std::find(out_.begin(), out_.end(), a) == out_.end()) out_.push_back(std::move(a));
        return {};
    }

    std::string_view v_;
    std::size_t max_;
    std::size_t i_ = 0;
    bool in_group_ = false;
    bool gap_ = false;
    Mailbox cur_;
    std::vector<std::string> out_;
};

}  // namespace

bool usable_address(std::string_view a) {
    const auto at = a.rfind('@');
    if (at == std::string_view::npos || at == 0 || at + 1 >= a.size()) return false;
    if (a.substr(0, at) == "\"\"") return false;  // an empty quoted local part
    bool quoted = false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const auto u = static_cast<unsigned char>(a[i]);
        if (i < at && a[i] == '"') quoted = !quoted;
        if (u == 0x7F || u < 0x20 || (u == 0x20 && !(quoted && i < at))) return false;
    }
    const std::string_view domain = a.substr(at + 1);
    for (char c : domain)
        if (c == '"' || c == '@' || c == '\\' || c == '<' || c == '>' || c == ',') return false;
    return true;
}

Expected<std::vector<std::string>> parse_address_list(std::string_view value, std::size_t max_addresses) {
    ListReader r(value, max_addresses);
    return r.read();
}

std::size_t find_bare_cr(std::string_view message) {
    for (auto i = message.find('\r'); i != std::string_view::npos; i = message.find('\r', i + 1))
        if (i + 1 == message.size() || message[i + 1] != '\n') return i;
    return std::string_view::npos;
}

Expected<MessageEnvelope> extract_envelope(std::string_view message, const EnvelopeLimits& limits) {
    // Lines end at LF here but at a bare CR too on the way to the MTA (BdatToData): a
    // message with a bare CR would be read as one header block here and as another there.
    if (const auto cr = find_bare_cr(message); cr != std::string_view::npos)
        return Failure{"a bare CR (not followed by LF, which RFC 5322 forbids) at byte " + std::to_string(cr)};
    if (message.substr(0, 5) == "From ") return Failure{"the message starts with an mbox \"From \" line"};
    MessageLimits ml;
    ml.max_header_bytes = limits.max_header_bytes;
    auto header = parse_message_header(message, ml);
    if (!header) return Failure{"the header block does not parse: " + header.error()};
    MessageEnvelope env;
    std::size_t froms = 0, ids = 0;
    for (const auto& f : header->fields) {
        if (iequals(f.name, kTraceFieldName) || iequals(f.name, kTraceResultFieldName))
            return Failure{"the message already carries an " +
                           std::string(iequals(f.name, kTraceFieldName) ? kTraceFieldName : kTraceResultFieldName) +
                           " field (line " + std::to_string(f.line) + "); only this server adds one"};
        if (iequals(f.name, "Sender") || iequals(f.name, "Resent-From") || iequals(f.name, "Resent-Sender")) {
            const std::string name = iequals(f.name, "Sender")        ? "Sender"
                                     : iequals(f.name, "Resent-From") ? "Resent-From"
                                                                      : "Resent-Sender";
            auto list = parse_address_list(f.value, limits.max_addresses);
            if (!list) return Failure{"the " + name + " field (line " + std::to_string(f.line) + "): " + list.error()};
            if (list->empty()) return Failure{"the " + name + " field (line " + std::to_string(f.line) + ") is empty"};
            if (env.senders.size() + list->size() > limits.max_addresses)
                return Failure{"more than " + std::to_string(limits.max_addresses) + " sender addresses"};
            for (auto& a : *list) env.senders.push_back({name, std::move(a)});
            continue;
        }
        const bool from = iequals(f.name, "From");
        if (from || iequals(f.name, "To") || iequals(f.name, "Cc") || iequals(f.name, "Bcc")) {
            const std::size_t room = from
                                         ? 2
                                         : limits.max_addresses - std::min(limits.max_addresses, env.recipients.size());
            auto list = parse_address_list(f.value, room);
            if (!list)
                return Failure{"the " + std::string(from ? "From" : "To/Cc/Bcc") + " field (line " +
                               std::to_string(f.line) + "): " + list.error()};
            if (from) {
                if (++froms > 1) return Failure{"more than one From field"};
                if (list->size() != 1) return Failure{"the From field must hold exactly one mailbox"};
                env.from = std::move(list->front());
                continue;
            }
            for (auto& a : *list)
                if (std::find(env.recipients.begin(), env.recipients.end(), a) == env.recipients.end())
                    env.recipients.push_back(std::move(a));
        } else if (iequals(f.name, "Message-ID")) {
            if (++ids > 1) return Failure{"more than one Message-ID field"};
            env.message_id = std::string(trim(f.value));
        }
    }
    if (froms == 0) return Failure{"no From field"};
    return env;
}

}  // namespace xproxy::depositd
