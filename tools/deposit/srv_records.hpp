// srv_records.hpp: the pure parts of finding a domain's deposit endpoint (doc/deposit.md,
// "Discovery"): SRV rdata decoding (RFC 2782), the order to try the targets in, and the
// rule that a target must lie in the recipient's domain unless the answer was
// DNSSEC-secure. No I/O, no DNS (srv_lookup.hpp asks), never throws on bad input.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <xproxy/base/result.hpp>

namespace xproxy::deposit {

// The owner name of a domain's deposit service.
inline constexpr std::string_view kDepositService = "_dmail._tcp.";

struct SrvRecord {
    std::uint16_t priority = 0;
    std::uint16_t weight = 0;
    std::uint16_t port = 0;
    std::string target;  // lower case, no trailing dot; "" = the root ("no service here")
};

// RFC 2782: priority, weight, port (16 bits each, network order), then the target as an
// uncompressed wire name (as libunbound hands it over). Refused: short rdata, compression
// pointers, bytes after the name, a label byte other than a letter, digit, '-' or '_',
// a name longer than 253 bytes. Failure texts escape every byte from the DNS.
Expected<SrvRecord> decode_srv_rdata(std::string_view rdata);

// A domain name as a recipient's domain or an SRV target may be: letters, digits, '-'
// (and '_' inside), labels of 1 to 63 bytes, at most 253 bytes, no empty label.
Expected<void> check_domain_name(std::string_view name);

// RFC 2782: "." alone means the service is decidedly not offered.
bool service_not_offered(const std::vector<SrvRecord>& records);

// `name` is `domain` or a name under it (case-insensitive, whole labels).
bool in_domain(std::string_view name, std::string_view domain);

// A random number in [0, bound) (bound >= 1). Tests pass a fixed sequence.
using SrvRandom = std::function<std::uint32_t(std::uint32_t bound)>;
SrvRandom default_srv_random();

// The order to try: ascending priority; within one priority, RFC 2782's weighted
// selection (weight-0 records first in the list, a running sum, a random number in
// [0, sum], the first record whose running sum reaches it, repeated on the rest). Root
// targets are dropped.
std::vector<SrvRecord> order_srv_records(std::vector<SrvRecord> records, const SrvRandom& random);

}  // namespace xproxy::deposit
