// mx_cache.hpp: the answers of recent MX lookups, by domain, for the outbound mode.
//
// An entry lives as long as its DNS TTL allows (the smallest TTL of the answers used,
// capped by the caller), and at most `capacity` entries are kept: the least recently
// used one goes first. A lookup of an expired entry removes it and counts as a miss.
// Hits and misses are counted for the hit rate (readable from any thread). The clock is
// injectable for tests. Otherwise not thread-safe: one cache per MxLookup, used on its
// strand. An entry's size is bounded by the lookup's limits (max_mx_hosts names,
// max_addresses addresses, a `why` of about 1 KB), so the cache holds at most about
// capacity x 6 KB with the defaults.
#pragma once

#include <atomic>
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
    std::uint64_t hits() const { return hits_.load(std::memory_order_relaxed); }
    std::uint64_t misses() const { return misses_.load(std::memory_order_relaxed); }

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
    std::atomic<std::uint64_t> hits_{0};  // read from any thread
    std::atomic<std::uint64_t> misses_{0};
};

}  // namespace xproxy::xproxyd
