// session_limits.cpp: session counts in all and per client; see session_limits.hpp.
#include "session_limits.hpp"

#include <cstdlib>

namespace xproxy::xproxyd {

SessionLimits::Slot& SessionLimits::Slot::operator=(Slot&& o) noexcept {
    if (this != &o) {
        reset();
        owner_ = o.owner_;
        key_ = std::move(o.key_);
        o.owner_ = nullptr;
    }
    return *this;
}

void SessionLimits::Slot::reset() {
    if (owner_) owner_->release(key_);
    owner_ = nullptr;
    key_.clear();
}

std::string SessionLimits::client_key(const IpAddress& a) {
    const IpAddress n = a.normalized();
    if (n.is_v4()) return std::string(reinterpret_cast<const char*>(n.data()), 4);
    return std::string(reinterpret_cast<const char*>(n.data()), 8);  // the /64
}

SessionLimits::Verdict SessionLimits::acquire(const IpAddress& client, Slot* slot) {
    std::string key = client_key(client);
    std::lock_guard<std::mutex> lock(m_);
    if (active_ >= total_) return Verdict::total;
    unsigned& n = per_[key];
    if (n >= per_client_) {
        if (n == 0) per_.erase(key);
        return Verdict::per_client;
    }
    ++n;
    ++active_;
    slot->reset();
    slot->owner_ = this;
    slot->key_ = std::move(key);
    return Verdict::ok;
}

void SessionLimits::release(const std::string& key) {
    std::lock_guard<std::mutex> lock(m_);
    auto it = per_.find(key);
    if (it == per_.end() || it->second == 0 || active_ == 0) std::abort();  // a slot released twice
    if (--it->second == 0) per_.erase(it);
    --active_;
}

unsigned SessionLimits::active() const {
    std::lock_guard<std::mutex> lock(m_);
    return active_;
}

unsigned SessionLimits::active(const IpAddress& client) const {
    std::lock_guard<std::mutex> lock(m_);
    auto it = per_.find(client_key(client));
    return it == per_.end() ? 0 : it->second;
}

}  // namespace xproxy::xproxyd
