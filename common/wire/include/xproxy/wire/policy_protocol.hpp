// policy_protocol.hpp: Postfix's policy delegation protocol (SMTPD_POLICY_README),
// server side: the request parser, the reply encoder, and the SourceInfo a request tells.
//
// A request is "name=value" lines, each ended by LF; an empty line ends the request.
// Postfix sends LF only; a CR right before the LF is accepted and removed (telnet and
// test clients), a CR anywhere else is part of the value. Names are 1+ characters of
// [A-Za-z0-9_.-]; values are raw bytes (Postfix does not encode them) except NUL, which
// is rejected. The 29 attributes Postfix 3.7 sends have fields in PolicyRequest; every
// other name is kept in `other`, in arrival order. A name sent twice keeps its first
// value (the README allows first or last); each line still counts against the bounds.
//
// PolicyRequestParser is incremental: feed() it whatever arrived, in pieces of any size,
// then take the completed requests with next(); splitting the same bytes differently
// yields the same requests. Bounds (PolicyLimits): line length (bytes before the LF, a
// CR included), request size (every byte of the request from its first byte to the LF
// of the empty line, inclusive) and attribute lines per request. Past a bound, on a line
// without '=', on a bad name, a NUL byte or an empty request (an empty line before any
// attribute), the parser fails with a clear reason and stays failed: the caller answers
// the requests completed before the error and closes the connection. Nothing here
// throws on bad input (only std::bad_alloc) or reads past the bytes it is given.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <xproxy/base/source_info.hpp>

namespace xproxy {

struct PolicyRequest {
    // The attributes of Postfix 3.7, in the order it sends them.
    std::string request, protocol_state, protocol_name, client_address, client_name, client_port, reverse_client_name,
        server_address, server_port, helo_name, sender, recipient, recipient_count, queue_id, instance, size,
        etrn_domain, stress, sasl_method, sasl_username, sasl_sender, ccert_subject, ccert_issuer, ccert_fingerprint,
        ccert_pubkey_fingerprint, encryption_protocol, encryption_cipher, encryption_keysize, policy_context;
    static constexpr std::size_t kKnownCount = 29;
    // Attributes with other names (compatibility_level, mail_version, tls_sni, ...).
    std::vector<std::pair<std::string, std::string>> other;

    // Names of the known attributes, in the order above.
    static const std::array<std::string_view, kKnownCount>& known_names();
    // Index of a known name in known_names(), or nullopt.
    static std::optional<std::size_t> known_index(std::string_view name);

    // The field of known attribute i (i < kKnownCount).
    std::string& field(std::size_t i);
    const std::string& field(std::size_t i) const;
    // Whether known attribute i was present in the request (possibly with an empty value).
    bool present(std::size_t i) const { return (present_ >> i) & 1u; }

    // Lookup by name, known or other: the value, or nullptr when the request had no such
    // attribute.
    const std::string* find(std::string_view name) const;
    // The value, or "" when absent (Postfix itself treats absent and empty alike).
    std::string_view get(std::string_view name) const;
    bool has(std::string_view name) const { return find(name) != nullptr; }
    // Number of distinct attributes (known present + other).
    std::size_t attribute_count() const;

    // Sets an attribute by name; returns false (and keeps the first value) if the
    // request already has it.
    bool set(std::string_view name, std::string_view value);

private:
    std::uint32_t present_ = 0;
};

struct PolicyLimits {
    std::size_t max_line = 2048;       // bytes per line, the LF excluded
    std::size_t max_request = 16384;   // bytes per request, every LF included
    std::size_t max_attributes = 100;  // attribute lines per request
};

class PolicyRequestParser {
public:
    explicit PolicyRequestParser(PolicyLimits limits = {}) : limits_(limits) {}

    // Consumes all `size` bytes. Returns false once the stream is broken: error() says
    // why, and this and every later call consume nothing more. Requests completed before
    // the error stay available through next().
    bool feed(const char* data, std::size_t size);
    bool feed(std::string_view data) { return feed(data.data(), data.size()); }
    // feed(), then moves every completed request into out.
    bool feed(const char* data, std::size_t size, std::vector<PolicyRequest>& out);

    // The oldest completed request not yet taken.
    std::optional<PolicyRequest> next();
    std::size_t ready() const { return ready_.size(); }

    bool failed() const { return failed_; }
    const std::string& error() const { return error_; }
    // True when bytes of an unfinished request are buffered (the peer left mid-request);
    // false once failed.
    bool in_request() const { return pending_bytes() > 0; }
    std::size_t pending_bytes() const { return request_bytes_ + line_.size(); }

private:
    bool fail(std::string why);
    bool end_line(std::string_view line);

    PolicyLimits limits_;
    std::string line_;  // an unfinished line carried between feeds
    PolicyRequest current_;
    std::size_t request_bytes_ = 0;  // complete lines of current_, LFs included
    std::size_t attribute_lines_ = 0;
    std::deque<PolicyRequest> ready_;
    bool failed_ = false;
    std::string error_;
};

// "action=TEXT\n\n"; CR, LF and NUL in TEXT become spaces so a reply is always one line.
std::string encode_policy_reply(std::string_view action);

// What a request tells about the client: client_address/client_port, server_address/
// server_port, helo_name, client_name (the verified reverse name; "unknown" -> ""),
// protocol_name, sasl_username, encryption_protocol/cipher/keysize, ccert_fingerprint,
// ccert_subject, ccert_issuer, and queue_id as session id (instance while the queue id
// is still empty). Addresses that do not parse leave the endpoint empty; time stays 0.
SourceInfo policy_source_info(const PolicyRequest& r);

}  // namespace xproxy
