// keyring_file.cpp: creating, reading, locking and replacing key ring files
// (keyring_file.hpp).
#include "keyring_file.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include <xproxy/base/file_loader.hpp>
#include <xproxy/base/keyring.hpp>
#include <xproxy/base/text.hpp>

namespace xproxy::keyring_tool {

namespace {

std::string errno_text(int e) { return std::strerror(e); }

std::string dir_of(const std::string& path) {
    const auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

std::string base_of(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

Expected<void> write_all(int fd, const SecretBytes& content) {
    std::size_t done = 0;
    while (done < content.size()) {
        const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return Failure{"cannot write: " + errno_text(n < 0 ? errno : EIO)};
        done += static_cast<std::size_t>(n);
    }
    return {};
}

void sync_dir(const std::string& dir) {
    const UniqueFd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (d) ::fsync(d.get());  // best effort: the rename itself is already atomic
}

// A temporary file beside `path`: created 0600 (O_CREAT|O_EXCL), then given the owner,
// group and mode of `id`, then `content`, then fsync()ed. Its name is in `tmp`; the caller
// moves it into place or unlinks it.
Expected<void> write_temp(const std::string& path, const SecretBytes& content, const FileIdentity& id, bool set_owner,
                          std::string& tmp) {
    std::string name = dir_of(path) + "/." + base_of(path) + ".XXXXXX";
    std::vector<char> buf(name.begin(), name.end());
    buf.push_back('\0');
    const UniqueFd fd(::mkostemp(buf.data(), O_CLOEXEC));
    if (!fd) return Failure{"cannot create a temporary file in " + dir_of(path) + ": " + errno_text(errno)};
    tmp.assign(buf.data());
    auto fail = [&](const std::string& why) -> Expected<void> {
        ::unlink(tmp.c_str());
        tmp.clear();
        return Failure{why};
    };
    if (set_owner && ::fchown(fd.get(), id.uid, id.gid) != 0)
        return fail("cannot give " + tmp + " owner " + user_name(id.uid) + " and group " + group_name(id.gid) + ": " +
                    errno_text(errno));
    if (::fchmod(fd.get(), id.mode & 07777) != 0)
        return fail("cannot set mode " + mode_octal(id.mode) + " on " + tmp + ": " + errno_text(errno));
    if (auto w = write_all(fd.get(), content); !w) return fail(tmp + ": " + w.error());
    if (::fsync(fd.get()) != 0) return fail("cannot sync " + tmp + ": " + errno_text(errno));
    return {};
}

}  // namespace

Expected<unsigned> parse_key_ring_mode(std::string_view text) {
    unsigned mode = 0;
    bool digits = !text.empty() && text.size() <= 5;
    for (const char c : text) {
        if (c < '0' || c > '7') digits = false;
        else mode = mode * 8 + static_cast<unsigned>(c - '0');
    }
    if (digits && (mode == 0600 || mode == 0400)) return mode;
    return Failure{"--mode " + std::string(text).substr(0, 16) +
                   ": a key ring's mode must grant nothing to group or others (mode & 077 == 0), or the daemons "
                   "refuse it; use 0600 or 0400"};
}

Expected<uid_t> lookup_user(std::string_view name) {
    if (const auto n = parse_decimal<uid_t>(name, static_cast<uid_t>(INT_MAX))) return *n;
    std::vector<char> buf(16384);
    passwd pw{};
    passwd* found = nullptr;
    const std::string n(name);
    const int e = ::getpwnam_r(n.c_str(), &pw, buf.data(), buf.size(), &found);
    if (e != 0 || found == nullptr) return Failure{"no such user: " + n.substr(0, 64)};
    return found->pw_uid;
}

Expected<gid_t> lookup_group(std::string_view name) {
    if (const auto n = parse_decimal<gid_t>(name, static_cast<gid_t>(INT_MAX))) return *n;
    std::vector<char> buf(65536);
    group gr{};
    group* found = nullptr;
    const std::string n(name);
    const int e = ::getgrnam_r(n.c_str(), &gr, buf.data(), buf.size(), &found);
    if (e != 0 || found == nullptr) return Failure{"no such group: " + n.substr(0, 64)};
    return found->gr_gid;
}

std::string user_name(uid_t uid) {
    std::vector<char> buf(16384);
    passwd pw{};
    passwd* found = nullptr;
    if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) return found->pw_name;
    return std::to_string(uid);
}

std::string group_name(gid_t gid) {
    std::vector<char> buf(65536);
    group gr{};
    group* found = nullptr;
    if (::getgrgid_r(gid, &gr, buf.data(), buf.size(), &found) == 0 && found != nullptr) return found->gr_name;
    return std::to_string(gid);
}

bool path_exists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}

Expected<CreateOutcome> create_new_file(const std::string& path, const SecretBytes& content, const FileIdentity& id) {
    if (path_exists(path)) return CreateOutcome::exists;
    std::string tmp;
    if (auto w = write_temp(path, content, id, true, tmp); !w) return Failure{w.error()};
    int rc = ::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE);
    if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
        // No RENAME_NOREPLACE on this file system: link() never replaces either.
        rc = ::link(tmp.c_str(), path.c_str());
        const int e = errno;
        ::unlink(tmp.c_str());
        errno = e;
    }
    if (rc != 0) {
        const int e = errno;
        ::unlink(tmp.c_str());  // harmless when already moved or unlinked
        if (e == EEXIST) return CreateOutcome::exists;
        return Failure{"cannot create " + path + ": " + errno_text(e)};
    }
    sync_dir(dir_of(path));
    return CreateOutcome::created;
}

Expected<SecretBytes> read_key_ring_text(const std::string& path, bool enforce_mode) {
    const FileRules rules{KeyRing::kMaxFileSize, enforce_mode ? 077U : 0U, true, false};
    auto text = load_secret_file(path, rules);
    if (text) return text;
    if (enforce_mode) {
        // The daemons' wording (mode, not a regular file ...): the same file, read again.
        const auto ring = KeyRing::load_file(path);
        if (!ring) return Failure{ring.error()};
    }
    return Failure{"key ring " + text.error()};
}

Expected<LockedKeyRing> LockedKeyRing::lock(const std::string& path, std::chrono::milliseconds wait) {
    char real[PATH_MAX];
    if (::realpath(path.c_str(), real) == nullptr)
        return Failure{"key ring " + path + ": cannot open: " + errno_text(errno)};
    LockedKeyRing out;
    out.path_ = real;
    // The name may be renamed over (by another invocation) between open() and flock():
    // then the lock is on a file that is no longer the key ring, and the new one is locked.
    for (int attempt = 0; attempt < 1000; ++attempt) {
        UniqueFd fd(::open(out.path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW));
        if (!fd) return Failure{"key ring " + out.path_ + ": cannot open: " + errno_text(errno)};
        if (::fstat(fd.get(), &out.st_) != 0)
            return Failure{"key ring " + out.path_ + ": cannot stat: " + errno_text(errno)};
        if (!S_ISREG(out.st_.st_mode))
            return Failure{"key ring " + out.path_ + ": not a regular file (mode " + mode_octal(out.st_.st_mode) + ")"};
        // Never wait for ever: the service user owns the file and could hold a lock on it.
        const auto deadline = std::chrono::steady_clock::now() + wait;
        while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
            if (errno != EWOULDBLOCK && errno != EINTR)
                return Failure{"key ring " + out.path_ + ": cannot lock: " + errno_text(errno)};
            if (std::chrono::steady_clock::now() >= deadline)
                return Failure{"key ring " + out.path_ + ": another process has held its lock for " +
                               std::to_string(wait.count()) + " ms; not modified"};
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        struct stat now {};
        if (::stat(out.path_.c_str(), &now) != 0)
            return Failure{"key ring " + out.path_ + ": cannot stat: " + errno_text(errno)};
        if (now.st_dev == out.st_.st_dev && now.st_ino == out.st_.st_ino) {
            out.fd_ = std::move(fd);
            return out;
        }
    }
    return Failure{"key ring " + out.path_ + ": replaced again and again while waiting for its lock"};
}

FileIdentity LockedKeyRing::identity() const {
    return FileIdentity{st_.st_uid, st_.st_gid, static_cast<unsigned>(st_.st_mode & 07777)};
}

Expected<void> LockedKeyRing::replace(const SecretBytes& content) const {
    std::string tmp;
    if (auto w = write_temp(path_, content, identity(), true, tmp); !w) return w;
    if (::rename(tmp.c_str(), path_.c_str()) != 0) {
        const int e = errno;
        ::unlink(tmp.c_str());
        return Failure{"cannot rename " + tmp + " to " + path_ + ": " + errno_text(e)};
    }
    sync_dir(dir_of(path_));
    return {};
}

}  // namespace xproxy::keyring_tool
