// xproxy_commands.hpp: seed 000's SMTP proxy commands.
//
//   XPROXYFROM SID=.. IP=.. PORT=.. [HELO=.. LOGIN=.. PROTO=..]   inbound: who the source MTA is
//   XPROXY     SID=.. IP=.. PORT=.. DOMAIN=.. [LOGIN=..]          submission: who the MUA is
//   XPROXYTO   DESTINATIONS=[ip],[ip] PORT=.. FORCEHELO=True|False SHOULDSKIPTLS=..
//              REQUIRETLS=.. REQUIREOORG=.. TLSAUTHLEVEL=.. RISK=.. SESSIONID=.. LAST=True|False
//              outbound: where and how the proxy should connect
// All values are xtext; IPv6 addresses are written "IPv6:..." (inside the brackets of
// DESTINATIONS too). Every command line is at most 512 bytes: a long XPROXYTO is split,
// each command but the last carrying LAST=False and a share of DESTINATIONS, the last
// LAST=True with the other attributes. XproxyToAccumulator merges them, bounded.
// The proxy answers XPROXYTO with "250-DESTINATIONLEFT=[ip],..." followed by the target's
// EHLO options (encode_destination_left / parse_destination_left).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "xproxy/ip.hpp"
#include "xproxy/source_info.hpp"

namespace xproxy::smtp {

struct XproxyFrom {
    std::string sid;
    Endpoint source;
    std::string helo, login, proto;  // optional
    friend bool operator==(const XproxyFrom&, const XproxyFrom&) = default;
};

struct Xproxy {
    std::string sid;
    Endpoint source;
    std::string domain;  // the MUA's EHLO/HELO domain
    std::string login;   // optional
    friend bool operator==(const Xproxy&, const Xproxy&) = default;
};

struct XproxyTo {
    std::vector<IpAddress> destinations;
    std::uint16_t port = 25;
    bool force_helo = false;
    bool skip_tls = false;      // SHOULDSKIPTLS
    bool require_tls = false;
    bool require_oorg = false;  // REQUIREOORG
    std::string tls_auth_level; // e.g. DomainValidation
    std::string risk;           // e.g. Normal, High
    std::string session_id;
    friend bool operator==(const XproxyTo&, const XproxyTo&) = default;
};

std::string encode(const XproxyFrom& c);  // one line with CRLF
std::string encode(const Xproxy& c);
std::vector<std::string> encode(const XproxyTo& c);  // one or more lines; empty if impossible

std::optional<XproxyFrom> parse_xproxyfrom(std::string_view line, std::string* error);
std::optional<Xproxy> parse_xproxy(std::string_view line, std::string* error);

// SourceInfo views of the inbound/submission commands.
SourceInfo to_source_info(const XproxyFrom& c);
XproxyFrom xproxyfrom_from(const SourceInfo& info);

// Collects XPROXYTO commands until LAST=True.
class XproxyToAccumulator {
public:
    enum class State { need_more, complete, failed };
    static constexpr std::size_t kMaxCommands = 16;
    static constexpr std::size_t kMaxDestinations = 64;

    State add(std::string_view line);
    const XproxyTo& result() const { return value_; }
    const std::string& error() const { return error_; }
    void reset();

private:
    State fail(std::string why);
    XproxyTo value_;
    std::size_t commands_ = 0;
    std::vector<std::string> seen_;
    std::string error_;
    bool failed_ = false;
};

// "250-DESTINATIONLEFT=[ip],[ip]\r\n250-OPTION\r\n...250 LAST-OPTION\r\n"
std::string encode_destination_left(const std::vector<IpAddress>& left, const std::vector<std::string>& options);
struct DestinationLeft {
    std::vector<IpAddress> left;
    std::vector<std::string> options;
};
// Parses the reply (lines with or without CRLF); nullopt with *error on a malformed one.
std::optional<DestinationLeft> parse_destination_left(std::string_view reply, std::string* error);

}  // namespace xproxy::smtp
