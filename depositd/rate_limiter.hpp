// rate_limiter.hpp: deposits per identity per minute (--rate-limit; doc/deposit.md,
// "Limits"), a token bucket per identity: `per_minute` deposits at once, refilled at
// per_minute a minute.
//
// Promises: memory bounded by max_identities buckets; a bucket that has refilled
// completely is the same as none and is dropped to make room; when every one of
// max_identities buckets is in use, a new identity is refused (closed: only identities
// that proved themselves reach this table). The time is given (no clock); not
// thread-safe (the daemon serves on one thread). per_minute 0: everything passes.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>

namespace xproxy::depositd {

class RateLimiter {
public:
    using Clock = std::chrono::steady_clock;

    RateLimiter(unsigned per_minute, std::size_t max_identities) : rate_(per_minute), max_(max_identities) {}

    // 0 when `identity` may deposit now (one token taken), else the seconds to wait
    // (Retry-After, at least 1).
    unsigned take(std::string_view identity, Clock::time_point now);

    std::size_t size() const { return buckets_.size(); }

private:
    struct Bucket {
        double tokens = 0;
        Clock::time_point at{};
    };
    double refilled(const Bucket& b, Clock::time_point now) const;
    void make_room(Clock::time_point now);

    unsigned rate_;
    std::size_t max_;
    std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace xproxy::depositd
