// session_limits.hpp: how many front-side sessions xproxyd holds at once, in all and per
// client, so that one peer opening idle connections cannot starve the others. A client
// is its IPv4 address, or the /64 of its IPv6 address (one host usually holds a whole
// /64). acquire() hands out a Slot that gives its place back when destroyed; safe from
// any thread.
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>

#include <xproxy/base/ip.hpp>

namespace xproxy::xproxyd {

class SessionLimits {
public:
    SessionLimits(unsigned total, unsigned per_client) : total_(total), per_client_(per_client) {}
    SessionLimits(const SessionLimits&) = delete;
    SessionLimits& operator=(const SessionLimits&) = delete;

    class Slot {
    public:
        Slot() = default;
        Slot(Slot&& o) noexcept : owner_(o.owner_), key_(std::move(o.key_)) { o.owner_ = nullptr; }
        Slot& operator=(Slot&& o) noexcept;
        ~Slot() { reset(); }
        void reset();
        explicit operator bool() const { return owner_ != nullptr; }

    private:
        friend class SessionLimits;
        SessionLimits* owner_ = nullptr;
        std::string key_;
    };

    enum class Verdict { ok, total, per_client };
    // ok: *slot holds the place until it is destroyed or reset.
    Verdict acquire(const IpAddress& client, Slot* slot);
    static std::string client_key(const IpAddress& a);
    unsigned active() const;
    unsigned active(const IpAddress& client) const;

private:
    void release(const std::string& key);
    const unsigned total_, per_client_;
    mutable std::mutex m_;
    unsigned active_ = 0;
    std::unordered_map<std::string, unsigned> per_;
};

}  // namespace xproxy::xproxyd
