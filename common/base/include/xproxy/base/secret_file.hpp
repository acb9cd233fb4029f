// secret_file.hpp: a shared key read from a file (the PROXY v2 HMAC key of the shim,
// xproxyd and xproxy-wire), and the one buffer that holds it.
//
// The file is opened without following a link, must be a regular file that group and
// others cannot access (mode 0600 or tighter), holds at most 4095 bytes (one trailing
// newline is not part of the key) and at least the caller's minimum. The read buffer is
// wiped on every path; the key's only copy is the SecretBytes it is read into. Error
// messages name the file, never its bytes.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include <openssl/crypto.h>

namespace xproxy {

// The shortest PROXY v2 HMAC key the shim and xproxyd accept (128 bits).
inline constexpr std::size_t kMinHmacKeySize = 16;

// A secret's only copy. Move-only; wiped (OPENSSL_cleanse over its whole capacity) when
// destroyed, replaced or moved from, so no stale copy stays behind in memory.
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
    bool empty() const { return bytes_.empty(); }
    std::size_t size() const { return bytes_.size(); }
    std::string_view view() const { return bytes_; }
    operator std::string_view() const { return bytes_; }
    // Zeroes the whole buffer (its capacity, not only its length), keeps it allocated.
    void wipe() {
        OPENSSL_cleanse(bytes_.data(), bytes_.capacity());
        bytes_.clear();
    }

private:
    std::string bytes_;
};

// Reads the key in `path` into out (at least min_size bytes, at least 1). False with
// error set ("cannot open PATH: ...", "PATH must be a regular file of mode 0600 or
// tighter (has MODE; chmod 600 PATH)", "PATH is empty", "PATH holds fewer than N bytes",
// "PATH is longer than 4095 bytes", "cannot read PATH: ..."); out is then unchanged.
bool read_secret_file(const std::string& path, std::size_t min_size, SecretBytes& out, std::string& error);

}  // namespace xproxy
