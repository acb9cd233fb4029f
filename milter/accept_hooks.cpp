// accept_hooks.cpp: the peer check and immediate ACKs on libmilter's TCP connections.
//
// Peer check: a TCP connection from an address outside --allow-peers is closed right
// after accept() and reported to libmilter as ECONNABORTED, which libmilter's listener
// skips (it keeps accepting); the refused peer never reaches a callback, so it can never
// obtain a signature (see accept_hooks.hpp).
//
// Postfix writes a macro packet and the command it belongs to as two small segments and
// does not set TCP_NODELAY, so Nagle's algorithm holds the command back until the macro
// packet is acknowledged, and the kernel delays that ACK (about 40 ms) because the filter
// sends nothing back for a macro packet: one stall per command with macros, i.e. several
// per message (measured: 22 messages/s over TCP against 418 over a unix socket, one
// session at a time). TCP_QUICKACK makes the receiver acknowledge at once, but the kernel
// clears it again, so it must be set after every read, and libmilter offers no hook.
//
// So this file, linked into the xproxy-milter executable only, interposes the two libc
// functions libmilter uses for that (the executable's definitions win over libc's for
// libmilter's references): accept() marks each accepted TCP connection and sets
// TCP_NODELAY on it; read() sets TCP_QUICKACK again after data arrived on a marked
// descriptor. Both keep libc's contract (same arguments, same result and errno, except
// for a refused peer); nothing changes for other descriptors. A mark left on a descriptor
// number that is later reused for something else only costs a setsockopt that fails with
// ENOTSOCK (errno is restored).
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <string>

#include "accept_hooks.hpp"
#include <xproxy/daemon/access.hpp>
#include <xproxy/daemon/log.hpp>

namespace {

std::atomic<const xproxy::CidrSet*> g_allow{nullptr};

constexpr int kMaxFd = 65536;
std::atomic<unsigned char> g_tcp[kMaxFd];

using read_fn = ssize_t (*)(int, void*, size_t);

read_fn real_read() {
    static read_fn fn = reinterpret_cast<read_fn>(dlsym(RTLD_NEXT, "read"));
    return fn;
}

void quickack(int fd) {
    int saved = errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    errno = saved;
}

}  // namespace

namespace xproxy::milter {

void set_peer_allow_list(const CidrSet* allow) { g_allow.store(allow, std::memory_order_release); }

int screen_accepted(int c, std::atomic<unsigned char>* marks, int nmarks) {
    if (c < 0) return c;
    int saved = errno;
    const bool tcp = daemon::is_inet_socket(c);
    if (tcp) {
        // An empty or unset list refuses everyone: main() refuses to start a TCP listener
        // without one, so this is only the last line of defence.
        static const CidrSet kNobody;
        const CidrSet* allow = g_allow.load(std::memory_order_acquire);
        std::string peer;
        if (!daemon::peer_allowed(c, allow ? *allow : kNobody, &peer)) {
            log::warning("event=peer_refused peer=%s reason=\"not in --allow-peers\"", peer.c_str());
            close(c);
            errno = ECONNABORTED;
            return -1;
        }
        int one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(c, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    }
    // The mark table only serves read()'s TCP_QUICKACK: a descriptor beyond it is served
    // without that, but it was peer-checked above like any other.
    if (c < nmarks) marks[c].store(tcp ? 1 : 0, std::memory_order_relaxed);
    errno = saved;
    return c;
}

}  // namespace xproxy::milter

extern "C" {

__attribute__((visibility("default"))) int accept(int fd, sockaddr* addr, socklen_t* len) {
    return xproxy::milter::screen_accepted(accept4(fd, addr, len, 0), g_tcp, kMaxFd);
}

__attribute__((visibility("default"))) ssize_t read(int fd, void* buf, size_t n) {
    read_fn fn = real_read();
    if (!fn) {
        errno = ENOSYS;
        return -1;
    }
    ssize_t r = fn(fd, buf, n);
    if (r > 0 && fd >= 0 && fd < kMaxFd && g_tcp[fd].load(std::memory_order_relaxed)) quickack(fd);
    return r;
}

}  // extern "C"
