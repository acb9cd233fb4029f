// auth_throttle.hpp: failed logins slow down, then lock out, per client address and per user.
//
// The submission mode checks passwords, so a guesser must pay for every wrong guess. Two
// tables count failed logins:
//   - per client address: an IPv4 address, or the /64 of an IPv6 address (one subscriber's
//     network: changing the low 64 bits buys an attacker nothing); v4-mapped IPv6 counts
//     as IPv4;
//   - per user name, from any address: compared ASCII case-insensitively, keyed on its
//     first 255 bytes (a longer name shares the entry of its first 255 bytes).
//
// Algorithm, the same in each table (threshold = address_failures or user_failures):
//   - An entry holds the times of its key's recent failures: those younger than `window`,
//     at most `threshold` of them (older ones are forgotten), and the end of its lockout.
//   - failed() forgets the times older than `window`, adds `now`; when the entry then holds
//     `threshold` failures, the key is locked until now + `lockout` (a sliding window: any
//     `threshold` failures within `window` lock). It returns the delay to wait before the
//     535 reply: with n the failures now counted, delay * (n - 1), at most max_delay; the
//     larger of the two tables' delays. The first failure costs nothing (a typo is free).
//   - check() comes before the credentials are looked at. If the address or the user is
//     locked, the attempt is refused without asking, even with the right password, after
//     delay * n (n the failures counted for the locked key, at least 1), at most max_delay;
//     `why` says which key ("address" first when both are). Otherwise nothing waits.
//   - A refused (locked) attempt is not a failure: the caller does not call failed() for
//     it, and the lockout is not extended by knocking on the door.
//   - Successes are not counted and reset nothing: one valid account must not let its
//     owner wipe an address's count, nor a login from elsewhere a user's.
//   - An entry whose failures have all been forgotten and whose lockout has ended is
//     removed (when it is next looked at, or when it is the least recently failed one).
//
// Limits and memory: each table holds at most max_entries entries whatever the input;
// when one is full, the entry that failed least recently makes room. An entry costs
// about 150 bytes plus 8 bytes per failure time kept (at most the threshold) plus its
// key (at most 255 bytes for a user), so about 12 MB per table with the defaults at worst.
// The price of the bound: an attacker who fails from more than max_entries different
// addresses (or for as many different users) within `lockout` pushes the oldest locked
// entries out; the other table still counts the guesses. A threshold of 0 turns that
// table off (no entries, no lockout, no delay from it); max_entries 0 turns both off.
// Lookups are ordered-map lookups (O(log n) whatever names an attacker chooses, no
// hash to flood).
//
// Thread-safe: one mutex guards both tables; each call is short (no I/O, no waiting: the
// caller waits the delay it is given).
#pragma once

#include <chrono>
#include <cstddef>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <xproxy/base/ip.hpp>

namespace xproxy::xproxyd {

struct ThrottleLimits {
    unsigned address_failures = 5;      // failures from one address within `window` before it is locked
    unsigned user_failures = 10;        // failures for one user (from anywhere) within `window`
    std::chrono::seconds window{900};   // failures older than this are forgotten
    std::chrono::seconds lockout{900};  // how long a locked address/user stays locked
    // each failure after the first (and each locked attempt) waits delay*n, at most max_delay
    std::chrono::milliseconds delay{1000};
    std::chrono::milliseconds max_delay{5000};
    std::size_t max_entries = 65536;  // per table; the least recently failed entry goes first when full
};

class AuthThrottle;

// An attempt being checked (between check() and its verdict): it counts towards the
// thresholds while it lasts, so that attempts sent in parallel cannot all be checked
// before the first failure is counted. Released when destroyed.
class ThrottleAttempt {
public:
    ThrottleAttempt() = default;
    ThrottleAttempt(ThrottleAttempt&& o) noexcept
        : owner_(std::exchange(o.owner_, nullptr)), akey_(std::move(o.akey_)), ukey_(std::move(o.ukey_)) {}
    ThrottleAttempt& operator=(ThrottleAttempt&& o) noexcept;
    ThrottleAttempt(const ThrottleAttempt&) = delete;
    ThrottleAttempt& operator=(const ThrottleAttempt&) = delete;
    ~ThrottleAttempt() { release(); }
    void release();

private:
    friend class AuthThrottle;
    AuthThrottle* owner_ = nullptr;
    std::string akey_, ukey_;  // ukey_ empty: no user counted
};

struct ThrottleCheck {
    bool locked = false;
    std::chrono::milliseconds delay{0};
    const char* why = "";  // "address", "user"
    // Not locked, but the attempts in flight fill the places the failures left: ask again
    // once one of them has its verdict (a burst of good logins from one address waits a
    // moment; a burst of guesses stops at the limit).
    bool busy = false;
    // Not locked: the attempt, counted until the verdict (keep it until then).
    ThrottleAttempt attempt{};
};

class AuthThrottle {
public:
    using Clock = std::chrono::steady_clock;

    explicit AuthThrottle(ThrottleLimits l);

    // Before the credentials are checked: locked -> refuse without asking (even a right
    // password), after `delay`. Busy when the failures counted plus the attempts still
    // being checked reach the threshold: at most `threshold` guesses per window whatever
    // the parallelism. Else the returned attempt counts until it is released.
    ThrottleCheck check(const IpAddress& client, std::string_view user, Clock::time_point now);
    // After a failed check (an empty user: credentials that could not be read, counted for
    // the address only): counts for the address and the user; returns the delay to
    // wait before the 535.
    std::chrono::milliseconds failed(const IpAddress& client, std::string_view user, Clock::time_point now);
    // Successes are not counted and do not reset anything.

    std::size_t address_entries() const;
    std::size_t user_entries() const;

    // The table keys, exposed for tests: the address's /32 or /64, the user's first 255
    // bytes in ASCII lower case.
    static std::string address_key(const IpAddress& client);
    static std::string user_key(std::string_view user);
    static constexpr std::size_t kMaxUserKey = 255;

private:
    // One table of failure counts (addresses or users).
    class Table {
    public:
        Table(unsigned threshold, const ThrottleLimits& limits) : threshold_(threshold), limits_(limits) {}
        // Locked: how many failures count for the key (>= 1). Not locked: 0.
        unsigned locked_failures(const std::string& key, Clock::time_point now);
        // The failures counted for the key now (0: none, or the table is off).
        unsigned counted(const std::string& key, Clock::time_point now);
        unsigned threshold() const { return enabled() ? threshold_ : 0; }
        // Counts a failure; returns the failures now counted for the key (0: table off).
        unsigned add_failure(const std::string& key, Clock::time_point now);
        std::size_t size() const { return index_.size(); }

    private:
        struct Entry {
            std::string key;
            std::vector<Clock::time_point> failures;  // oldest first, at most threshold_
            Clock::time_point locked_until{};
            Clock::time_point last_failure{};
        };
        using List = std::list<Entry>;  // the most recently failed first

        bool enabled() const { return threshold_ > 0 && limits_.max_entries > 0; }
        void forget_old(Entry& e, Clock::time_point now) const;
        bool dead(const Entry& e, Clock::time_point now) const;
        void erase(List::iterator it);

        unsigned threshold_;
        const ThrottleLimits& limits_;
        List lru_;
        std::map<std::string, List::iterator, std::less<>> index_;
    };

    std::chrono::milliseconds delay_for(unsigned n) const;
    friend class ThrottleAttempt;
    void release(const ThrottleAttempt& a);
    // Attempts being checked, per key (at most one entry per session at a time: bounded by
    // the sessions).
    std::map<std::string, unsigned, std::less<>> pending_addresses_, pending_users_;

    ThrottleLimits limits_;
    mutable std::mutex mutex_;
    Table addresses_;
    Table users_;
};

}  // namespace xproxy::xproxyd
