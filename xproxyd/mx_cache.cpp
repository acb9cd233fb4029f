// mx_cache.cpp: see mx_cache.hpp.
#include "mx_cache.hpp"

#include <utility>

namespace xproxy::xproxyd {

MxCache::MxCache(std::size_t capacity, Clock clock) : capacity_(capacity), clock_(std::move(clock)) {
    if (!clock_) clock_ = [] { return std::chrono::steady_clock::now(); };
}

std::optional<MxAnswer> MxCache::get(const std::string& domain) {
    auto it = index_.find(domain);
    if (it == index_.end()) {
        ++misses_;
        return std::nullopt;
    }
    TimePoint now = clock_();
    if (it->second->expires <= now) {
        lru_.erase(it->second);
        index_.erase(it);
        ++misses_;
        return std::nullopt;
    }
    lru_.splice(lru_.begin(), lru_, it->second);  // now the most recently used
    ++hits_;
    MxAnswer out = it->second->answer;
    auto left = std::chrono::ceil<std::chrono::seconds>(it->second->expires - now).count();
    out.ttl = static_cast<std::uint32_t>(left);
    return out;
}

void MxCache::put(const std::string& domain, const MxAnswer& answer, std::uint32_t ttl) {
    if (ttl == 0 || capacity_ == 0) return;
    TimePoint expires = clock_() + std::chrono::seconds(ttl);
    if (auto it = index_.find(domain); it != index_.end()) {
        it->second->answer = answer;
        it->second->expires = expires;
        lru_.splice(lru_.begin(), lru_, it->second);
        return;
    }
    if (index_.size() >= capacity_) {  // the least recently used entry makes room
        index_.erase(lru_.back().domain);
        lru_.pop_back();
    }
    lru_.push_front(Entry{domain, answer, expires});
    index_.emplace(domain, lru_.begin());
}

}  // namespace xproxy::xproxyd
