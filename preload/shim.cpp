// shim.cpp: libxproxy-preload.so's libc entry points and its constructor.
//
// accept/accept4 -> accept.cpp. getpeername/getsockname report the original client (and,
// with XPROXY_GETSOCKNAME=1, the header's destination) after checking that the kernel
// still names the upstream that sent the header, so an fd reused behind our back (fclose,
// a raw system call) never inherits a stale source. close/dup/dup2/dup3/fcntl(F_DUPFD*) keep the
// fd table in step; close() of one of the shim's own descriptors is refused silently.
// close() and the dup family are async-signal-safe, as libc's are: no lock, no heap
// (fd_table.hpp); only a dup of a proxied connection takes the lock to copy its mapping.
// Every entry point catches everything: no exception crosses the C ABI. Sockets the shim
// does not manage take the same path through libc as without it. close_range() and
// closefrom() are hooked too (daemons close every descriptor at start): they forget what
// they close and leave the shim's own descriptors open.
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <dirent.h>

#include <algorithm>
#include <climits>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <vector>

#include <xproxy/base/text.hpp>

#include "accept.hpp"
#include "completer.hpp"
#include "fd_table.hpp"
#include "log.hpp"
#include "state.hpp"

#define XPROXY_EXPORT extern "C" __attribute__((visibility("default")))

namespace xproxy::preload {
namespace {

struct Checked {
    Mapping mapping;
    int family = AF_UNSPEC;
};

// The mapping of fd if the kernel still names as its peer the upstream (address and port)
// recorded at accept time; a mismatch means the fd was reused without our close(): forget
// it.
// busy: a signal handler that interrupted the shim in this thread asks; the mapping
// cannot be read without waiting for ourselves.
std::optional<Checked> valid_mapping(int fd, bool& busy) {
    State& s = state();
    Checked c;
    if (!may_have_mapping(fd)) return std::nullopt;
    busy = s.mu.held_by_this_thread();
    if (busy) return std::nullopt;
    {
        std::lock_guard<ShimMutex> lock(s.mu);
        auto m = get_mapping(fd);
        if (!m) return std::nullopt;
        c.mapping = *m;
    }
    sockaddr_storage peer{};
    socklen_t pl = sizeof peer;
    if (real().getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) == 0) {
        auto p = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&peer), pl);
        if (p && *p == c.mapping.upstream) {
            c.family = peer.ss_family;  // the socket's own family
            return c;
        }
    }
    std::lock_guard<ShimMutex> lock(s.mu);
    if (auto m = get_mapping(fd); m && m->upstream == c.mapping.upstream) {
        clear_mapping(fd);
        log_line(kInfo, "event=stale_mapping fd=%d upstream=%s", fd, c.mapping.upstream.to_string().c_str());
    }
    return std::nullopt;
}

// Copies ep in the socket's family (IPv4 on an IPv6 socket becomes v4-mapped), truncated
// to *len; *len becomes the true length.
int fill_addr(const Endpoint& ep, int family, sockaddr* addr, socklen_t* len) {
    if (!addr || !len) {
        errno = EFAULT;
        return -1;
    }
    sockaddr_storage ss;
    socklen_t full = ep.to_sockaddr(ss, family == AF_INET6);
    std::memcpy(addr, &ss, *len < full ? *len : full);
    *len = full;
    return 0;
}

// After a dup of from onto to. Async-signal-safe: what was recorded about to (a mapping,
// a listener, one of our descriptors) is stale from now on (lock-free); only when from
// is a proxied connection is the lock taken to copy its mapping, never by a signal handler
// that interrupted the shim in this thread (the copy is then skipped: getpeername()
// reports the upstream) and never allocating.
void copy_mapping(int from, int to) {
    touch_fd(to);
    if (!may_have_mapping(from)) return;
    State& s = state();
    if (s.mu.held_by_this_thread()) return;
    std::lock_guard<ShimMutex> lock(s.mu);
    copy_mapping_slot(from, to);
}

int do_fcntl(int fd, int cmd, unsigned long arg) {
    int n = real().fcntl(fd, cmd, arg);
    if (n >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)) copy_mapping(fd, n);
    return n;
}

// close_range() minus the shim's own descriptors; forgets mappings and listeners in range.
int do_close_range(unsigned first, unsigned last, int flags) {
    std::vector<int> keep;
    if (!(static_cast<unsigned>(flags) & CLOSE_RANGE_CLOEXEC)) {
        State& s = state();
        std::lock_guard<ShimMutex> lock(s.mu);
        auto in_range = [&](int fd) {
            return fd >= 0 && static_cast<unsigned>(fd) >= first && static_cast<unsigned>(fd) <= last;
        };
        clear_mappings_in(first, last);
        std::vector<int> listeners;
        for (const auto& [lfd, ls] : s.listeners)
            if (in_range(lfd)) listeners.push_back(lfd);
        for (int lfd : listeners) forget_listener(s, lfd);
        keep = internal_fds(s);
        for (int fd : {log_fd_number()})
            if (fd >= 0) keep.push_back(fd);
        std::sort(keep.begin(), keep.end());
        keep.erase(std::unique(keep.begin(), keep.end()), keep.end());
        // Only numbers that are still ours: one the application took over is its to close.
        keep.erase(std::remove_if(keep.begin(), keep.end(),
                                  [&](int fd) { return !in_range(fd) || !(is_own_fd(fd) || is_log_fd(fd)); }),
                   keep.end());
    }
    unsigned from = first;
    int rc = 0;
    for (int fd : keep) {  // close the gaps between the descriptors we keep
        if (static_cast<unsigned>(fd) > from)
            rc |= static_cast<int>(syscall(SYS_close_range, from, static_cast<unsigned>(fd) - 1, flags));
        from = static_cast<unsigned>(fd) + 1;
        if (from == 0) return rc;  // fd was UINT_MAX
    }
    if (from <= last) rc |= static_cast<int>(syscall(SYS_close_range, from, last, flags));
    return rc < 0 ? -1 : 0;
}

const char* env_lookup(const char* name) { return std::getenv(name); }

__attribute__((constructor)) void init() {
    try {
        State& s = state();
        real();
        s.config = load_config(env_lookup);
        if (!s.config.active()) s.config.hmac_key.wipe();  // inert: no reason to keep the key
        open_log(s.config);
        register_atfork();
        for (const auto& e : s.config.errors)
            log_line(kError, "event=config_error error=\"%s\" (the shim is inert)", e.c_str());
        if (s.config.errors.empty() && s.config.trusted.empty())
            log_line(kWarning, "event=inert reason=\"XPROXY_TRUSTED is not set: no upstream is trusted\"");
        else if (s.config.active())
            log_line(kDebug, "event=start trusted=\"%s\" require=%d timeout_ms=%d",
                     s.config.trusted.to_string().c_str(), s.config.require ? 1 : 0, s.config.timeout_ms);
    } catch (...) {
        state().config = Config{};  // inert
    }
}

}  // namespace
}  // namespace xproxy::preload

using namespace xproxy::preload;

XPROXY_EXPORT int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
    try {
        return do_accept(fd, addr, len, flags);
    } catch (...) {
        errno = ENOMEM;
        return -1;
    }
}

XPROXY_EXPORT int accept(int fd, sockaddr* addr, socklen_t* len) {
    try {
        return do_accept(fd, addr, len, 0);
    } catch (...) {
        errno = ENOMEM;
        return -1;
    }
}

// A proxied connection whose mapping cannot be read (signal handler inside the shim)
// fails with ENOBUFS rather than name the upstream as the client.
XPROXY_EXPORT int getpeername(int fd, sockaddr* addr, socklen_t* len) {
    bool busy = false;
    try {
        if (auto c = valid_mapping(fd, busy)) return fill_addr(c->mapping.client, c->family, addr, len);
    } catch (...) {
    }
    if (busy) {
        errno = ENOBUFS;
        return -1;
    }
    return real().getpeername(fd, addr, len);
}

XPROXY_EXPORT int getsockname(int fd, sockaddr* addr, socklen_t* len) {
    try {
        bool busy = false;
        if (state().config.getsockname_destination) {
            if (auto c = valid_mapping(fd, busy); c && c->mapping.destination)
                return fill_addr(*c->mapping.destination, c->family, addr, len);
            if (busy) {
                errno = ENOBUFS;
                return -1;
            }
        }
    } catch (...) {
    }
    return real().getsockname(fd, addr, len);
}

// Async-signal-safe: no lock, no allocation. The shim's own descriptors (identity
// checked) stay open; anything recorded about the number is stale from now on (a closed
// listener's queue is swept by the completer or the next accept on the number).
XPROXY_EXPORT int close(int fd) {
    if (fd >= 0 && (is_own_fd(fd) || is_log_fd(fd))) return 0;  // ours, never the application's
    touch_fd(fd);
    return real().close(fd);
}

XPROXY_EXPORT int dup(int fd) {
    int n = real().dup(fd);
    if (n >= 0) copy_mapping(fd, n);
    return n;
}

XPROXY_EXPORT int dup2(int fd, int fd2) {
    int n = real().dup2(fd, fd2);
    if (n >= 0 && fd != fd2) copy_mapping(fd, n);
    return n;
}

XPROXY_EXPORT int dup3(int fd, int fd2, int flags) {
    int n = real().dup3(fd, fd2, flags);
    if (n >= 0) copy_mapping(fd, n);
    return n;
}

// Every fcntl argument (int, long or pointer) travels in one register-sized slot.
XPROXY_EXPORT int fcntl(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    unsigned long arg = va_arg(ap, unsigned long);
    va_end(ap);
    return do_fcntl(fd, cmd, arg);
}

// glibc 2.28+ programs built with _FILE_OFFSET_BITS=64 call fcntl64.
XPROXY_EXPORT int fcntl64(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    unsigned long arg = va_arg(ap, unsigned long);
    va_end(ap);
    return do_fcntl(fd, cmd, arg);
}

XPROXY_EXPORT int close_range(unsigned first, unsigned last, int flags) {
    try {
        return do_close_range(first, last, flags);
    } catch (...) {
        errno = ENOMEM;
        return -1;
    }
}

// glibc's closefrom() calls the close_range system call directly: hooked for the same
// reasons. Without close_range (old kernels), descriptors are closed one by one.
XPROXY_EXPORT void closefrom(int lowfd) {
    if (lowfd < 0) lowfd = 0;
    try {
        if (do_close_range(static_cast<unsigned>(lowfd), ~0U, 0) == 0 || errno != ENOSYS) return;
    } catch (...) {
    }
    if (DIR* d = opendir("/proc/self/fd")) {
        std::vector<int> fds;
        while (dirent* e = readdir(d)) {
            const auto fd = xproxy::parse_decimal<unsigned>(e->d_name, INT_MAX);  // "." and ".." are not numbers
            if (fd && static_cast<int>(*fd) >= lowfd && static_cast<int>(*fd) != dirfd(d))
                fds.push_back(static_cast<int>(*fd));
        }
        closedir(d);
        for (int fd : fds) close(fd);
    }
}
