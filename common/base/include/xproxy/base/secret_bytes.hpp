// secret_bytes.hpp: the one buffer that holds a secret (an HMAC key, a key ring's keys,
// the bytes of a key file while it is parsed).
//
// Promises: move-only (a secret is never copied by accident); wiped (OPENSSL_cleanse over
// its whole capacity) when destroyed, replaced or moved from, so no stale copy stays
// behind in memory. Deliberately has no stream operator.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include <openssl/crypto.h>

namespace xproxy {

class SecretBytes {
public:
    SecretBytes() = default;
    SecretBytes(const SecretBytes&) = delete;
    SecretBytes& operator=(const SecretBytes&) = delete;
    SecretBytes(SecretBytes&& o) noexcept : bytes_(std::move(o.bytes_)) { o.wipe(); }
    SecretBytes& operator=(SecretBytes&& o) noexcept {
        if (this != &o) {
            wipe();
            bytes_ = std::move(o.bytes_);
            o.wipe();
        }
        return *this;
    }
    ~SecretBytes() { wipe(); }

    // Copies size bytes in, replacing (and wiping) what was held; the caller wipes its
    // own buffer.
    void assign(const char* data, std::size_t size) {
        wipe();
        bytes_.reserve(size);  // one allocation: no reallocation leaves a copy behind
        bytes_.assign(data, size);
    }
    void assign(const unsigned char* data, std::size_t size) { assign(reinterpret_cast<const char*>(data), size); }
    // Wipes what was held and makes room for exactly `size` bytes (one allocation), for a
    // reader to write into; truncate() then keeps the bytes actually written.
    char* prepare(std::size_t size) {
        wipe();
        bytes_.reserve(size);
        bytes_.resize(size);
        return bytes_.data();
    }
    // Keeps the first `size` bytes (wiping the rest); never reallocates.
    void truncate(std::size_t size) {
        if (size >= bytes_.size()) return;
        OPENSSL_cleanse(bytes_.data() + size, bytes_.size() - size);
        bytes_.resize(size);
    }
    bool empty() const { return bytes_.empty(); }
    std::size_t size() const { return bytes_.size(); }
    const unsigned char* data() const { return reinterpret_cast<const unsigned char*>(bytes_.data()); }
    std::string_view view() const { return bytes_; }
    operator std::string_view() const { return bytes_; }  // NOLINT(google-explicit-constructor)
    // Zeroes the whole buffer (its capacity, not only its length), keeps it allocated.
    void wipe() {
        OPENSSL_cleanse(bytes_.data(), bytes_.capacity());
        bytes_.clear();
    }

private:
    std::string bytes_;
};

}  // namespace xproxy
