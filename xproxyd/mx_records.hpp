// mx_records.hpp: the pure parts of finding where mail for a domain goes (RFC 5321 5.1,
// RFC 7505), for the outbound mode: the values a lookup returns, the name checks made
// before any query, address literals, MX rdata decoding, null MX detection and the
// delivery order (preference, equal preferences shuffled, addresses capped). No I/O, no
// clock, no DNS here: mx_lookup.hpp asks the DNS and calls these. Every text that can
// hold bytes from the DNS is escaped (xproxy/base/escape.hpp). Nothing here throws
// (except std::bad_alloc).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <xproxy/base/ip.hpp>
#include <xproxy/base/result.hpp>

namespace xproxy::xproxyd {

// The address families a destination may have, and their order within one host.
enum class MxFamilies : std::uint8_t { ipv4, ipv6, ipv4_first, ipv6_first };
// "ipv4", "ipv6", "ipv4-first", "ipv6-first"; nullopt otherwise.
std::optional<MxFamilies> parse_mx_families(std::string_view text);

// One address of a host, and whether the A or AAAA answer that gave it was DNSSEC-secure.
struct MxAddress {
    IpAddress address;
    bool secure = false;
};

// One host to deliver to: an MX target, the domain itself (implicit MX) or an address
// literal, with its usable addresses in the configured family order.
struct MxHost {
    std::string name;  // lower case, no trailing dot; an address literal as given
    std::uint16_t preference = 0;
    std::vector<MxAddress> addresses;
};

// How a lookup ended. Only `temporary` may change by asking again soon; the caller maps
// null_mx to 556 5.1.10 (RFC 7505), the other permanent ones to 5.1.2 / 5.4.4.
enum class MxStatus : std::uint8_t {
    ok,              // at least one destination
    invalid_domain,  // permanent: neither a domain name nor an address literal (no query made)
    no_such_domain,  // permanent: NXDOMAIN for the MX query
    null_mx,         // permanent: the domain does not accept mail (a single "MX 0 .")
    no_address,      // permanent: MX hosts (or the implicit MX) exist, none has a usable address
    temporary,       // SERVFAIL, timeout, DNSSEC validation failure, resolver error
};
std::string_view to_string(MxStatus s);
constexpr bool is_permanent(MxStatus s) { return s != MxStatus::ok && s != MxStatus::temporary; }

// What the DNS said about a domain before ordering: what the cache keeps.
struct MxAnswer {
    MxStatus status = MxStatus::temporary;
    std::vector<MxHost> hosts;  // by preference; only hosts with addresses
    std::string why;            // a failure: why; ok: what was skipped (empty if nothing)
    bool mx_secure = false;     // the MX answer (its data, NODATA or NXDOMAIN) was DNSSEC-secure
    bool implicit_mx = false;   // no MX records: the domain itself, preference 0
    bool literal = false;       // an address literal: no DNS asked
    bool partial = false;       // ok, but some host failed temporarily (never cached)
    std::uint32_t ttl = 0;      // seconds: the smallest TTL of the answers used
};

// One destination, in the order to try.
struct MxDestination {
    std::string host;
    std::uint16_t preference = 0;
    IpAddress address;
    bool mx_secure = false;       // as MxAnswer::mx_secure
    bool address_secure = false;  // the A/AAAA answer of this address was DNSSEC-secure
};

struct MxResult {
    MxStatus status = MxStatus::temporary;
    std::vector<MxDestination> destinations;  // empty unless ok
    std::string why;
    bool mx_secure = false;
    bool implicit_mx = false;
    bool literal = false;
    bool partial = false;  // as MxAnswer::partial: some host failed temporarily
    bool from_cache = false;
    std::uint32_t ttl = 0;  // remaining seconds for a cached answer
};

// Every text of a result is bounded: notes are appended "; "-separated up to this many
// bytes, then "..." and nothing more.
constexpr std::size_t kMaxMxNotes = 1000;
void add_mx_note(std::string& notes, std::string_view note);

// Destinations never connected to, whatever the DNS or an address literal says: the
// special-use ranges an outside party could point a domain at to reach this host or its
// internal networks (loopback, unspecified, link-local, multicast, broadcast and the rest
// of 240/4, RFC 1918, shared address space 100.64/10, IPv6 unique-local). The
// documentation ranges (192.0.2/24, 2001:db8::/32) are not in it.
CidrSet default_refused_destinations();
// "refused destination 127.0.0.1 (loopback)" when `refused` contains `a` (the name of
// the special-use range, or "refused_destinations" for another entry); nullopt otherwise.
std::optional<std::string> refused_destination(const CidrSet& refused, const IpAddress& a);

// What may be kept of the addresses of one host's A or AAAA answer.
struct MxAddressRules {
    MxFamilies families = MxFamilies::ipv4_first;
    const CidrSet* refused = nullptr;  // nullptr: none
    std::size_t per_host = 4;          // addresses kept per host, both families together
};
// Decodes the rdata of an A (`aaaa` false) or AAAA answer into `host.addresses`, in
// answer order: an AAAA ::ffff:a.b.c.d becomes the IPv4 a.b.c.d (dropped unless IPv4 is
// among the families), an AAAA ::a.b.c.d (IPv4-compatible, deprecated) is dropped, a
// refused destination is dropped and noted, an address the host has already is kept once.
// Stops once the host has rules.per_host addresses or `left` (the addresses the whole
// answer may still keep, decremented here) is 0. Returns the number of addresses refused.
std::size_t add_host_addresses(MxHost& host, bool aaaa, const std::vector<std::string>& rdata, bool secure,
                               const MxAddressRules& rules, std::size_t& left, std::string& notes);

// A domain name the lookup may query: ASCII letters, digits, '-' and '_' (as Postfix's
// valid_hostname), labels of 1..63 bytes that neither start nor end with '-', no empty
// label (so no leading, trailing or doubled dot), 253 bytes in all, and not the text of
// an IPv4 address. Non-ASCII (U-label) domains must be converted to A-labels first.
Expected<void> check_domain_name(std::string_view name);

// "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 4.1.3; the tag in any case) -> the
// address. Anything else, including a bare "[2001:db8::1]" and other tags, is refused.
Expected<IpAddress> parse_address_literal(std::string_view text);

// The answer for an address literal: one host, preference 0, no DNS, never secure;
// no_address when its family is not among `families` or `refused` contains it.
MxAnswer answer_for_literal(std::string_view text, MxFamilies families, const CidrSet& refused);

// One MX record decoded from its rdata (RFC 1035 3.3.9: 16-bit preference, then an
// uncompressed wire name, as libunbound hands it over). The target is lower case without
// the trailing dot; "" is the root (null MX). Refused: short rdata, compression pointers,
// bytes after the name, labels with bytes other than letters, digits, '-' or '_', and
// targets that fail check_domain_name (an IP address written as a name included).
struct MxRecord {
    std::uint16_t preference = 0;
    std::string target;
};
Expected<MxRecord> decode_mx_rdata(std::string_view rdata);

// RFC 7505: the MX RRset is exactly one record, preference 0, target ".".
bool is_null_mx(const std::vector<MxRecord>& records);

// A random number in [0, bound) (bound >= 1). Tests pass a fixed sequence.
using MxRandom = std::function<std::uint32_t(std::uint32_t bound)>;
// A random source seeded from std::random_device.
MxRandom default_mx_random();

// Stable sort by preference, then each run of equal preferences shuffled (RFC 5321 5.1:
// "randomize them to spread the load"). T has a `preference` member.
template <class T>
void sort_and_shuffle(std::vector<T>& v, const MxRandom& random) {
    std::stable_sort(v.begin(), v.end(), [](const T& a, const T& b) { return a.preference < b.preference; });
    for (std::size_t begin = 0; begin < v.size();) {
        std::size_t end = begin + 1;
        while (end < v.size() && v[end].preference == v[begin].preference) ++end;
        for (std::size_t i = end - begin; i > 1; --i) {  // Fisher-Yates over [begin, end)
            std::uint32_t j = random(static_cast<std::uint32_t>(i));
            if (j >= i) j = static_cast<std::uint32_t>(i - 1);  // a source out of range cannot break the order
            std::swap(v[begin + i - 1], v[begin + j]);
        }
        begin = end;
    }
}

// The records to resolve: targets "." dropped (noted in `skipped`, add_mx_note), duplicates of a
// target kept once at its best preference, sorted and shuffled, at most max_hosts.
std::vector<MxRecord> select_mx_records(std::vector<MxRecord> records, std::size_t max_hosts, const MxRandom& random,
                                        std::string& skipped);

// The destinations of an answer in delivery order: hosts as they are, addresses within
// a host as they are, an address already listed by an earlier host dropped, at most
// max_addresses in all; `why` at most kMaxMxNotes (+ "...") bytes.
MxResult to_result(const MxAnswer& answer, std::size_t max_addresses);

}  // namespace xproxy::xproxyd
