// egress.cpp: egress and pool specifications, and the weighted choice; see egress.hpp.
#include "egress.hpp"

#include <sstream>

#include <xproxy/base/invariant.hpp>
#include <xproxy/base/text.hpp>

namespace xproxy::xproxyd {

namespace {

// A HELO name: a DNS name (letters, digits, '-', '.') or an address literal.
bool valid_helo(const std::string& h) {
    if (h.empty() || h.size() > 255) return false;
    if (h.front() == '[') return IpAddress::parse_mta(h).has_value();
    for (char c : h)
        if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') && c != '-' && c != '.')
            return false;
    return h.front() != '.' && h.front() != '-';
}

}  // namespace

Expected<Egress> parse_egress(const std::string& text) {
    std::istringstream in(text);
    Egress e;
    in >> e.name;
    if (e.name.empty() || e.name.find('=') != std::string::npos)
        return Failure{"egress '" + text + "': must start with a name"};
    bool have_address = false;
    std::string word;
    while (in >> word) {
        const auto eq = word.find('=');
        const std::string key = word.substr(0, eq), value = eq == std::string::npos ? "" : word.substr(eq + 1);
        if (key == "address") {
            auto a = IpAddress::parse(value);
            if (!a) return Failure{"egress " + e.name + ": bad address '" + value + "'"};
            e.address = a->normalized();
            have_address = true;
        } else if (key == "helo") {
            if (!valid_helo(value)) return Failure{"egress " + e.name + ": bad helo '" + value + "'"};
            e.helo = value;
        } else {
            return Failure{"egress " + e.name + ": unknown setting '" + key + "'"};
        }
    }
    if (!have_address) return Failure{"egress " + e.name + ": no address="};
    if (e.helo.empty()) return Failure{"egress " + e.name + ": no helo= (the name its address's PTR gives)"};
    return e;
}

Expected<EgressPool> parse_pool(const std::string& text, const std::vector<Egress>& egresses) {
    std::istringstream in(text);
    EgressPool p;
    std::string list, extra;
    in >> p.risk >> list >> extra;
    if (p.risk.empty() || list.empty() || !extra.empty())
        return Failure{"pool '" + text + "': want \"CLASS EGRESS[:WEIGHT][,EGRESS[:WEIGHT]...]\""};
    std::size_t start = 0;
    for (;;) {
        const auto comma = list.find(',', start);
        const std::string item = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        const auto colon = item.find(':');
        const std::string name = item.substr(0, colon);
        unsigned weight = 1;
        if (colon != std::string::npos) {
            auto w = parse_decimal<unsigned>(std::string_view(item).substr(colon + 1), 1000000);
            if (!w) return Failure{"pool " + p.risk + ": bad weight in '" + item + "' (0 to 1000000)"};
            weight = *w;
        }
        std::size_t idx = egresses.size();
        for (std::size_t i = 0; i < egresses.size(); ++i)
            if (egresses[i].name == name) idx = i;
        if (idx == egresses.size()) return Failure{"pool " + p.risk + ": no egress named '" + name + "'"};
        for (const auto& m : p.members)
            if (m.egress == idx) return Failure{"pool " + p.risk + ": egress " + name + " listed twice"};
        p.members.push_back({idx, weight});
        p.total_weight += weight;
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    if (p.total_weight == 0) return Failure{"pool " + p.risk + ": every egress has weight 0"};
    return p;
}

std::size_t choose_egress(const EgressPool& pool, std::uint64_t draw) {
    XPROXY_INVARIANT(pool.total_weight > 0);
    std::uint64_t left = draw % pool.total_weight;
    for (const auto& m : pool.members) {
        if (left < m.weight) return m.egress;
        left -= m.weight;
    }
    XPROXY_UNREACHABLE();
}

}  // namespace xproxy::xproxyd
