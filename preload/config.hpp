// config.hpp: the shim's settings, read once from the environment (and optionally a file
// named by XPROXY_CONFIG holding the same NAME=value lines) when the library loads.
//
//   XPROXY_TRUSTED       CIDR list of upstreams allowed to send PROXY headers (required;
//                        none: the shim is inert)
//   XPROXY_PORTS         local ports whose listeners are managed (default: every TCP one)
//   XPROXY_TIMEOUT_MS    how long a trusted peer may take to send its header (3000)
//   XPROXY_REQUIRE       1: a trusted peer without a valid header is dropped (default);
//                        0: it is passed to the application untouched, with its real address
//   XPROXY_GETSOCKNAME   1: getsockname() returns the header's destination (default 0)
//   XPROXY_HMAC_KEY_FILE a key file (mode 0600 or tighter): only headers carrying a valid
//                        xproxy HMAC TLV made with this key are accepted
//   XPROXY_HMAC_WINDOW   seconds a signed header's time may differ from ours (60; 1..600)
//   XPROXY_LOG           syslog (default), stderr, file:PATH or off
//   XPROXY_LOG_LEVEL     error, warning, info (default) or debug
//   XPROXY_LOG_SUMMARY   seconds between the info-level summary lines (60; 1..86400)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <xproxy/base/ip.hpp>
#include <xproxy/base/secret_file.hpp>

namespace xproxy::preload {

// The HMAC key: the only copy the shim keeps (move-only, wiped when replaced or gone).
using SecretKey = SecretBytes;

struct Config {
    CidrSet trusted;
    std::vector<std::uint16_t> ports;  // empty: all
    int timeout_ms = 3000;
    bool require = true;
    bool getsockname_destination = false;
    SecretKey hmac_key;    // empty: no HMAC required
    int hmac_window = 60;  // accepted |now - signed time|, seconds
    enum class Log { syslog, stderr_, file, off } log = Log::syslog;
    std::string log_file;             // Log::file
    int log_level = 2;                // 0 error .. 3 debug
    int log_summary_s = 60;           // info: counts of connections, at most this often
    std::vector<std::string> errors;  // configuration problems, logged at start

    bool active() const { return !trusted.empty() && errors.empty(); }
    bool manages_port(std::uint16_t port) const;
};

// Reads the configuration; lookup(name) returns the variable's value or nullptr.
Config load_config(const char* (*lookup)(const char*));

}  // namespace xproxy::preload
