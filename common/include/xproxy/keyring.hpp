// keyring.hpp: shared HMAC keys with ids, for signing and verifying the trace header and
// the PROXY v2 HMAC TLV.
//
// File format, one key per line, '#' starts a comment, blank lines ignored:
//     KEYID  base64:SECRET       or      KEYID  hex:SECRET
// KEYID is 1-32 characters of [A-Za-z0-9._-]; SECRET decodes to at least 16 bytes (32
// recommended: `openssl rand -base64 32`). The FIRST key signs; every key verifies. To
// rotate: add the new key below the old one on every verifier, then move it to the top on
// the signers, and remove the old key once no header signed with it is in flight.
// load_file() refuses a file that is not regular or is readable or writable by group or
// others. Secrets are never printed and are wiped when the ring is destroyed.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xproxy {

struct Key {
    std::string id;
    std::string secret;  // raw bytes
};

class KeyRing {
public:
    KeyRing() = default;
    KeyRing(const KeyRing&) = default;
    KeyRing(KeyRing&&) = default;
    KeyRing& operator=(const KeyRing&) = default;
    KeyRing& operator=(KeyRing&&) = default;
    ~KeyRing();

    static std::optional<KeyRing> parse(std::string_view text, std::string* error);
    static std::optional<KeyRing> load_file(const std::string& path, std::string* error);

    const Key* signing_key() const { return keys_.empty() ? nullptr : &keys_.front(); }
    const Key* find(std::string_view id) const;
    std::size_t size() const { return keys_.size(); }
    bool empty() const { return keys_.empty(); }

private:
    std::vector<Key> keys_;
};

// Reads a secret file (whole content, one trailing newline removed) with the same
// permission rule as KeyRing::load_file. Used for single shared keys.
std::optional<std::string> read_secret_file(const std::string& path, std::string* error);

}  // namespace xproxy
