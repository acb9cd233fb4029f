// rate_limiter.cpp: token buckets per identity; see rate_limiter.hpp.
#include "rate_limiter.hpp"

#include <algorithm>
#include <cmath>

namespace xproxy::depositd {

double RateLimiter::refilled(const Bucket& b, Clock::time_point now) const {
    const double elapsed = std::chrono::duration<double>(now - b.at).count();
    return std::min(static_cast<double>(rate_), b.tokens + std::max(0.0, elapsed) * rate_ / 60.0);
}

void RateLimiter::make_room(Clock::time_point now) {
    for (auto it = buckets_.begin(); it != buckets_.end();)
        it = refilled(it->second, now) >= rate_ ? buckets_.erase(it) : std::next(it);
}

unsigned RateLimiter::take(std::string_view identity, Clock::time_point now) {
    if (rate_ == 0) return 0;
    auto it = buckets_.find(std::string(identity));
    if (it == buckets_.end()) {
        if (buckets_.size() >= max_) make_room(now);
        if (buckets_.size() >= max_) return 60;
        it = buckets_.emplace(std::string(identity), Bucket{static_cast<double>(rate_), now}).first;
    }
    Bucket& b = it->second;
    b.tokens = refilled(b, now);
    b.at = now;
    if (b.tokens >= 1.0) {
        b.tokens -= 1.0;
        return 0;
    }
    const double wait = (1.0 - b.tokens) * 60.0 / rate_;
    return static_cast<unsigned>(std::max(1.0, std::ceil(wait)));
}

}  // namespace xproxy::depositd
