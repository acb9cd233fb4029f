// srv_lookup.hpp: a domain's deposit endpoints from the DNS (doc/deposit.md, "Discovery"),
// with libunbound, blocking (a command, one lookup).
//
// Promises: SRV _dmail._tcp.DOMAIN is asked; NXDOMAIN, no SRV records or the "." record
// are `no_service`; SERVFAIL, a resolver error or a DNSSEC-bogus answer are `temporary`.
// The targets are ordered as RFC 2782 says (srv_records.hpp), at most kMaxSrvTargets. A
// target outside DOMAIN is used only when the SRV answer was DNSSEC-secure (a trust
// anchor is configured and the chain validated); otherwise it is skipped and the reason
// kept in `notes`, and when no target is left the result is `refused`. Each target's
// addresses (A, then AAAA) are asked of the same resolver; a target without any is
// skipped. Failure texts escape every byte from the DNS.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "srv_records.hpp"

namespace xproxy::deposit {

inline constexpr std::size_t kMaxSrvTargets = 10;
inline constexpr std::size_t kMaxAddressesPerTarget = 4;

struct DnsConfig {
    std::vector<std::string> forwarders;  // "127.0.0.1@5353"; empty: resolv_conf's servers
    std::string resolv_conf = "/etc/resolv.conf";
    std::string trust_anchor_file;                             // DS or DNSKEY records; empty: no DNSSEC validation
    std::vector<std::pair<std::string, std::string>> options;  // ub_ctx_set_option(NAME:, VALUE)
};

struct SrvTarget {
    std::string host;
    std::uint16_t port = 0;
    std::vector<std::string> addresses;  // textual IPv4 / IPv6 addresses
};

struct Discovery {
    enum class Status { ok, no_service, temporary, refused };
    Status status = Status::temporary;
    std::vector<SrvTarget> targets;  // ok: in the order to try
    bool secure = false;             // the SRV answer was DNSSEC-secure
    std::string error;               // not ok: why
    std::string notes;               // ok: what was skipped
};

Discovery discover_deposit_service(const std::string& domain, const DnsConfig& config,
                                   const SrvRandom& random = default_srv_random());

}  // namespace xproxy::deposit
