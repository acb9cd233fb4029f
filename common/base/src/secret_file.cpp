// secret_file.cpp: see secret_file.hpp.
#include <xproxy/base/secret_file.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace xproxy {

bool read_secret_file(const std::string& path, std::size_t min_size, SecretBytes& out, std::string& error) {
    if (min_size == 0) min_size = 1;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        error = "cannot open " + path + ": " + std::strerror(errno);
        return false;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        error = path + " must be a regular file of mode 0600 or tighter (has " + mode + "; chmod 600 " + path + ")";
        ::close(fd);
        return false;
    }
    // One fixed buffer, copied once into the destination: growing a string while reading
    // would leave copies of the key in freed memory.
    char buf[4096];
    std::size_t used = 0;
    int read_errno = 0;
    for (;;) {
        const ssize_t n = ::read(fd, buf + used, sizeof buf - used);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) read_errno = errno;
        if (n <= 0) break;
        used += static_cast<std::size_t>(n);
        if (used == sizeof buf) break;
    }
    ::close(fd);
    bool ok = false;
    if (read_errno != 0) {
        error = "cannot read " + path + ": " + std::strerror(read_errno);
    } else if (used == sizeof buf) {
        error = path + " is longer than 4095 bytes";
    } else {
        if (used > 0 && buf[used - 1] == '\n') --used;
        if (used == 0) error = path + " is empty";
        else if (used < min_size) error = path + " holds fewer than " + std::to_string(min_size) + " bytes";
        else ok = true;
    }
    if (ok) out.assign(buf, used);
    OPENSSL_cleanse(buf, sizeof buf);
    return ok;
}

}  // namespace xproxy
