// file_loader.hpp: the one reader of configuration and secret files (key rings, HMAC key
// files, directory and risk files, daemon configuration files).
//
// A file is opened with O_CLOEXEC | O_NOCTTY | O_NONBLOCK (a FIFO put in its place cannot
// hang the reader before the checks refuse it) and, unless the rules allow links,
// O_NOFOLLOW. The checks are made on the OPEN descriptor (fstat), never on the path, so
// the file checked is the file read: a regular file, owned as the rules say, with none
// of the forbidden permission bits, at most max_size bytes. It is read once into one
// buffer of its announced size: a file that grows while it is read is refused, never
// reallocated. Secrets are read straight into a SecretBytes (no other copy is made);
// text into a std::string.
//
// Errors name the path: "PATH: cannot read: REASON", "PATH: not a regular file (mode
// 0755)", "PATH: has mode 0644 (bits 0077 must be clear)", ... Callers that have kept
// older wordings read the details from a FileRefusal.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include <xproxy/base/result.hpp>
#include <xproxy/base/secret_bytes.hpp>

namespace xproxy {

struct FileRules {
    std::size_t max_size = 0;         // bytes; a larger file is refused
    unsigned forbidden_mode = 0;      // permission bits that must all be clear (077: no group/other access)
    bool follow_links = false;        // false: a symbolic link is refused (O_NOFOLLOW)
    bool owner_root_or_euid = false;  // true: the file must belong to root or to the effective uid
};

// The permission bits a secret file must not have: owner only (mode 0600 or tighter), or
// readable by the group too (0640: a root-owned file of the daemon user's group, read again
// after privileges are dropped). Every reader of secrets uses one of these two.
inline constexpr unsigned kSecretOwnerOnly = 077;
inline constexpr unsigned kSecretGroupRead = 037;

// Files a person edits and every user may read: directory, risk and configuration files.
inline constexpr FileRules kConfigFileRules{std::size_t{1} << 30, 0, true, false};

// Why a file was refused, for callers that word their own messages.
struct FileRefusal {
    enum class Reason { open, stat, not_regular, owner, mode, too_big, read, changed };
    Reason reason = Reason::open;
    int sys_errno = 0;  // open, stat, read
    unsigned mode = 0;  // st_mode & 07777: not_regular, owner, mode
    uid_t owner = 0;    // owner
};

Expected<std::string> load_text_file(const std::string& path, const FileRules& rules, FileRefusal* refusal = nullptr);
Expected<SecretBytes> load_secret_file(const std::string& path, const FileRules& rules, FileRefusal* refusal = nullptr);

// "0640": permission bits as chmod takes them.
std::string mode_octal(unsigned mode);

// A parser's "line N: why" as "PATH:N: why"; any other message as "PATH: why".
std::string located_error(std::string_view path, std::string_view parse_error);

// load_text_file() then parse(text) (an Expected<T> parse(std::string_view)); parse
// errors are located_error()s.
template <class Parse>
auto load_and_parse(const std::string& path, const FileRules& rules, Parse&& parse)
    -> decltype(parse(std::string_view{})) {
    auto text = load_text_file(path, rules);
    if (!text) return Failure{text.error()};
    auto parsed = std::forward<Parse>(parse)(std::string_view(*text));
    if (!parsed) return Failure{located_error(path, parsed.error())};
    return parsed;
}

}  // namespace xproxy
