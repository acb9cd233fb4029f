// policy_protocol.cpp: incremental policy request parser and reply encoder.
#include "xproxy/policy_protocol.hpp"

#include <charconv>
#include <cstring>

namespace xproxy::policy {

std::string_view Request::get(std::string_view name) const {
    for (const auto& [k, v] : attrs)
        if (k == name) return v;
    return {};
}

bool Request::has(std::string_view name) const {
    for (const auto& [k, v] : attrs)
        if (k == name) return true;
    return false;
}

bool RequestParser::fail(std::string why) {
    error_ = std::move(why);
    line_.clear();
    current_ = Request{};
    return false;
}

bool RequestParser::end_line(std::vector<Request>& out) {
    if (line_.empty()) {
        if (!current_.attrs.empty()) out.push_back(std::move(current_));  // stray empty lines are ignored
        current_ = Request{};
        request_bytes_ = 0;
        return true;
    }
    auto eq = line_.find('=');
    if (eq == std::string::npos) return fail("request line without '='");
    if (eq == 0) return fail("request line with an empty attribute name");
    for (std::size_t i = 0; i < eq; ++i) {
        char c = line_[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return fail("invalid character in attribute name");
    }
    std::string name = line_.substr(0, eq);
    if (current_.has(name)) return fail("attribute '" + name + "' repeated in one request");
    if (current_.attrs.size() >= limits_.max_attributes)
        return fail("request has more than " + std::to_string(limits_.max_attributes) + " attributes");
    current_.attrs.emplace_back(std::move(name), line_.substr(eq + 1));
    line_.clear();
    return true;
}

bool RequestParser::feed(const char* data, std::size_t size, std::vector<Request>& out) {
    if (failed()) return false;
    std::size_t i = 0;
    while (i < size) {
        const char* nl = static_cast<const char*>(std::memchr(data + i, '\n', size - i));
        std::size_t chunk = nl ? static_cast<std::size_t>(nl - (data + i)) : size - i;
        if (std::memchr(data + i, '\0', chunk)) return fail("NUL byte in request");
        if (line_.size() + chunk > limits_.max_line + 1)  // +1: a CR before the LF
            return fail("request line longer than " + std::to_string(limits_.max_line) + " bytes");
        if (request_bytes_ + line_.size() + chunk > limits_.max_request)
            return fail("request larger than " + std::to_string(limits_.max_request) + " bytes");
        line_.append(data + i, chunk);
        i += chunk;
        if (!nl) break;
        ++i;  // the LF
        request_bytes_ += line_.size() + 1;
        if (!line_.empty() && line_.back() == '\r') line_.pop_back();
        if (line_.size() > limits_.max_line)
            return fail("request line longer than " + std::to_string(limits_.max_line) + " bytes");
        if (!end_line(out)) return false;
    }
    return true;
}

std::string encode_reply(std::string_view action) {
    std::string out = "action=";
    for (char c : action) out += (c == '\r' || c == '\n') ? ' ' : c;
    out += "\n\n";
    return out;
}

namespace {
std::uint16_t port_of(std::string_view s) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc() && p == s.data() + s.size() && v <= 65535 ? static_cast<std::uint16_t>(v) : 0;
}
}  // namespace

SourceInfo to_source_info(const Request& r) {
    SourceInfo si;
    if (auto a = IpAddress::parse_mta(r.get("client_address"))) si.client = Endpoint{*a, port_of(r.get("client_port"))};
    if (auto a = IpAddress::parse_mta(r.get("server_address"))) si.server = Endpoint{*a, port_of(r.get("server_port"))};
    si.helo = r.get("helo_name");
    auto ptr = r.get("reverse_client_name");
    si.ptr_name = ptr == "unknown" ? "" : std::string(ptr);
    si.protocol = r.get("protocol_name");
    si.login = r.get("sasl_username");
    si.session_id = r.get("instance");
    si.tls.version = r.get("encryption_protocol");
    si.tls.cipher = r.get("encryption_cipher");
    si.tls.bits = port_of(r.get("encryption_keysize"));
    si.tls.peer_fingerprint = r.get("ccert_fingerprint");
    si.tls.peer_subject = r.get("ccert_subject");
    si.tls.peer_issuer = r.get("ccert_issuer");
    return si;
}

}  // namespace xproxy::policy
