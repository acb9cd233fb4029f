// file_loader.cpp: see file_loader.hpp.
#include <xproxy/base/file_loader.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <xproxy/base/unique_fd.hpp>

namespace xproxy {

namespace {

std::string describe(const std::string& path, const FileRefusal& r, const FileRules& rules) {
    switch (r.reason) {
        case FileRefusal::Reason::open:
        case FileRefusal::Reason::stat:
        case FileRefusal::Reason::read: return path + ": cannot read: " + std::strerror(r.sys_errno);
        case FileRefusal::Reason::not_regular: return path + ": not a regular file (mode " + mode_octal(r.mode) + ")";
        case FileRefusal::Reason::owner:
            return path + ": belongs to uid " + std::to_string(r.owner) + ", neither root nor uid " +
                   std::to_string(::geteuid());
        case FileRefusal::Reason::mode:
            return path + ": has mode " + mode_octal(r.mode) + " (bits " + mode_octal(rules.forbidden_mode) +
                   " must be clear)";
        case FileRefusal::Reason::too_big: return path + ": larger than " + std::to_string(rules.max_size) + " bytes";
        case FileRefusal::Reason::changed: return path + ": changed while being read";
    }
    return path + ": cannot read";
}

// Opens and checks the file; on success *size is its announced size (at most max_size).
UniqueFd open_checked(const std::string& path, const FileRules& rules, std::size_t* size, FileRefusal& r) {
    int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    if (!rules.follow_links) flags |= O_NOFOLLOW;
    UniqueFd fd(::open(path.c_str(), flags));
    if (!fd) {
        r = {FileRefusal::Reason::open, errno, 0, 0};
        return {};
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        r = {FileRefusal::Reason::stat, errno, 0, 0};
        return {};
    }
    const unsigned mode = static_cast<unsigned>(st.st_mode & 07777);
    if (!S_ISREG(st.st_mode)) {
        r = {FileRefusal::Reason::not_regular, 0, mode, st.st_uid};
        return {};
    }
    if (rules.owner_root_or_euid && st.st_uid != 0 && st.st_uid != ::geteuid()) {
        r = {FileRefusal::Reason::owner, 0, mode, st.st_uid};
        return {};
    }
    if ((mode & rules.forbidden_mode) != 0) {
        r = {FileRefusal::Reason::mode, 0, mode, st.st_uid};
        return {};
    }
    if (st.st_size < 0 || static_cast<unsigned long long>(st.st_size) > rules.max_size) {
        r = {FileRefusal::Reason::too_big, 0, mode, st.st_uid};
        return {};
    }
    *size = static_cast<std::size_t>(st.st_size);
    return fd;
}

// Reads into buf[0, capacity) until EOF; capacity is one more than the announced size, so
// a full buffer means the file is larger than announced (or than allowed).
bool read_all(int fd, char* buf, std::size_t capacity, std::size_t max_size, std::size_t& used, FileRefusal& r) {
    used = 0;
    for (;;) {
        const ssize_t n = ::read(fd, buf + used, capacity - used);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            r = {FileRefusal::Reason::read, errno, 0, 0};
            return false;
        }
        if (n == 0) return true;
        used += static_cast<std::size_t>(n);
        if (used == capacity) {
            r = {used > max_size ? FileRefusal::Reason::too_big : FileRefusal::Reason::changed, 0, 0, 0};
            return false;
        }
    }
}

template <class Buffer, class Prepare, class Keep>
Expected<Buffer> load(const std::string& path, const FileRules& rules, FileRefusal* refusal, Prepare prepare,
                      Keep keep) {
    FileRefusal r;
    std::size_t size = 0;
    const UniqueFd fd = open_checked(path, rules, &size, r);
    if (fd) {
        Buffer buf;
        const std::size_t capacity = size + 1;
        std::size_t used = 0;
        if (read_all(fd.get(), prepare(buf, capacity), capacity, rules.max_size, used, r)) {
            keep(buf, used);
            return buf;
        }
    }
    if (refusal) *refusal = r;
    return Failure{describe(path, r, rules)};
}

}  // namespace

Expected<std::string> load_text_file(const std::string& path, const FileRules& rules, FileRefusal* refusal) {
    return load<std::string>(
        path, rules, refusal,
        [](std::string& s, std::size_t n) {
            s.resize(n);
            return s.data();
        },
        [](std::string& s, std::size_t n) { s.resize(n); });
}

Expected<SecretBytes> load_secret_file(const std::string& path, const FileRules& rules, FileRefusal* refusal) {
    // A refused buffer is wiped by ~SecretBytes on every path.
    return load<SecretBytes>(
        path, rules, refusal, [](SecretBytes& s, std::size_t n) { return s.prepare(n); },
        [](SecretBytes& s, std::size_t n) { s.truncate(n); });
}

std::string mode_octal(unsigned mode) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04o", mode & 07777);
    return buf;
}

std::string located_error(std::string_view path, std::string_view parse_error) {
    std::string out(path);
    if (parse_error.starts_with("line ")) out += ":" + std::string(parse_error.substr(5));
    else out += ": " + std::string(parse_error);
    return out;
}

}  // namespace xproxy
