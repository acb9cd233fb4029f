// idempotency.cpp: the Idempotency-Key table; see idempotency.hpp.
#include "idempotency.hpp"

#include "expiry_order.hpp"

namespace xproxy::depositd {

bool IdempotencyCache::valid_key(std::string_view key) {
    if (key.empty() || key.size() > 255) return false;
    for (char c : key)
        if (c < 0x21 || c > 0x7E) return false;
    return true;
}

std::string IdempotencyCache::key_of(std::string_view identity, std::string_view key) {
    std::string k;
    k.reserve(identity.size() + 1 + key.size());
    k.append(identity).push_back('\0');  // neither half holds a NUL
    k.append(key);
    return k;
}

void IdempotencyCache::expire(Clock::time_point now) { drop_expired(entries_, done_, now); }

IdempotencyCache::Begin IdempotencyCache::begin(std::string_view identity, std::string_view key,
                                                std::string_view sha256, Clock::time_point now) {
    expire(now);
    std::string k = key_of(identity, key);
    if (auto it = entries_.find(k); it != entries_.end()) {
        const Entry& e = it->second;
        if (!e.done) return {Verdict::in_progress, {}, {}};
        if (e.sha256 != sha256) return {Verdict::reused, {}, {}};
        return {Verdict::replay, e.receipt_id, e.queue_id};
    }
    if (entries_.size() >= max_) {
        if (done_.empty()) return {Verdict::full, {}, {}};
        entries_.erase(done_.front());
        done_.pop_front();
    }
    Entry e;
    e.sha256 = std::string(sha256);
    entries_.emplace(std::move(k), std::move(e));
    return {Verdict::fresh, {}, {}};
}

void IdempotencyCache::complete(std::string_view identity, std::string_view key, std::string receipt_id,
                                std::string queue_id, Clock::time_point now) {
    auto it = entries_.find(key_of(identity, key));
    if (it == entries_.end() || it->second.done) return;
    Entry& e = it->second;
    e.done = true;
    e.receipt_id = std::move(receipt_id);
    e.queue_id = std::move(queue_id);
    e.expires = now + ttl_;
    done_.push_back(it->first);
}

void IdempotencyCache::abandon(std::string_view identity, std::string_view key) {
    auto it = entries_.find(key_of(identity, key));
    if (it == entries_.end() || it->second.done) return;
    entries_.erase(it);
}

}  // namespace xproxy::depositd
