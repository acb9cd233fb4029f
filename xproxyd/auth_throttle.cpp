// auth_throttle.cpp: see auth_throttle.hpp.
#include "auth_throttle.hpp"

#include <algorithm>

#include <xproxy/base/text.hpp>

namespace xproxy::xproxyd {

std::string AuthThrottle::address_key(const IpAddress& client) {
    IpAddress a = client.normalized();
    // A family byte, then the /32 (IPv4) or the /64 (IPv6): the two never collide.
    std::string key(1, a.is_v4() ? '4' : '6');
    key.append(reinterpret_cast<const char*>(a.data()), a.is_v4() ? 4 : 8);
    return key;
}

std::string AuthThrottle::user_key(std::string_view user) { return to_lower(user.substr(0, kMaxUserKey)); }

AuthThrottle::AuthThrottle(ThrottleLimits l)
    : limits_(l), addresses_(limits_.address_failures, limits_), users_(limits_.user_failures, limits_) {}

std::chrono::milliseconds AuthThrottle::delay_for(unsigned n) const {
    if (n == 0 || limits_.delay.count() <= 0 || limits_.max_delay.count() <= 0) return std::chrono::milliseconds{0};
    // n is at most a threshold (an unsigned) and max_delay caps it: compare before multiplying.
    if (static_cast<unsigned long long>(n) >= static_cast<unsigned long long>(limits_.max_delay / limits_.delay) + 1)
        return limits_.max_delay;
    return std::min(limits_.delay * n, limits_.max_delay);
}

ThrottleCheck AuthThrottle::check(const IpAddress& client, std::string_view user, Clock::time_point now) {
    std::string akey = address_key(client);
    std::string ukey = user.empty() ? std::string() : user_key(user);
    std::lock_guard lock(mutex_);
    if (unsigned n = addresses_.locked_failures(akey, now)) return {true, delay_for(n), "address"};
    if (unsigned n = ukey.empty() ? 0 : users_.locked_failures(ukey, now)) return {true, delay_for(n), "user"};
    // Attempts in flight count as failures until their verdict.
    auto busy = [&](Table& t, const std::map<std::string, unsigned, std::less<>>& pending, const std::string& key,
                    unsigned& counted) {
        if (t.threshold() == 0 || key.empty()) return false;
        counted = t.counted(key, now);
        const auto p = pending.find(key);
        return counted + (p == pending.end() ? 0u : p->second) >= t.threshold();
    };
    unsigned counted = 0;
    ThrottleCheck c;
    const bool by_address = busy(addresses_, pending_addresses_, akey, counted);
    if (by_address || busy(users_, pending_users_, ukey, counted)) {
        c.busy = true;
        c.why = by_address ? "address" : "user";
        return c;
    }
    c.attempt.owner_ = this;
    if (addresses_.threshold() > 0) {
        ++pending_addresses_[akey];
        c.attempt.akey_ = std::move(akey);
    }
    if (users_.threshold() > 0 && !ukey.empty()) {
        ++pending_users_[ukey];
        c.attempt.ukey_ = std::move(ukey);
    }
    return c;
}

void AuthThrottle::release(const ThrottleAttempt& a) {
    std::lock_guard lock(mutex_);
    auto drop = [](std::map<std::string, unsigned, std::less<>>& pending, const std::string& key) {
        if (key.empty()) return;
        auto it = pending.find(key);
        if (it != pending.end() && --it->second == 0) pending.erase(it);
    };
    drop(pending_addresses_, a.akey_);
    drop(pending_users_, a.ukey_);
}

void ThrottleAttempt::release() {
    if (auto* t = std::exchange(owner_, nullptr)) t->release(*this);
}

ThrottleAttempt& ThrottleAttempt::operator=(ThrottleAttempt&& o) noexcept {
    if (this != &o) {
        release();
        owner_ = std::exchange(o.owner_, nullptr);
        akey_ = std::move(o.akey_);
        ukey_ = std::move(o.ukey_);
    }
    return *this;
}

std::chrono::milliseconds AuthThrottle::failed(const IpAddress& client, std::string_view user, Clock::time_point now) {
    std::string akey = address_key(client);
    std::string ukey = user_key(user);
    std::lock_guard lock(mutex_);
    // No user name (credentials that could not be read): the address alone pays.
    const unsigned by_address = addresses_.add_failure(akey, now);
    unsigned n = std::max(by_address, user.empty() ? 0u : users_.add_failure(ukey, now));
    return n == 0 ? std::chrono::milliseconds{0} : delay_for(n - 1);
}

std::size_t AuthThrottle::address_entries() const {
    std::lock_guard lock(mutex_);
    return addresses_.size();
}

std::size_t AuthThrottle::user_entries() const {
    std::lock_guard lock(mutex_);
    return users_.size();
}

// ---- one table ----

void AuthThrottle::Table::forget_old(Entry& e, Clock::time_point now) const {
    auto young = std::find_if(e.failures.begin(), e.failures.end(),
                              [&](Clock::time_point t) { return now - t < limits_.window; });
    e.failures.erase(e.failures.begin(), young);
}

bool AuthThrottle::Table::dead(const Entry& e, Clock::time_point now) const {
    // Its last failure is its youngest, and its lockout began at a failure at the latest.
    return now - e.last_failure >= std::max(limits_.window, limits_.lockout) && e.locked_until <= now;
}

void AuthThrottle::Table::erase(List::iterator it) {
    index_.erase(it->key);
    lru_.erase(it);
}

unsigned AuthThrottle::Table::locked_failures(const std::string& key, Clock::time_point now) {
    if (!enabled()) return 0;
    auto it = index_.find(key);
    if (it == index_.end()) return 0;
    Entry& e = *it->second;
    if (e.locked_until > now) return std::max<unsigned>(1, static_cast<unsigned>(e.failures.size()));
    forget_old(e, now);
    if (e.failures.empty()) erase(it->second);
    return 0;
}

unsigned AuthThrottle::Table::counted(const std::string& key, Clock::time_point now) {
    if (!enabled()) return 0;
    auto it = index_.find(key);
    if (it == index_.end()) return 0;
    forget_old(*it->second, now);
    return static_cast<unsigned>(it->second->failures.size());
}

unsigned AuthThrottle::Table::add_failure(const std::string& key, Clock::time_point now) {
    if (!enabled()) return 0;
    // The least recently failed entries that have nothing left to say go first.
    while (!lru_.empty() && dead(lru_.back(), now)) erase(std::prev(lru_.end()));
    List::iterator it;
    if (auto found = index_.find(key); found != index_.end()) {
        it = found->second;
        lru_.splice(lru_.begin(), lru_, it);  // now the most recently failed
    } else {
        if (index_.size() >= limits_.max_entries) erase(std::prev(lru_.end()));  // room, at the oldest's cost
        lru_.push_front(Entry{key, {}, {}, {}});
        it = lru_.begin();
        index_.emplace(key, it);
    }
    Entry& e = *it;
    forget_old(e, now);
    if (e.failures.size() >= threshold_) e.failures.erase(e.failures.begin());  // keep at most threshold_
    e.failures.push_back(now);
    e.last_failure = now;
    if (e.failures.size() >= threshold_) e.locked_until = std::max(e.locked_until, now + limits_.lockout);
    return static_cast<unsigned>(e.failures.size());
}

}  // namespace xproxy::xproxyd
