// ip.hpp: IPv4/IPv6 addresses, endpoints and CIDR sets.
//
// IpAddress holds either family. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are
// normalised to IPv4 by normalized() and by parse(), so that an address compares equal
// whichever socket family carried it. parse_mta() also accepts the "IPv6:"/"IPV6:" prefix
// Sendmail and XCLIENT use and one pair of surrounding brackets. Nothing here throws on
// bad input: parsers return std::nullopt.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xproxy/base/result.hpp>

struct sockaddr;
struct sockaddr_storage;

namespace xproxy {

class IpAddress {
public:
    enum class Family : std::uint8_t { v4, v6 };

    IpAddress() = default;  // 0.0.0.0
    static IpAddress v4(std::uint32_t host_order);
    static IpAddress v4_bytes(const std::uint8_t b[4]);
    static IpAddress v6_bytes(const std::uint8_t b[16]);  // not normalised

    // Strict textual forms: dotted quad without leading zeros, or RFC 4291 IPv6
    // (with an embedded IPv4 tail allowed). v4-mapped IPv6 is normalised to IPv4.
    static std::optional<IpAddress> parse(std::string_view text);
    // As parse(), also accepting "IPv6:"/"IPV6:" (any case) and "[...]".
    static std::optional<IpAddress> parse_mta(std::string_view text);

    Family family() const { return family_; }
    bool is_v4() const { return family_ == Family::v4; }
    bool is_v6() const { return family_ == Family::v6; }
    bool is_v4_mapped() const;
    IpAddress normalized() const;    // ::ffff:a.b.c.d -> a.b.c.d, others unchanged
    IpAddress to_v4_mapped() const;  // a.b.c.d -> ::ffff:a.b.c.d, v6 unchanged

    // 4 bytes (v4) or 16 bytes (v6), network order.
    const std::uint8_t* data() const { return bytes_.data(); }
    std::size_t size() const { return is_v4() ? 4 : 16; }

    std::string to_string() const;      // canonical RFC 5952 text for v6
    std::string to_mta_string() const;  // IPv6 gets the "IPv6:" prefix (XCLIENT/Sendmail)

    friend bool operator==(const IpAddress&, const IpAddress&) = default;

private:
    Family family_ = Family::v4;
    std::array<std::uint8_t, 16> bytes_{};  // v4 uses the first 4 bytes
};

struct Endpoint {
    IpAddress addr;
    std::uint16_t port = 0;

    // "1.2.3.4:25", "[::1]:25"
    std::string to_string() const;
    // Fill a sockaddr_in/sockaddr_in6; returns the length used. as_v6 forces a
    // v4-mapped sockaddr_in6 for an IPv4 address (IPv6 listeners).
    unsigned to_sockaddr(sockaddr_storage& out, bool as_v6 = false) const;
    // From AF_INET/AF_INET6 (v4-mapped normalised); nullopt for other families.
    static std::optional<Endpoint> from_sockaddr(const sockaddr* sa, unsigned len);

    friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

// A network prefix. parse("10.0.0.0/8"), parse("::1"), parse("2001:db8::/32").
// Host bits beyond the prefix must be zero (a typo such as 10.1.2.3/8 is rejected).
class Cidr {
public:
    static std::optional<Cidr> parse(std::string_view text);
    bool contains(const IpAddress& a) const;  // a is normalised first
    const IpAddress& network() const { return net_; }
    unsigned prefix() const { return prefix_; }
    std::string to_string() const;

private:
    IpAddress net_;
    unsigned prefix_ = 0;
};

// A set of prefixes, e.g. the trusted-upstream list. Empty set contains nothing:
// "trust nobody" is the default.
class CidrSet {
public:
    // Entries separated by commas and/or white space. The error names the bad entry.
    static Expected<CidrSet> parse(std::string_view list);
    void add(const Cidr& c) { entries_.push_back(c); }
    bool contains(const IpAddress& a) const;
    bool empty() const { return entries_.empty(); }
    const std::vector<Cidr>& entries() const { return entries_; }
    std::string to_string() const;

private:
    std::vector<Cidr> entries_;
};

}  // namespace xproxy
