// xproxyd_mx_lookup_cli: drives xproxyd's MxLookup from the command line, for the end-to-end
// test against NSD (tests/e2e/test_xproxyd_mx_lookup.py). Not installed.
//
//   xproxyd_mx_lookup_cli [--forward ADDR@PORT]... [--option NAME VALUE]... [--trust-anchor FILE]
//       [--families ipv4|ipv6|ipv4-first|ipv6-first] [--timeout-ms N] [--max-hosts N]
//       [--max-addresses N] [--per-host N] [--in-flight N] [--refuse LIST|none] [--max-cache-ttl S]
//       [--seed N] [--rounds N] [--pause-ms N] DOMAIN...
//
// Each round looks up every DOMAIN at once (one coroutine each, one io_context), then
// prints, in argument order:
//   result DOMAIN status=S mx_secure=0|1 implicit=0|1 literal=0|1 cached=0|1 partial=0|1 ttl=N destinations=K
//       why="..." (on one line)
//   dest DOMAIN I host=H pref=P addr=A mx_secure=0|1 addr_secure=0|1
// and after the last round "stats hits=H misses=M". Exit status 0, or 2 on a usage or
// configuration error.
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <xproxy/base/escape.hpp>
#include <xproxy/base/text.hpp>

#include "mx_lookup.hpp"

using namespace xproxy;
using namespace xproxy::xproxyd;
namespace asio = boost::asio;

namespace {

int usage(const std::string& why) {
    std::fprintf(stderr, "xproxyd_mx_lookup_cli: %s\n", why.c_str());
    return 2;
}

void print(const std::string& domain, const MxResult& r) {
    std::printf(
        "result %s status=%s mx_secure=%d implicit=%d literal=%d cached=%d partial=%d ttl=%u destinations=%zu "
        "why=\"%s\"\n",
        domain.c_str(), std::string(to_string(r.status)).c_str(), r.mx_secure ? 1 : 0, r.implicit_mx ? 1 : 0,
        r.literal ? 1 : 0, r.from_cache ? 1 : 0, r.partial ? 1 : 0, r.ttl, r.destinations.size(),
        escape_value(r.why, 0).c_str());
    for (std::size_t i = 0; i < r.destinations.size(); ++i) {
        const auto& d = r.destinations[i];
        std::printf("dest %s %zu host=%s pref=%u addr=%s mx_secure=%d addr_secure=%d\n", domain.c_str(), i,
                    d.host.c_str(), d.preference, d.address.to_string().c_str(), d.mx_secure ? 1 : 0,
                    d.address_secure ? 1 : 0);
    }
}

int run(int argc, char** argv) {
    MxLookupConfig cfg;
    MxRandom random;
    unsigned rounds = 1;
    unsigned pause_ms = 0;
    std::vector<std::string> domains;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
        auto number = [&](unsigned& out) {
            auto v = parse_decimal<unsigned>(next());
            if (v) out = *v;
            return v.has_value();
        };
        unsigned n = 0;
        if (a == "--forward") {
            cfg.forwarders.push_back(next());
        } else if (a == "--option") {
            std::string name = next();
            cfg.unbound_options.emplace_back(name, next());
        } else if (a == "--trust-anchor") {
            cfg.trust_anchor_file = next();
        } else if (a == "--families") {
            auto f = parse_mx_families(next());
            if (!f) return usage("bad --families");
            cfg.families = *f;
        } else if (a == "--timeout-ms" && number(n)) {
            cfg.query_timeout = std::chrono::milliseconds(n);
        } else if (a == "--max-hosts" && number(n)) {
            cfg.max_mx_hosts = n;
        } else if (a == "--max-addresses" && number(n)) {
            cfg.max_addresses = n;
        } else if (a == "--per-host" && number(n)) {
            cfg.max_addresses_per_host = n;
        } else if (a == "--in-flight" && number(n)) {
            cfg.max_lookups_in_flight = n;
        } else if (a == "--refuse") {
            std::string list = next();
            auto set = list == "none" ? Expected<CidrSet>(CidrSet{}) : CidrSet::parse(list);
            if (!set) return usage("bad --refuse: " + set.error());
            cfg.refused_destinations = *set;
        } else if (a == "--max-cache-ttl" && number(n)) {
            cfg.max_cache_ttl = std::chrono::seconds(n);
        } else if (a == "--seed" && number(n)) {
            auto engine = std::make_shared<std::mt19937>(n);
            random = [engine](std::uint32_t bound) {
                return std::uniform_int_distribution<std::uint32_t>(0, bound - 1)(*engine);
            };
        } else if (a == "--rounds" && number(n)) {
            rounds = n;
        } else if (a == "--pause-ms" && number(n)) {
            pause_ms = n;
        } else if (!a.empty() && a[0] == '-') {
            return usage("bad option or value: " + escape(a));
        } else {
            domains.push_back(a);
        }
    }
    if (domains.empty()) return usage("no domain given");

    asio::io_context io;
    auto mx = MxLookup::create(io.get_executor(), cfg, random);
    if (!mx) return usage(mx.error());
    for (unsigned round = 0; round < rounds; ++round) {
        if (round > 0 && pause_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
        std::vector<MxResult> results(domains.size());
        for (std::size_t k = 0; k < domains.size(); ++k)
            asio::co_spawn(
                io,
                [&, k]() -> asio::awaitable<void> {
                    MxResult r = co_await (*mx)->lookup(domains[k]);
                    results[k] = std::move(r);
                },
                asio::detached);
        io.restart();
        io.run();
        std::printf("round %u\n", round);
        for (std::size_t k = 0; k < domains.size(); ++k) print(domains[k], results[k]);
    }
    std::printf("stats hits=%llu misses=%llu\n", static_cast<unsigned long long>((*mx)->cache_hits()),
                static_cast<unsigned long long>((*mx)->cache_misses()));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "xproxyd_mx_lookup_cli: %s\n", e.what());
        return 1;
    }
}
