// signing_key.cpp: see signing_key.hpp.
#include "signing_key.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace xproxy::proxyd {

SigningKey::~SigningKey() { OPENSSL_cleanse(bytes_.data(), bytes_.capacity()); }

std::shared_ptr<const SigningKey> SigningKey::load(const std::string& path, std::string* error) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        *error = "cannot open " + path + ": " + std::strerror(errno);
        return nullptr;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        *error = path + " must be a regular file of mode 0600 or tighter (has " + mode + "; chmod 600 " + path + ")";
        ::close(fd);
        return nullptr;
    }
    // One fixed buffer, copied once into a string reserved to the exact size: growing a
    // string while reading would leave copies of the key in freed memory.
    char buf[4096];
    std::size_t used = 0;
    bool failed = false;
    for (;;) {
        ssize_t n = ::read(fd, buf + used, sizeof buf - used);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            failed = n < 0;
            break;
        }
        used += static_cast<std::size_t>(n);
        if (used == sizeof buf) break;
    }
    ::close(fd);
    std::shared_ptr<SigningKey> key;
    if (failed) *error = "cannot read " + path;
    else if (used == sizeof buf) *error = path + " is longer than 4095 bytes";
    else {
        if (used > 0 && buf[used - 1] == '\n') --used;
        if (used < kMinSize) {
            *error = path + " holds fewer than 16 bytes";
        } else {
            key = std::make_shared<SigningKey>();
            key->bytes_.reserve(used);
            key->bytes_.assign(buf, used);
        }
    }
    OPENSSL_cleanse(buf, sizeof buf);
    return key;
}

}  // namespace xproxy::proxyd
