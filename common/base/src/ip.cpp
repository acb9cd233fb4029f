// ip.cpp: address parsing and formatting on top of libc's inet_pton/inet_ntop, which
// are strict (no leading zeros, no short forms) and need no socket.
#include <xproxy/base/ip.hpp>
#include <xproxy/base/text.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

namespace xproxy {

namespace {
constexpr std::uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
}  // namespace

IpAddress IpAddress::v4(std::uint32_t host_order) {
    std::uint8_t b[4] = {static_cast<std::uint8_t>(host_order >> 24), static_cast<std::uint8_t>(host_order >> 16),
                         static_cast<std::uint8_t>(host_order >> 8), static_cast<std::uint8_t>(host_order)};
    return v4_bytes(b);
}

IpAddress IpAddress::v4_bytes(const std::uint8_t b[4]) {
    IpAddress a;
    a.family_ = Family::v4;
    std::memcpy(a.bytes_.data(), b, 4);
    return a;
}

IpAddress IpAddress::v6_bytes(const std::uint8_t b[16]) {
    IpAddress a;
    a.family_ = Family::v6;
    std::memcpy(a.bytes_.data(), b, 16);
    return a;
}

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
    char buf[INET6_ADDRSTRLEN + 1];
    if (text.empty() || text.size() >= sizeof buf) return std::nullopt;
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\0';
    if (std::memchr(text.data(), '\0', text.size())) return std::nullopt;
    std::uint8_t b[16];
    if (text.find(':') == std::string_view::npos) {
        if (inet_pton(AF_INET, buf, b) != 1) return std::nullopt;
        return v4_bytes(b);
    }
    if (inet_pton(AF_INET6, buf, b) != 1) return std::nullopt;
    return v6_bytes(b).normalized();
}

std::optional<IpAddress> IpAddress::parse_mta(std::string_view text) {
    if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
    if (istarts_with(text, "ipv6:")) {
        auto a = parse(text.substr(5));
        // "IPv6:" must introduce an IPv6 literal (v4-mapped ones normalise to v4).
        if (!a || text.substr(5).find(':') == std::string_view::npos) return std::nullopt;
        return a;
    }
    return parse(text);
}

bool IpAddress::is_v4_mapped() const { return is_v6() && std::memcmp(bytes_.data(), kMappedPrefix, 12) == 0; }

IpAddress IpAddress::normalized() const {
    if (!is_v4_mapped()) return *this;
    return v4_bytes(bytes_.data() + 12);
}

IpAddress IpAddress::to_v4_mapped() const {
    if (is_v6()) return *this;
    std::uint8_t b[16];
    std::memcpy(b, kMappedPrefix, 12);
    std::memcpy(b + 12, bytes_.data(), 4);
    return v6_bytes(b);
}

std::string IpAddress::to_string() const {
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof buf);
    return buf;
}

std::string IpAddress::to_mta_string() const { return is_v4() ? to_string() : "IPv6:" + to_string(); }

std::string Endpoint::to_string() const {
    if (addr.is_v4()) return addr.to_string() + ":" + std::to_string(port);
    return "[" + addr.to_string() + "]:" + std::to_string(port);
}

unsigned Endpoint::to_sockaddr(sockaddr_storage& out, bool as_v6) const {
    std::memset(&out, 0, sizeof out);
    if (addr.is_v4() && !as_v6) {
        sockaddr_in sin{};
        sin.sin_family = AF_INET;
        sin.sin_port = htons(port);
        std::memcpy(&sin.sin_addr, addr.data(), 4);
        std::memcpy(&out, &sin, sizeof sin);
        return sizeof sin;
    }
    IpAddress a6 = addr.to_v4_mapped();
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(port);
    std::memcpy(&sin6.sin6_addr, a6.data(), 16);
    std::memcpy(&out, &sin6, sizeof sin6);
    return sizeof sin6;
}

std::optional<Endpoint> Endpoint::from_sockaddr(const sockaddr* sa, unsigned len) {
    if (!sa || len < sizeof(sa_family_t)) return std::nullopt;
    if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
        sockaddr_in sin;
        std::memcpy(&sin, sa, sizeof sin);
        return Endpoint{IpAddress::v4_bytes(reinterpret_cast<const std::uint8_t*>(&sin.sin_addr)), ntohs(sin.sin_port)};
    }
    if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
        sockaddr_in6 sin6;
        std::memcpy(&sin6, sa, sizeof sin6);
        return Endpoint{IpAddress::v6_bytes(reinterpret_cast<const std::uint8_t*>(&sin6.sin6_addr)).normalized(),
                        ntohs(sin6.sin6_port)};
    }
    return std::nullopt;
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
    auto slash = text.find('/');
    auto addr = IpAddress::parse_mta(text.substr(0, slash));
    if (!addr) return std::nullopt;
    unsigned max = addr->is_v4() ? 32 : 128;
    unsigned prefix = max;
    if (slash != std::string_view::npos) {
        auto digits = text.substr(slash + 1);
        if (digits.empty() || digits.size() > 3 || (digits.size() > 1 && digits[0] == '0')) return std::nullopt;
        prefix = 0;
        for (char c : digits) {
            if (c < '0' || c > '9') return std::nullopt;
            prefix = prefix * 10 + static_cast<unsigned>(c - '0');
        }
        if (prefix > max) return std::nullopt;
    }
    // Host bits must be zero.
    for (unsigned bit = prefix; bit < max; ++bit)
        if (addr->data()[bit / 8] & (0x80u >> (bit % 8))) return std::nullopt;
    Cidr c;
    c.net_ = *addr;
    c.prefix_ = prefix;
    return c;
}

bool Cidr::contains(const IpAddress& raw) const {
    IpAddress a = raw.normalized();
    if (a.family() != net_.family()) return false;
    unsigned full = prefix_ / 8, rest = prefix_ % 8;
    if (std::memcmp(a.data(), net_.data(), full) != 0) return false;
    if (rest == 0) return true;
    std::uint8_t mask = static_cast<std::uint8_t>(0xffu << (8 - rest));
    return (a.data()[full] & mask) == (net_.data()[full] & mask);
}

std::string Cidr::to_string() const { return net_.to_string() + "/" + std::to_string(prefix_); }

Expected<CidrSet> CidrSet::parse(std::string_view list) {
    CidrSet set;
    std::size_t i = 0;
    while (i < list.size()) {
        while (i < list.size() &&
               (list[i] == ',' || list[i] == ' ' || list[i] == '\t' || list[i] == '\n' || list[i] == '\r'))
            ++i;
        std::size_t start = i;
        while (i < list.size() &&
               !(list[i] == ',' || list[i] == ' ' || list[i] == '\t' || list[i] == '\n' || list[i] == '\r'))
            ++i;
        if (start == i) break;
        auto entry = list.substr(start, i - start);
        auto c = Cidr::parse(entry);
        if (!c) return Failure{"invalid address or prefix '" + std::string(entry.substr(0, 64)) + "'"};
        set.add(*c);
    }
    return set;
}

bool CidrSet::contains(const IpAddress& a) const {
    for (const auto& c : entries_)
        if (c.contains(a)) return true;
    return false;
}

std::string CidrSet::to_string() const {
    std::string s;
    for (const auto& c : entries_) {
        if (!s.empty()) s += ", ";
        s += c.to_string();
    }
    return s;
}

}  // namespace xproxy
