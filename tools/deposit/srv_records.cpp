// srv_records.cpp: see srv_records.hpp.
#include "srv_records.hpp"

#include <algorithm>
#include <memory>
#include <random>

#include <xproxy/base/escape.hpp>
#include <xproxy/base/text.hpp>

namespace xproxy::deposit {

namespace {

constexpr std::size_t kMaxName = 253;
constexpr std::size_t kMaxLabel = 63;

bool name_byte(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || ascii_digit(c) || c == '-' || c == '_';
}

std::uint16_t u16(std::string_view b, std::size_t at) {
    return static_cast<std::uint16_t>((static_cast<unsigned char>(b[at]) << 8) | static_cast<unsigned char>(b[at + 1]));
}

}  // namespace

Expected<SrvRecord> decode_srv_rdata(std::string_view rdata) {
    // 00 0a  priority 10 | 00 05  weight 5 | 20 fb  port 8443
    // 02 'm' 'x' 07 'e' 'x' 'a' 'm' 'p' 'l' 'e' 00   labels up to the root label
    if (rdata.size() < 7) return Failure{"SRV record of " + std::to_string(rdata.size()) + " bytes"};
    SrvRecord rec;
    rec.priority = u16(rdata, 0);
    rec.weight = u16(rdata, 2);
    rec.port = u16(rdata, 4);
    std::size_t pos = 6;
    std::string name;
    while (true) {
        if (pos >= rdata.size()) return Failure{"SRV record with a truncated name"};
        auto len = static_cast<unsigned char>(rdata[pos++]);
        if (len == 0) break;
        if (len > kMaxLabel) return Failure{"SRV record with a compressed or invalid name"};
        if (rdata.size() - pos < len) return Failure{"SRV record with a truncated name"};
        std::string_view label = rdata.substr(pos, len);
        pos += len;
        for (char c : label)
            if (!name_byte(c)) return Failure{"SRV target with a byte not allowed in a host name: " + escape(label)};
        if (!name.empty()) name += '.';
        name += to_lower(label);
        if (name.size() > kMaxName) return Failure{"SRV target longer than 253 bytes"};
    }
    if (pos != rdata.size()) return Failure{"SRV record with bytes after the name"};
    if (!name.empty()) {
        if (auto ok = check_domain_name(name); !ok) return Failure{"SRV target refused: " + ok.error()};
    }
    rec.target = std::move(name);
    return rec;
}

Expected<void> check_domain_name(std::string_view name) {
    if (name.empty()) return Failure{"empty domain name"};
    if (name.size() > kMaxName) return Failure{"domain name longer than 253 bytes"};
    std::size_t start = 0;
    while (true) {
        const std::size_t dot = name.find('.', start);
        std::string_view label = name.substr(start, dot == std::string_view::npos ? name.npos : dot - start);
        if (label.empty()) return Failure{"empty label in domain name " + escape(name)};
        if (label.size() > kMaxLabel) return Failure{"label longer than 63 bytes in domain name " + escape(name)};
        for (char c : label)
            if (!name_byte(c)) return Failure{"domain name with a byte not allowed in a host name: " + escape(name)};
        if (label.front() == '-' || label.back() == '-')
            return Failure{"label starting or ending with '-' in domain name " + escape(name)};
        if (dot == std::string_view::npos) break;
        start = dot + 1;
    }
    return {};
}

bool service_not_offered(const std::vector<SrvRecord>& records) {
    return records.size() == 1 && records[0].target.empty();
}

bool in_domain(std::string_view name, std::string_view domain) {
    if (domain.empty() || name.size() < domain.size()) return false;
    if (name.size() == domain.size()) return iequals(name, domain);
    return name[name.size() - domain.size() - 1] == '.' && iequals(name.substr(name.size() - domain.size()), domain);
}

SrvRandom default_srv_random() {
    auto engine = std::make_shared<std::mt19937>(std::random_device{}());
    return
        [engine](std::uint32_t bound) { return std::uniform_int_distribution<std::uint32_t>(0, bound - 1)(*engine); };
}

std::vector<SrvRecord> order_srv_records(std::vector<SrvRecord> records, const SrvRandom& random) {
    records.erase(std::remove_if(records.begin(), records.end(), [](const SrvRecord& r) { return r.target.empty(); }),
                  records.end());
    // Weight-0 records first within a priority (RFC 2782), otherwise as received.
    std::stable_sort(records.begin(), records.end(), [](const SrvRecord& a, const SrvRecord& b) {
        if (a.priority != b.priority) return a.priority < b.priority;
        return (a.weight == 0) && (b.weight != 0);
    });
    std::vector<SrvRecord> out;
    out.reserve(records.size());
    for (std::size_t begin = 0; begin < records.size();) {
        std::size_t end = begin + 1;
        while (end < records.size() && records[end].priority == records[begin].priority) ++end;
        std::vector<SrvRecord> left(records.begin() + static_cast<std::ptrdiff_t>(begin),
                                    records.begin() + static_cast<std::ptrdiff_t>(end));
        while (!left.empty()) {
            std::uint32_t sum = 0;
            for (const auto& r : left) sum += r.weight;  // at most 65535 * 65535 records' worth: fits
            std::uint32_t pick = random(sum + 1);
            if (pick > sum) pick = sum;  // a source out of range cannot break the order
            std::size_t chosen = left.size() - 1;
            std::uint32_t running = 0;
            for (std::size_t i = 0; i < left.size(); ++i) {
                running += left[i].weight;
                if (running >= pick) {
                    chosen = i;
                    break;
                }
            }
            out.push_back(std::move(left[chosen]));
            left.erase(left.begin() + static_cast<std::ptrdiff_t>(chosen));
        }
        begin = end;
    }
    return out;
}

}  // namespace xproxy::deposit
