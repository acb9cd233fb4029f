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
// load_file() reads with load_secret_file() (file_loader.hpp) and refuses anything but a
// regular file, and a file whose mode grants any access to group or others (mode & 077),
// naming the path and the mode. Secret bytes are wiped (OPENSSL_cleanse) when a key, a
// ring or a temporary buffer is destroyed; nothing here prints them. Keys and rings are
// move-only, as their SecretBytes are.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <xproxy/base/result.hpp>
#include <xproxy/base/secret_bytes.hpp>

namespace xproxy {

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

    KeyRing() = default;
    KeyRing(const KeyRing&) = delete;
    KeyRing& operator=(const KeyRing&) = delete;
    KeyRing(KeyRing&&) noexcept = default;
    KeyRing& operator=(KeyRing&&) noexcept = default;
    ~KeyRing() = default;

    // A ring from the text of a key ring file; the error is "line N: why" when any line
    // is bad, or says that no key is present.
    static Expected<KeyRing> parse(std::string_view text);
    // parse() of a file that passes the rules above; errors start with "key ring PATH".
    static Expected<KeyRing> load_file(const std::string& path);

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
