// keyring_file.hpp: the file side of the keyring-* subcommands of xproxy-wire.
//
// A key ring is never written in place. A new one is written to a temporary file in the
// same directory (mkostemp: O_CREAT|O_EXCL, mode 0600 before any byte), given its owner,
// group and final mode, written, fsync()ed, then moved to its name with
// renameat2(RENAME_NOREPLACE) (link() where the file system lacks it): a FILE that exists
// is never replaced, and FILE never exists with the wrong mode or partial content. A
// modified one is written the same way with the owner, group and mode of the file it
// replaces and rename()d over it, so a daemon reading it sees the old or the new text,
// never a mix. Modifications hold an exclusive flock() on the file for the whole
// read-edit-write: two invocations at once cannot lose a key (the second one waits, then
// sees that the name now points at a new file, and locks that one).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <chrono>
#include <string>
#include <string_view>

#include <xproxy/base/result.hpp>
#include <xproxy/base/secret_bytes.hpp>
#include <xproxy/base/unique_fd.hpp>

namespace xproxy::keyring_tool {

struct FileIdentity {
    uid_t uid = 0;
    gid_t gid = 0;
    unsigned mode = 0600;
};

// --mode for a new key ring: only modes the daemons' loader accepts (0600, 0400).
Expected<unsigned> parse_key_ring_mode(std::string_view text);
// A user or group given by name or number.
Expected<uid_t> lookup_user(std::string_view name);
Expected<gid_t> lookup_group(std::string_view name);
// The name of a uid or gid, or its number when it has none.
std::string user_name(uid_t uid);
std::string group_name(gid_t gid);

// True when anything (a file, a link, a dangling link) has this name.
bool path_exists(const std::string& path);

enum class CreateOutcome { created, exists };

// Creates `path` with `content`, owned and with the mode of `id`, as above; `exists`
// (nothing written) when the name is taken.
Expected<CreateOutcome> create_new_file(const std::string& path, const SecretBytes& content, const FileIdentity& id);

// The text of a key ring file, read as the daemons read it (a regular file, a link to one
// allowed, at most 1 MiB). With `enforce_mode`, a file whose mode grants anything to group
// or others is refused with KeyRing::load_file()'s message.
Expected<SecretBytes> read_key_ring_text(const std::string& path, bool enforce_mode);

// An existing key ring, locked for one modification until destroyed.
class LockedKeyRing {
public:
    // Resolves symbolic links (the file they name is the one replaced) and takes the lock.
    // Gives up after `wait` when another process holds the lock (the service user owns
    // the file and could hold it for ever).
    static Expected<LockedKeyRing> lock(const std::string& path,
                                        std::chrono::milliseconds wait = std::chrono::seconds(30));

    const std::string& path() const { return path_; }
    FileIdentity identity() const;
    // Replaces the file with `content` (same owner, group and mode), as above.
    Expected<void> replace(const SecretBytes& content) const;

private:
    std::string path_;
    UniqueFd fd_;  // holds the flock
    struct stat st_ {};
};

}  // namespace xproxy::keyring_tool
