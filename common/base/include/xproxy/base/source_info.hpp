// source_info.hpp: everything xproxy knows about the original client of a session, the
// value every codec in libxproxy encodes or decodes. Empty strings mean "unknown".
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <xproxy/base/ip.hpp>

namespace xproxy {

struct TlsInfo {
    std::string version;           // "TLSv1.3"; empty: no TLS
    std::string cipher;            // "TLS_AES_256_GCM_SHA384"
    unsigned bits = 0;             // cipher strength
    std::string peer_fingerprint;  // client certificate SHA-256, hex with ':' or plain
    std::string peer_subject;      // client certificate subject DN
    std::string peer_issuer;

    bool active() const { return !version.empty(); }
    friend bool operator==(const TlsInfo&, const TlsInfo&) = default;
};

struct SourceInfo {
    std::optional<Endpoint> client;  // the original client (what every hop should see)
    std::optional<Endpoint> server;  // the address the client connected to
    std::string helo;                // HELO/EHLO argument as sent by the client
    std::string ptr_name;            // verified reverse name, empty if unknown
    std::string protocol;            // SMTP, ESMTP, ESMTPS, ESMTPSA, ...
    TlsInfo tls;
    std::string login;       // SASL authenticated user
    std::string session_id;  // id of the first hop's session (queue id, ...)
    std::int64_t time = 0;   // unix seconds when the first hop saw the client

    friend bool operator==(const SourceInfo&, const SourceInfo&) = default;
};

}  // namespace xproxy
