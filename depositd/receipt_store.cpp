// receipt_store.cpp: receipts kept for a while; see receipt_store.hpp.
#include "receipt_store.hpp"

#include "expiry_order.hpp"

#include <openssl/rand.h>

#include <array>

#include <xproxy/jose/base64url.hpp>

namespace xproxy::depositd {

std::string ReceiptStore::new_id() {
    std::array<unsigned char, 16> bits{};
    if (RAND_bytes(bits.data(), static_cast<int>(bits.size())) != 1) return {};
    return jose::base64url_encode(std::string_view(reinterpret_cast<const char*>(bits.data()), bits.size()));
}

void ReceiptStore::expire(Clock::time_point now) { drop_expired(receipts_, order_, now); }

void ReceiptStore::put(std::string id, std::string identity, std::string jws, Clock::time_point now) {
    expire(now);
    if (max_ == 0) return;
    while (receipts_.size() >= max_ && !order_.empty()) {
        receipts_.erase(order_.front());
        order_.pop_front();
    }
    if (!receipts_.emplace(id, Entry{std::move(identity), std::move(jws), now + ttl_}).second) return;
    order_.push_back(std::move(id));
}

std::optional<std::string> ReceiptStore::get(std::string_view id, std::string_view identity, Clock::time_point now) {
    expire(now);
    auto it = receipts_.find(std::string(id));
    if (it == receipts_.end() || it->second.identity != identity) return std::nullopt;
    return it->second.jws;
}

}  // namespace xproxy::depositd
