// mx_records.cpp: see mx_records.hpp.
#include "mx_records.hpp"

#include <memory>
#include <random>
#include <unordered_set>

#include <xproxy/base/escape.hpp>
#include <xproxy/base/invariant.hpp>
#include <xproxy/base/text.hpp>

namespace xproxy::xproxyd {

namespace {

constexpr std::size_t kMaxName = 253;
constexpr std::size_t kMaxLabel = 63;
constexpr std::size_t kShown = 80;  // escaped bytes of a name quoted in a message

bool hostname_byte(char c) {
    return ascii_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
}

std::string quoted(std::string_view name) { return "\"" + escape_value(name, kShown) + "\""; }

struct SpecialUse {
    const char* prefix;
    const char* name;
};
// First match names the range: broadcast before the rest of 240/4.
constexpr SpecialUse kSpecialUse[] = {
    {"0.0.0.0/8", "unspecified"},  {"10.0.0.0/8", "private"},        {"100.64.0.0/10", "shared"},
    {"127.0.0.0/8", "loopback"},   {"169.254.0.0/16", "link-local"}, {"172.16.0.0/12", "private"},
    {"192.168.0.0/16", "private"}, {"224.0.0.0/4", "multicast"},     {"255.255.255.255/32", "broadcast"},
    {"240.0.0.0/4", "reserved"},   {"::/128", "unspecified"},        {"::1/128", "loopback"},
    {"fc00::/7", "unique-local"},  {"fe80::/10", "link-local"},      {"ff00::/8", "multicast"},
};

// ::a.b.c.d (RFC 4291 2.5.5.1, deprecated): neither :: nor ::1.
bool v4_compatible(const IpAddress& a) {
    if (!a.is_v6()) return false;
    const std::uint8_t* b = a.data();
    for (int i = 0; i < 12; ++i)
        if (b[i] != 0) return false;
    return !(b[12] == 0 && b[13] == 0 && b[14] == 0 && b[15] <= 1);
}

}  // namespace

void add_mx_note(std::string& notes, std::string_view note) {
    if (note.empty() || notes.size() >= kMaxMxNotes) return;
    if (!notes.empty()) notes += "; ";
    notes += note;
    if (notes.size() > kMaxMxNotes) notes.replace(kMaxMxNotes, std::string::npos, "...");
}

CidrSet default_refused_destinations() {
    CidrSet set;
    for (const auto& s : kSpecialUse) {
        auto c = Cidr::parse(s.prefix);
        XPROXY_INVARIANT(c.has_value());
        set.add(*c);
    }
    return set;
}

namespace {

// The IPv4 address an IPv6 address carries to reach an IPv4 host through a translator or
// tunnel: NAT64's well-known prefix 64:ff9b::/96 (RFC 6052) and 6to4's 2002::/16 (RFC
// 3056). A refused IPv4 address must not be reachable that way.
std::optional<IpAddress> embedded_v4(const IpAddress& a) {
    if (!a.is_v6()) return std::nullopt;
    const std::uint8_t* b = a.data();
    static const std::uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    if (std::equal(b, b + 12, nat64)) return IpAddress::v4_bytes(b + 12);
    if (b[0] == 0x20 && b[1] == 0x02) return IpAddress::v4_bytes(b + 2);
    return std::nullopt;
}

}  // namespace

std::optional<std::string> refused_destination(const CidrSet& refused, const IpAddress& a) {
    static constexpr std::string_view prefix = "refused destination ";
    if (v4_compatible(a)) return std::string(prefix) + a.to_string() + " (IPv4-compatible, deprecated)";
    if (auto v4 = embedded_v4(a); v4 && refused.contains(*v4)) {
        if (auto why = refused_destination(refused, *v4))
            return std::string(prefix) + a.to_string() + " (carries " + why->substr(prefix.size()) + ")";
    }
    if (!refused.contains(a)) return std::nullopt;
    std::string name = "refused_destinations";
    for (const auto& s : kSpecialUse) {
        auto c = Cidr::parse(s.prefix);
        if (c && c->contains(a)) {
            name = s.name;
            break;
        }
    }
    return "refused destination " + a.normalized().to_string() + " (" + name + ")";
}

std::size_t add_host_addresses(MxHost& host, bool aaaa, const std::vector<std::string>& rdata, bool secure,
                               const MxAddressRules& rules, std::size_t& left, std::string& notes) {
    std::size_t refused = 0;
    for (const auto& rd : rdata) {
        if (left == 0 || host.addresses.size() >= rules.per_host) break;
        const auto* b = reinterpret_cast<const std::uint8_t*>(rd.data());
        IpAddress a;
        if (!aaaa && rd.size() == 4) a = IpAddress::v4_bytes(b);
        else if (aaaa && rd.size() == 16) a = IpAddress::v6_bytes(b).normalized();
        else continue;
        if (aaaa && a.is_v4() && rules.families == MxFamilies::ipv6) continue;  // IPv4 however it is written
        if (v4_compatible(a)) {
            add_mx_note(notes, host.name + ": IPv4-compatible address " + a.to_string() + " dropped");
            continue;
        }
        if (rules.refused) {
            if (auto why = refused_destination(*rules.refused, a)) {
                add_mx_note(notes, host.name + ": " + *why);
                ++refused;
                continue;
            }
        }
        bool dup = false;
        for (const auto& have : host.addresses) dup = dup || have.address == a;
        if (dup) continue;
        host.addresses.push_back(MxAddress{a, secure});
        --left;
    }
    return refused;
}

std::optional<MxFamilies> parse_mx_families(std::string_view text) {
    if (text == "ipv4") return MxFamilies::ipv4;
    if (text == "ipv6") return MxFamilies::ipv6;
    if (text == "ipv4-first") return MxFamilies::ipv4_first;
    if (text == "ipv6-first") return MxFamilies::ipv6_first;
    return std::nullopt;
}

std::string_view to_string(MxStatus s) {
    switch (s) {
        case MxStatus::ok: return "ok";
        case MxStatus::invalid_domain: return "invalid_domain";
        case MxStatus::no_such_domain: return "no_such_domain";
        case MxStatus::null_mx: return "null_mx";
        case MxStatus::no_address: return "no_address";
        case MxStatus::temporary: return "temporary";
    }
    return "unknown";
}

Expected<void> check_domain_name(std::string_view name) {
    if (name.empty()) return Failure{"empty domain name"};
    if (name.size() > kMaxName) return Failure{"domain name longer than 253 bytes: " + quoted(name)};
    std::size_t start = 0;
    while (true) {
        std::size_t dot = name.find('.', start);
        std::string_view label = name.substr(start, dot == std::string_view::npos ? name.npos : dot - start);
        if (label.empty()) return Failure{"empty label in domain name " + quoted(name)};
        if (label.size() > kMaxLabel) return Failure{"label longer than 63 bytes in domain name " + quoted(name)};
        for (char c : label)
            if (!hostname_byte(c))
                return Failure{"domain name with a byte not allowed in a host name: " + quoted(name)};
        if (label.front() == '-' || label.back() == '-')
            return Failure{"label starting or ending with '-' in domain name " + quoted(name)};
        if (dot == std::string_view::npos) break;
        start = dot + 1;
    }
    // RFC 5321 2.3.5 / RFC 7505: an address is written as a literal, never as a name.
    if (IpAddress::parse(name)) return Failure{"an IP address is not a domain name: " + quoted(name)};
    return {};
}

Expected<IpAddress> parse_address_literal(std::string_view text) {
    if (text.size() < 2 || text.front() != '[' || text.back() != ']')
        return Failure{"not an address literal: " + quoted(text)};
    std::string_view inner = text.substr(1, text.size() - 2);
    std::optional<IpAddress> a;
    if (istarts_with(inner, "IPv6:")) {
        // "IPv6:" must introduce an IPv6 text (a v4-mapped one becomes IPv4, as everywhere).
        if (inner.substr(5).find(':') != std::string_view::npos) a = IpAddress::parse(inner.substr(5));
    } else if (inner.find(':') == std::string_view::npos) {
        a = IpAddress::parse(inner);  // a dotted quad; other tags (RFC 5321 General-address-literal) refused
    }
    if (!a) return Failure{"invalid address literal " + quoted(text)};
    return *a;
}

MxAnswer answer_for_literal(std::string_view text, MxFamilies families, const CidrSet& refused) {
    MxAnswer out;
    out.literal = true;
    auto addr = parse_address_literal(text);
    if (!addr) {
        out.status = MxStatus::invalid_domain;
        out.why = addr.error();
        return out;
    }
    bool usable = addr->is_v4() ? families != MxFamilies::ipv6 : families != MxFamilies::ipv4;
    if (!usable) {
        out.status = MxStatus::no_address;
        out.why = "address literal " + quoted(text) + " of a family that is not used";
        return out;
    }
    if (auto why = refused_destination(refused, *addr)) {
        out.status = MxStatus::no_address;
        out.why = "address literal " + quoted(text) + ": " + *why;
        return out;
    }
    out.status = MxStatus::ok;
    out.hosts.push_back(MxHost{std::string(text), 0, {MxAddress{*addr, false}}});
    return out;
}

Expected<MxRecord> decode_mx_rdata(std::string_view rdata) {
    // 00 0a                preference 10
    // 03 'm' 'x' '1'       a label of 3 bytes ...
    // 00                   ... up to the root label
    if (rdata.size() < 3) return Failure{"MX record of " + std::to_string(rdata.size()) + " bytes"};
    MxRecord rec;
    rec.preference = static_cast<std::uint16_t>((static_cast<unsigned char>(rdata[0]) << 8) |
                                                static_cast<unsigned char>(rdata[1]));
    std::size_t pos = 2;
    std::string name;
    while (true) {
        if (pos >= rdata.size()) return Failure{"MX record with a truncated name"};
        auto len = static_cast<unsigned char>(rdata[pos++]);
        if (len == 0) break;
        if (len > kMaxLabel) return Failure{"MX record with a compressed or invalid name"};
        if (rdata.size() - pos < len) return Failure{"MX record with a truncated name"};
        std::string_view label = rdata.substr(pos, len);
        pos += len;
        for (char c : label)
            if (!hostname_byte(c)) return Failure{"MX target with a byte not allowed in a host name: " + quoted(label)};
        if (!name.empty()) name += '.';
        name += to_lower(label);
        if (name.size() > kMaxName) return Failure{"MX target longer than 253 bytes"};
    }
    if (pos != rdata.size()) return Failure{"MX record with bytes after the name"};
    if (!name.empty()) {
        if (auto ok = check_domain_name(name); !ok) return Failure{"MX target refused: " + ok.error()};
    }
    rec.target = std::move(name);
    return rec;
}

bool is_null_mx(const std::vector<MxRecord>& records) {
    return records.size() == 1 && records[0].preference == 0 && records[0].target.empty();
}

MxRandom default_mx_random() {
    auto engine = std::make_shared<std::mt19937>(std::random_device{}());
    return
        [engine](std::uint32_t bound) { return std::uniform_int_distribution<std::uint32_t>(0, bound - 1)(*engine); };
}

std::vector<MxRecord> select_mx_records(std::vector<MxRecord> records, std::size_t max_hosts, const MxRandom& random,
                                        std::string& skipped) {
    std::vector<MxRecord> out;
    std::unordered_set<std::string> seen;
    std::stable_sort(records.begin(), records.end(),
                     [](const MxRecord& a, const MxRecord& b) { return a.preference < b.preference; });
    for (auto& r : records) {
        if (r.target.empty()) {
            // "." beside other records, or with a preference other than 0: no host there.
            add_mx_note(skipped, "MX " + std::to_string(r.preference) + " \".\" is no host");
            continue;
        }
        // The first one has the best preference. A set, not a scan: an RRset of a 64 KiB
        // answer holds thousands of records.
        if (seen.insert(r.target).second) out.push_back(std::move(r));
    }
    sort_and_shuffle(out, random);
    if (out.size() > max_hosts) out.resize(max_hosts);
    return out;
}

MxResult to_result(const MxAnswer& answer, std::size_t max_addresses) {
    MxResult r;
    r.status = answer.status;
    r.why = answer.why;
    if (r.why.size() > kMaxMxNotes) r.why.replace(kMaxMxNotes, std::string::npos, "...");
    r.partial = answer.partial;
    r.mx_secure = answer.mx_secure;
    r.implicit_mx = answer.implicit_mx;
    r.literal = answer.literal;
    r.ttl = answer.ttl;
    for (const auto& h : answer.hosts) {
        for (const auto& a : h.addresses) {
            if (r.destinations.size() >= max_addresses) return r;
            bool dup = false;
            for (const auto& d : r.destinations) dup = dup || d.address == a.address;
            if (dup) continue;
            r.destinations.push_back(MxDestination{h.name, h.preference, a.address, answer.mx_secure, a.secure});
        }
    }
    return r;
}

}  // namespace xproxy::xproxyd
