// keyring.hpp: the shared HMAC keys, with ids, that sign and verify the trace header.
//
// File format (doc/wire-formats.md), one key per line:
//     # comment
//     KEYID  hex:SECRET          or      KEYID  base64:SECRET
// KEYID is 1-32 characters of [A-Za-z0-9._-]. SECRET is hex digits (either case) or
// standard base64 with its '=' padding, and decodes to 16-128 bytes (32 recommended:
// `openssl rand -base64 32`). '#' starts a comment anywhere on a line; blank lines and
// white space around fields are ignored; a CR before the LF is tolerated. A repeated
// KEYID is an error. The FIRST key signs; every key verifies. Rotation: add the new key
// as the second line everywhere, then make it the first line everywhere, and remove the
// old key once no header signed with it can still arrive (max age).
//
// Promises: parse() and load_file() never throw on bad input (only std::bad_alloc) and
// their error messages name the file and line but never contain secret bytes.
// load_file() refuses anything but a regular file, and a file whose mode grants any
// access to group or others (mode & 077), naming the path and the mode. Secret bytes are
// wiped (OPENSSL_cleanse) when a key, a ring or a temporary buffer is destroyed; nothing
// here prints them.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace xproxy {

// Bytes wiped on destruction and before reuse. Deliberately has no stream operator.
class SecretBytes {
public:
    SecretBytes() = default;
    SecretBytes(const unsigned char* data, std::size_t size) : bytes_(data, data + size) {}
    SecretBytes(const SecretBytes&) = default;
    SecretBytes(SecretBytes&& other) noexcept : bytes_(std::move(other.bytes_)) { other.bytes_.clear(); }
    SecretBytes& operator=(const SecretBytes& other);
    SecretBytes& operator=(SecretBytes&& other) noexcept;
    ~SecretBytes() { wipe(); }

    const unsigned char* data() const { return bytes_.data(); }
    std::size_t size() const { return bytes_.size(); }
    bool empty() const { return bytes_.empty(); }
    void wipe();

private:
    std::vector<unsigned char> bytes_;
};

struct Key {
    std::string id;
    SecretBytes secret;
};

class KeyRing {
public:
    static constexpr std::size_t kMinSecret = 16;
    static constexpr std::size_t kMaxSecret = 128;
    static constexpr std::size_t kMaxId = 32;
    static constexpr std::size_t kMaxFileSize = 1 << 20;

    // A ring from the text of a key ring file; nullopt with *error (if given) set to
    // "line N: why" when any line is bad or no key is present.
    static std::optional<KeyRing> parse(std::string_view text, std::string* error);
    // parse() of a file that passes the ownership rules above; errors start with the path.
    static std::optional<KeyRing> load_file(const std::string& path, std::string* error);

    // True when `id` is a syntactically valid key id.
    static bool valid_id(std::string_view id);

    const Key* signing_key() const { return keys_.empty() ? nullptr : &keys_.front(); }
    const Key* find(std::string_view id) const;
    std::size_t size() const { return keys_.size(); }
    bool empty() const { return keys_.empty(); }
    std::vector<std::string> ids() const;  // in file order; safe to print

private:
    std::vector<Key> keys_;
};

}  // namespace xproxy
