// policy_protocol.cpp: incremental policy request parser, reply encoder and the
// request -> SourceInfo mapping (policy_protocol.hpp).
#include <xproxy/base/text.hpp>
#include <xproxy/wire/policy_protocol.hpp>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>

namespace xproxy {

namespace {

using Member = std::string PolicyRequest::*;

constexpr std::array<Member, PolicyRequest::kKnownCount> kMembers = {
    &PolicyRequest::request,
    &PolicyRequest::protocol_state,
    &PolicyRequest::protocol_name,
    &PolicyRequest::client_address,
    &PolicyRequest::client_name,
    &PolicyRequest::client_port,
    &PolicyRequest::reverse_client_name,
    &PolicyRequest::server_address,
    &PolicyRequest::server_port,
    &PolicyRequest::helo_name,
    &PolicyRequest::sender,
    &PolicyRequest::recipient,
    &PolicyRequest::recipient_count,
    &PolicyRequest::queue_id,
    &PolicyRequest::instance,
    &PolicyRequest::size,
    &PolicyRequest::etrn_domain,
    &PolicyRequest::stress,
    &PolicyRequest::sasl_method,
    &PolicyRequest::sasl_username,
    &PolicyRequest::sasl_sender,
    &PolicyRequest::ccert_subject,
    &PolicyRequest::ccert_issuer,
    &PolicyRequest::ccert_fingerprint,
    &PolicyRequest::ccert_pubkey_fingerprint,
    &PolicyRequest::encryption_protocol,
    &PolicyRequest::encryption_cipher,
    &PolicyRequest::encryption_keysize,
    &PolicyRequest::policy_context,
};

constexpr std::array<std::string_view, PolicyRequest::kKnownCount> kNames = {
    "request",
    "protocol_state",
    "protocol_name",
    "client_address",
    "client_name",
    "client_port",
    "reverse_client_name",
    "server_address",
    "server_port",
    "helo_name",
    "sender",
    "recipient",
    "recipient_count",
    "queue_id",
    "instance",
    "size",
    "etrn_domain",
    "stress",
    "sasl_method",
    "sasl_username",
    "sasl_sender",
    "ccert_subject",
    "ccert_issuer",
    "ccert_fingerprint",
    "ccert_pubkey_fingerprint",
    "encryption_protocol",
    "encryption_cipher",
    "encryption_keysize",
    "policy_context",
};

static_assert(PolicyRequest::kKnownCount <= 32, "presence bits are a 32-bit mask");

bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
}

std::uint16_t small_number(std::string_view s) { return parse_decimal<std::uint16_t>(s).value_or(0); }

}  // namespace

const std::array<std::string_view, PolicyRequest::kKnownCount>& PolicyRequest::known_names() { return kNames; }

std::optional<std::size_t> PolicyRequest::known_index(std::string_view name) {
    for (std::size_t i = 0; i < kKnownCount; ++i)
        if (kNames[i].size() == name.size() && kNames[i] == name) return i;
    return std::nullopt;
}

std::string& PolicyRequest::field(std::size_t i) { return this->*kMembers[i]; }
const std::string& PolicyRequest::field(std::size_t i) const { return this->*kMembers[i]; }

const std::string* PolicyRequest::find(std::string_view name) const {
    if (auto i = known_index(name)) return present(*i) ? &field(*i) : nullptr;
    for (const auto& [k, v] : other)
        if (k == name) return &v;
    return nullptr;
}

std::string_view PolicyRequest::get(std::string_view name) const {
    const std::string* v = find(name);
    return v ? std::string_view(*v) : std::string_view();
}

std::size_t PolicyRequest::attribute_count() const {
    return static_cast<std::size_t>(std::popcount(present_)) + other.size();
}

bool PolicyRequest::set(std::string_view name, std::string_view value) {
    if (auto i = known_index(name)) {
        if (present(*i)) return false;
        present_ |= 1u << *i;
        field(*i).assign(value);
        return true;
    }
    for (const auto& kv : other)
        if (kv.first == name) return false;
    other.emplace_back(std::string(name), std::string(value));
    return true;
}

bool PolicyRequestParser::fail(std::string why) {
    failed_ = true;
    error_ = std::move(why);
    line_.clear();
    current_ = PolicyRequest{};
    request_bytes_ = 0;
    attribute_lines_ = 0;
    return false;
}

bool PolicyRequestParser::end_line(std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {
        if (attribute_lines_ == 0) return fail("empty line before any attribute (empty request)");
        ready_.push_back(std::move(current_));
        current_ = PolicyRequest{};
        request_bytes_ = 0;
        attribute_lines_ = 0;
        return true;
    }
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) return fail("request line without '='");
    if (eq == 0) return fail("request line with an empty attribute name");
    for (std::size_t i = 0; i < eq; ++i)
        if (!name_char(line[i])) return fail("attribute name with a character outside A-Z a-z 0-9 _ - .");
    if (++attribute_lines_ > limits_.max_attributes)
        return fail("request with more than " + std::to_string(limits_.max_attributes) + " attributes");
    current_.set(line.substr(0, eq), line.substr(eq + 1));
    return true;
}

bool PolicyRequestParser::feed(const char* data, std::size_t size) {
    if (failed_) return false;
    std::size_t i = 0;
    while (i < size) {
        const char* start = data + i;
        const auto* nl = static_cast<const char*>(std::memchr(start, '\n', size - i));
        const std::size_t len = nl ? static_cast<std::size_t>(nl - start) : size - i;  // LF excluded
        const std::size_t take = nl ? len + 1 : len;                                   // LF included

        // The first byte of this piece that breaks a bound decides, whatever the split.
        // Offsets are 1-based positions within `take`; ties go to NUL, then line, then size.
        constexpr std::size_t kNone = SIZE_MAX;
        const void* nul = std::memchr(start, '\0', len);
        const std::size_t at_nul = nul ? static_cast<std::size_t>(static_cast<const char*>(nul) - start) + 1 : kNone;
        const std::size_t line_room = limits_.max_line - std::min(limits_.max_line, line_.size());
        const std::size_t at_line = len > line_room ? line_room + 1 : kNone;
        const std::size_t used = request_bytes_ + line_.size();
        const std::size_t request_room = limits_.max_request - std::min(limits_.max_request, used);
        const std::size_t at_request = take > request_room ? request_room + 1 : kNone;
        const std::size_t first = std::min({at_nul, at_line, at_request});
        if (first != kNone) {
            if (first == at_nul) return fail("NUL byte in request");
            if (first == at_line)
                return fail("request line longer than " + std::to_string(limits_.max_line) + " bytes");
            return fail("request larger than " + std::to_string(limits_.max_request) + " bytes");
        }
        if (!nl) {
            line_.append(start, len);
            break;
        }
        std::string_view line(start, len);
        if (!line_.empty()) {
            line_.append(start, len);
            line = line_;
        }
        request_bytes_ += line.size() + 1;
        i += take;
        const bool ok = end_line(line);
        line_.clear();
        if (!ok) return false;
    }
    return true;
}

bool PolicyRequestParser::feed(const char* data, std::size_t size, std::vector<PolicyRequest>& out) {
    const bool ok = feed(data, size);
    while (!ready_.empty()) {
        out.push_back(std::move(ready_.front()));
        ready_.pop_front();
    }
    return ok;
}

std::optional<PolicyRequest> PolicyRequestParser::next() {
    if (ready_.empty()) return std::nullopt;
    PolicyRequest r = std::move(ready_.front());
    ready_.pop_front();
    return r;
}

std::string encode_policy_reply(std::string_view action) {
    std::string out;
    out.reserve(action.size() + 9);
    out += "action=";
    for (char c : action) out += (c == '\r' || c == '\n' || c == '\0') ? ' ' : c;
    out += "\n\n";
    return out;
}

SourceInfo policy_source_info(const PolicyRequest& r) {
    SourceInfo si;
    if (auto a = IpAddress::parse_mta(r.client_address)) si.client = Endpoint{*a, small_number(r.client_port)};
    if (auto a = IpAddress::parse_mta(r.server_address)) si.server = Endpoint{*a, small_number(r.server_port)};
    si.helo = r.helo_name;
    si.ptr_name = r.client_name == "unknown" ? std::string() : r.client_name;
    si.protocol = r.protocol_name;
    si.login = r.sasl_username;
    si.session_id = r.queue_id.empty() ? r.instance : r.queue_id;
    si.tls.version = r.encryption_protocol;
    si.tls.cipher = r.encryption_cipher;
    si.tls.bits = small_number(r.encryption_keysize);
    si.tls.peer_fingerprint = r.ccert_fingerprint;
    si.tls.peer_subject = r.ccert_subject;
    si.tls.peer_issuer = r.ccert_issuer;
    return si;
}

}  // namespace xproxy
