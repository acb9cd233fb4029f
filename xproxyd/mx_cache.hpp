// mx_cache.hpp: the answers of recent MX lookups, by domain, for the outbound mode.
//
// An entry lives as long as its DNS TTL allows (the smallest TTL of the answers used,
// capped by the caller), and at most `capacity` entries are kept: the least recently
// used one goes first. A lookup of an expired entry removes it and counts as a miss.
// Hits and misses are counted for the hit rate. The clock is injectable for tests. Not
// thread-safe: one cache per MxLookup, used from its executor.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>

#include "mx_records.hpp"

namespace xproxy::xproxyd {

class MxCache {
public:
    using TimePoint = std::chrono::steady_clock::time_point;
    using Clock = std::function<TimePoint()>;

    explicit MxCache(std::size_t capacity, Clock clock = {});

    // The answer stored for `domain` (already lower case) if it has not expired, its
    // `ttl` set to the seconds left; nullopt otherwise.
    std::optional<MxAnswer> get(const std::string& domain);
    // Stores (or replaces) the answer for `ttl` seconds; ttl 0 or capacity 0 stores nothing.
    void put(const std::string& domain, const MxAnswer& answer, std::uint32_t ttl);

    std::size_t size() const { return index_.size(); }
    std::size_t capacity() const { return capacity_; }
    std::uint64_t hits() const { return hits_; }
    std::uint64_t misses() const { return misses_; }

private:
    struct Entry {
        std::string domain;
        MxAnswer answer;
        TimePoint expires;
    };
    using List = std::list<Entry>;  // most recently used first

    std::size_t capacity_;
    Clock clock_;
    List lru_;
    std::unordered_map<std::string, List::iterator> index_;
    std::uint64_t hits_ = 0;
    std::uint64_t misses_ = 0;
};

}  // namespace xproxy::xproxyd
