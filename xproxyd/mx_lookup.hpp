// mx_lookup.hpp: where mail for a domain goes (RFC 5321 5.1, RFC 7505), asked of the DNS
// with libunbound without blocking the io_context; the destination lookup of the
// outbound mode (not yet called by the session code).
//
// lookup(domain) answers, for a domain or an address literal, the ordered list of
// (host, preference, address) to try, or a failure that says whether it is permanent:
//   address literal "[192.0.2.1]", "[IPv6:2001:db8::1]"  one destination, no DNS
//   invalid name (check_domain_name)                        invalid_domain, no query
//   MX query NXDOMAIN                                       no_such_domain
//   MX query SERVFAIL, other rcode, timeout, DNSSEC bogus   temporary
//   MX RRset "0 ." alone (RFC 7505)                         null_mx
//   no MX (NODATA)                                          the domain itself, preference 0
//   MX records                                              by preference, equal ones shuffled,
//                                                           at most max_mx_hosts resolved
// Each host is resolved to A and/or AAAA (`families`, in that order within the host); a
// host that does not resolve is skipped. An AAAA ::ffff:a.b.c.d is the IPv4 a.b.c.d (and
// dropped for families=ipv6), an AAAA ::a.b.c.d is dropped, a refused destination is
// dropped and said; when every address found is refused the result is `no_address`. When no host has an address the result is
// `temporary` if any address query failed temporarily, else `no_address` (permanent: the
// DNS said, with authority, that there is nothing to connect to; RFC 5321 5.1 calls it an
// error without saying which kind, and Postfix bounces it too). At most max_addresses
// destinations, an address listed once. Each answer carries libunbound's DNSSEC `secure`
// flag (the MX answer's, and each address's); DNSSEC needs a trust anchor.
//
// Answers are cached by domain for the smallest TTL of the answers used, a host's
// NXDOMAIN or NODATA included (capped by max_cache_ttl); temporary failures and answers
// in which a host failed temporarily are not. A cached answer's equal preferences are
// shuffled again on every hit. What an answer keeps is bounded while it is decoded
// (max_addresses_per_host, max_addresses), so is every cache entry.
//
// Asynchrony: libunbound resolves in its own thread (ub_ctx_async); its result pipe
// (ub_fd) is watched by an asio::posix::stream_descriptor on a strand of the given
// executor and ub_process() runs there when it is readable, completing each query's
// awaitable. Every lookup's body runs on that strand too (lookup() spawns it there and
// resumes the caller on its own executor), so one MxLookup may be shared by coroutines
// on any executor of a multi-threaded io_context. All queries of a host list run at once;
// concurrent lookups of one domain share one set of queries. Destroy the MxLookup before
// its io_context; a lookup in flight keeps the resolver alive. Nothing is logged except
// at debug level and once if libunbound's pipe breaks (then every query fails as
// temporary); failures come back as values whose text escapes every byte from the DNS
// and is at most kMaxMxNotes bytes (plus the domain).
#pragma once

#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <xproxy/base/result.hpp>

#include "mx_cache.hpp"
#include "mx_records.hpp"

namespace xproxy::xproxyd {

struct MxLookupConfig {
    // Forward every query to these servers ("192.0.2.53", "127.0.0.1@5301", "::1@53").
    // Empty: the name servers of resolv_conf.
    std::vector<std::string> forwarders;
    std::string resolv_conf = "/etc/resolv.conf";
    // DNSSEC trust anchor (DS or DNSKEY records, e.g. /usr/share/dns/root.key). Empty: no
    // validation, and no answer is ever secure.
    std::string trust_anchor_file;
    // More libunbound options, ub_ctx_set_option(name, value): e.g. {"local-zone:",
    // "test. transparent"} to reach a test zone under the special-use name "test.".
    std::vector<std::pair<std::string, std::string>> unbound_options;
    std::chrono::milliseconds query_timeout{10000};
    // IPv4 first by default: a host without an IPv6 route costs a failed connect per
    // IPv6 destination, one without IPv4 only one more address to try.
    MxFamilies families = MxFamilies::ipv4_first;
    std::size_t max_mx_hosts = 10;
    std::size_t max_addresses = 20;  // kept per domain (and so per cache entry), not only returned
    // Kept per host, both families together: a host with thousands of A records cannot
    // crowd out the other hosts, nor fill the memory.
    std::size_t max_addresses_per_host = 4;
    // Never connected to (A/AAAA answers and address literals); a refused address is said
    // in `why`. Closed by default: see default_refused_destinations() (loopback, private,
    // link-local, ...). `localhost` (libunbound's built-in local zone) is refused with it.
    CidrSet refused_destinations = default_refused_destinations();
    // Lookups asking the DNS at once; one more fails at once as temporary (no queue).
    // Lookups of a domain already being asked wait for that answer and do not count.
    std::size_t max_lookups_in_flight = 100;
    std::size_t cache_entries = 10000;
    std::chrono::seconds max_cache_ttl{3600};  // negative: refused by create()
};

class MxLookup {
public:
    // Fails (with the reason) on a bad forwarder, trust anchor, option or limit.
    // `random` and `clock` default to a seeded engine and the steady clock.
    static Expected<std::unique_ptr<MxLookup>> create(const boost::asio::any_io_executor& executor,
                                                      MxLookupConfig config, MxRandom random = {},
                                                      MxCache::Clock clock = {});
    ~MxLookup();
    MxLookup(const MxLookup&) = delete;
    MxLookup& operator=(const MxLookup&) = delete;

    // `domain` as it appears after the '@' of a recipient (an A-label domain or an
    // address literal). Never throws for anything the DNS answers.
    boost::asio::awaitable<MxResult> lookup(std::string domain);

    std::uint64_t cache_hits() const;
    std::uint64_t cache_misses() const;

    class Impl;

private:
    explicit MxLookup(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
    std::shared_ptr<Impl> impl_;
};

}  // namespace xproxy::xproxyd
