// egress.hpp: where outbound mail leaves from. An egress is a named source address with
// the HELO name that goes with it (its PTR should name it); a pool is the set of egresses
// one risk class leaves from, each with a weight (0: configured but not used, e.g. while
// the address warms up). A transaction of the outbound mode takes one egress from the
// pool of its class, binds its connections to that address and says EHLO with its name;
// an address that cannot be bound fails the transaction with a 4xx, never a silent
// fallback to another address (egress_for(), downstream.cpp).
//
//   --egress "NAME address=ADDR helo=NAME"
//   --pool   "CLASS EGRESS[:WEIGHT][,EGRESS[:WEIGHT]...]"   (weight 1 by default)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <xproxy/base/ip.hpp>
#include <xproxy/base/result.hpp>

namespace xproxy::xproxyd {

struct Egress {
    std::string name;
    IpAddress address;
    std::string helo;
};

struct EgressPool {
    std::string risk;  // the class it serves
    struct Member {
        std::size_t egress;  // index into the egress list
        unsigned weight;
    };
    std::vector<Member> members;
    std::uint64_t total_weight = 0;
};

Expected<Egress> parse_egress(const std::string& text);
// Egress names are looked up in `egresses`; the pool must have a member of weight > 0.
Expected<EgressPool> parse_pool(const std::string& text, const std::vector<Egress>& egresses);

// The member whose weight range holds `draw` (taken modulo the total weight): with a
// uniform draw, each egress is chosen in proportion to its weight; weight 0 never.
std::size_t choose_egress(const EgressPool& pool, std::uint64_t draw);

}  // namespace xproxy::xproxyd
