// receipt_store.hpp: the receipts a client can fetch (GET /v1/receipts/ID; doc/deposit.md),
// each for --receipt-ttl seconds and only by the identity that deposited the message.
//
// Promises: memory bounded by max_receipts (the oldest receipt makes room for a new one);
// get() by any other identity, or of an unknown or expired id, finds nothing, so a
// client cannot tell another identity's receipt from none; ids are 22 base64url
// characters of 128 random bits (new_id()). The time is given (no clock); not
// thread-safe (the daemon serves on one thread).
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace xproxy::depositd {

class ReceiptStore {
public:
    using Clock = std::chrono::steady_clock;

    ReceiptStore(std::size_t max_receipts, std::chrono::seconds ttl) : max_(max_receipts), ttl_(ttl) {}

    void put(std::string id, std::string identity, std::string jws, Clock::time_point now);
    // The receipt (compact JWS) when `id` is `identity`'s and has not expired.
    std::optional<std::string> get(std::string_view id, std::string_view identity, Clock::time_point now);

    std::size_t size() const { return receipts_.size(); }

    // 128 random bits (OpenSSL's RAND_bytes), base64url: 22 characters; "" when the
    // generator fails.
    static std::string new_id();

private:
    struct Entry {
        std::string identity;
        std::string jws;
        Clock::time_point expires{};
    };
    void expire(Clock::time_point now);

    std::size_t max_;
    std::chrono::seconds ttl_;
    std::unordered_map<std::string, Entry> receipts_;
    std::deque<std::string> order_;  // oldest first (= soonest to expire)
};

}  // namespace xproxy::depositd
