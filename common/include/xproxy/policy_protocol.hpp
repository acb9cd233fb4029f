// policy_protocol.hpp: Postfix's policy delegation protocol (SMTPD_POLICY_README).
//
// A request is "name=value" lines, each ended by LF, and an empty line ends the request.
// RequestParser is incremental: feed() it whatever arrived; it returns every request
// completed so far and keeps the rest. A CR before the LF is tolerated and removed.
// Bounds: line length, request size and attribute count (Limits); past any bound, or on a
// line without '=', a name outside [a-z0-9_] or a repeated name, the parser fails with a
// clear reason and stays failed: the caller closes that connection. Unknown names are
// kept (Postfix adds attributes over time) and otherwise ignored. Values are raw bytes
// (Postfix does not encode them); NUL bytes are rejected.
// Replies are "action=TEXT\n\n"; encode_reply() removes CR/LF from TEXT.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "xproxy/source_info.hpp"

namespace xproxy::policy {

struct Request {
    std::vector<std::pair<std::string, std::string>> attrs;  // in arrival order

    // The value of an attribute, or "" when absent.
    std::string_view get(std::string_view name) const;
    bool has(std::string_view name) const;
};

struct Limits {
    std::size_t max_line = 2048;        // bytes per line, LF excluded
    std::size_t max_request = 16384;    // bytes per request, all lines
    std::size_t max_attributes = 100;
};

class RequestParser {
public:
    explicit RequestParser(Limits limits = {}) : limits_(limits) {}

    // Consumes data; appends completed requests to out. Returns false once the stream is
    // invalid; error() then says why and further calls return false.
    bool feed(const char* data, std::size_t size, std::vector<Request>& out);
    bool failed() const { return !error_.empty(); }
    const std::string& error() const { return error_; }
    // Bytes of a request begun but not finished (a peer that left mid-request).
    std::size_t pending_bytes() const { return request_bytes_ + line_.size(); }

private:
    bool fail(std::string why);
    bool end_line(std::vector<Request>& out);

    Limits limits_;
    std::string line_;
    Request current_;
    std::size_t request_bytes_ = 0;
    std::string error_;
};

// "action=TEXT\n\n" with CR and LF in TEXT replaced by spaces.
std::string encode_reply(std::string_view action);

// What a request tells about the client: client_address/port, server_address/port,
// helo_name, reverse_client_name (PTR), protocol_name, sasl_username, TLS details
// (encryption_protocol/cipher/keysize, ccert_fingerprint/subject/issuer) and instance as
// the session id.
SourceInfo to_source_info(const Request& r);

}  // namespace xproxy::policy
