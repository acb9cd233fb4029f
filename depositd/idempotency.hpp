// idempotency.hpp: the deposits an Idempotency-Key names (doc/deposit.md, "Idempotency"),
// so that a client that retries after a lost answer gets the first deposit's receipt
// instead of a second delivery.
//
// The key of an entry is (identity, Idempotency-Key): one identity's keys never meet
// another's. begin() answers:
//   fresh        no entry (or an expired one): an in_progress entry is made for this
//                message; the caller delivers, then complete() or abandon();
//   in_progress  a deposit with this key is under way (409 in_progress);
//   replay       it was delivered, the same message (same SHA-256): its receipt id
//                (303 to the same receipt, nothing delivered again);
//   reused       it was delivered with another message (422 idempotency_key_reused);
//   full         the table is full of deposits under way (503; cannot happen with at
//                most max_entries connections).
// A failed deposit leaves no entry (abandon()): a retry may deliver. A completed entry
// lives `ttl` from its completion; when the table holds max_entries, the oldest
// completed entry makes room (its key then behaves as new).
//
// Promises: memory bounded by max_entries (plus the keys' bytes, each at most 255 + 320);
// every call is O(1) amortised; the time is given (no clock); not thread-safe (the daemon
// serves on one thread).
#pragma once

#include <chrono>
#include <cstddef>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

namespace xproxy::depositd {

class IdempotencyCache {
public:
    using Clock = std::chrono::steady_clock;
    enum class Verdict { fresh, in_progress, replay, reused, full };
    struct Begin {
        Verdict verdict = Verdict::fresh;
        std::string receipt_id;  // replay
        std::string queue_id;    // replay: the MTA's queue id of the first deposit
    };

    IdempotencyCache(std::size_t max_entries, std::chrono::seconds ttl) : max_(max_entries), ttl_(ttl) {}

    // `sha256`: the message's digest (any bytes that identify it).
    Begin begin(std::string_view identity, std::string_view key, std::string_view sha256, Clock::time_point now);
    void complete(std::string_view identity, std::string_view key, std::string receipt_id, std::string queue_id,
                  Clock::time_point now);
    void abandon(std::string_view identity, std::string_view key);

    std::size_t size() const { return entries_.size(); }

    // Whether `key` is an acceptable Idempotency-Key: 1 to 255 printable ASCII characters.
    static bool valid_key(std::string_view key);

private:
    struct Entry {
        bool done = false;
        std::string sha256;
        std::string receipt_id;
        std::string queue_id;
        Clock::time_point expires{};
    };
    static std::string key_of(std::string_view identity, std::string_view key);
    void expire(Clock::time_point now);

    std::size_t max_;
    std::chrono::seconds ttl_;
    std::unordered_map<std::string, Entry> entries_;
    std::list<std::string> done_;  // completed keys, oldest first (= soonest to expire)
};

}  // namespace xproxy::depositd
