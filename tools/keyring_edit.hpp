// keyring_edit.hpp: the text of a key ring file (doc/wire-formats.md, "Key ring") edited
// in memory by the keyring-* subcommands of xproxy-wire: add a key as the second (or
// first) key, promote a key to the first (signing) position, retire a key, list the keys.
//
// Every line of the file is kept as it was (comments, blank lines, spacing, CR before LF):
// an edit inserts, moves or removes whole key lines, so a comment on a key's line moves
// with it. The text is validated with KeyRing::parse() (the daemons' parser) first, so
// errors are the parser's "line N: why". Lines are held in SecretBytes (wiped when
// dropped); no error message and no listing contains a secret byte.
#pragma once

#include <cstddef>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include <xproxy/base/result.hpp>
#include <xproxy/base/secret_bytes.hpp>

namespace xproxy::keyring_tool {

inline constexpr std::size_t kDefaultSecretBytes = 32;

// The comment line that starts a key ring made by keyring-create.
inline constexpr std::string_view kHeaderComment =
    "# xproxy trace key ring: KEYID base64:SECRET per line; the first key signs, every key verifies";

// "kYYYYMMDD" from the UTC date of `now`.
std::string default_key_id(std::time_t now);

// `bytes` (16..128) random bytes from OpenSSL's RAND_bytes.
Expected<SecretBytes> random_secret(std::size_t bytes);

// "base64:..." of the secret (standard alphabet, '=' padding), as a key ring line takes it.
SecretBytes encode_secret(const SecretBytes& secret);

enum class Where { second, first };

struct ListedKey {
    std::size_t position = 0;  // 1: the signing key
    std::string id;
    std::size_t bytes = 0;
    std::size_t line = 0;  // 1-based line of the file
};

class KeyRingText {
public:
    // The text of an existing key ring; fails with KeyRing::parse()'s "line N: why" (or
    // "no key ...").
    static Expected<KeyRingText> parse(std::string_view text);
    // A new key ring: the header comment and no key yet (add() one before render()).
    static KeyRingText fresh();

    // Adds key `id` with `spec` ("base64:..." or "hex:...", checked as the parser checks
    // it) as the second key (the first when the ring is empty) or the first. Refuses an
    // id already present and an invalid id or secret; the message has no secret byte.
    Expected<void> add(std::string_view id, const SecretBytes& spec, Where where);
    // Moves key `id` to the first position (it then signs). False when it already was.
    Expected<bool> promote(std::string_view id);
    // Removes key `id`. Refuses the only key always, and the signing key unless `force`.
    Expected<void> retire(std::string_view id, bool force);

    // `base`, or base-2, base-3 ... the first that is not in the ring.
    std::string unused_id(std::string_view base) const;
    bool contains(std::string_view id) const;
    std::vector<ListedKey> keys() const;  // in file order: no secret in it
    std::size_t key_count() const;

    // The file's text: every line followed by LF.
    SecretBytes render() const;

private:
    struct Line {
        SecretBytes text;  // without the LF; a CR, if any, is kept
        std::string id;    // empty: a comment or blank line
        std::size_t bytes = 0;
    };
    std::ptrdiff_t index_of(std::string_view id) const;  // -1: no such key
    std::ptrdiff_t first_key() const;                    // -1: no key

    std::vector<Line> lines_;
    bool crlf_ = false;  // new lines end with CR LF when the file's lines do
};

}  // namespace xproxy::keyring_tool
