// shim.cpp: libxproxy-preload.so's libc entry points.
//
// accept/accept4 on a managed TCP listener: connections from trusted upstreams must start
// with a PROXY v1/v2 header; the shim reads exactly that header (never a byte more) and
// returns the connection with the original client as its peer address. Connections whose
// header is not complete yet go to the completer thread, so one silent peer never delays
// another. Untrusted peers, AF_UNIX and unmanaged sockets are passed through untouched.
// getpeername/getsockname report the mapped endpoints after checking the kernel's real
// peer still is the upstream that sent the header (no stale mapping after an fd is reused
// behind our back). close/dup*/fcntl(F_DUPFD*) keep the fd table in step.
// Every entry point catches everything: no exception crosses the C ABI.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdlib>
#include <cstring>

#include "state.hpp"

#define XPROXY_EXPORT extern "C" __attribute__((visibility("default")))

namespace xproxy::preload {

void register_atfork();

namespace {

std::optional<Endpoint> sock_endpoint(int fd, bool peer) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int rc = peer ? real().getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
                  : real().getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    if (rc != 0) return std::nullopt;
    return Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

int sock_family(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (real().getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return -1;
    return ss.ss_family;
}

// Copies ep into the caller's buffer with the family of the socket (IPv4 on an IPv6
// socket becomes v4-mapped), truncating to *len and reporting the true length.
void fill_addr(const Endpoint& ep, int family, sockaddr* addr, socklen_t* len) {
    if (!addr || !len) return;
    sockaddr_storage ss;
    unsigned full = ep.to_sockaddr(ss, family == AF_INET6);
    std::memcpy(addr, &ss, *len < full ? *len : full);
    *len = full;
}

// The mapping of fd if the kernel still says its peer is the upstream that sent the
// header; a mismatch means the fd was reused without our close(): forget it.
std::optional<Mapping> valid_mapping(int fd) {
    State& s = state();
    Mapping m;
    {
        std::lock_guard<std::mutex> lock(s.mu);
        auto it = s.mappings.find(fd);
        if (it == s.mappings.end()) return std::nullopt;
        m = it->second;
    }
    auto peer = sock_endpoint(fd, true);
    auto local = sock_endpoint(fd, false);
    if (peer && local && *peer == m.upstream && *local == m.local) return m;
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.mappings.find(fd);
    if (it != s.mappings.end() && it->second.upstream == m.upstream && it->second.local == m.local) {
        s.mappings.erase(it);
        log_line(3, "event=stale_mapping fd=%d", fd);
    }
    return std::nullopt;
}

void copy_mapping(int from, int to) {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mu);
    s.mappings.erase(to);
    auto it = s.mappings.find(from);
    if (it != s.mappings.end()) {
        Mapping m = it->second;
        s.mappings[to] = m;
    }
}

// Finishes an accept: records the mapping, restores the flags the caller asked for and
// fills its address buffer.
int deliver(const ReadyConn& c, int family, sockaddr* addr, socklen_t* len, int flags) {
    if (!(flags & SOCK_NONBLOCK)) {
        int fl = real().fcntl(c.fd, F_GETFL);
        if (fl >= 0) real().fcntl(c.fd, F_SETFL, fl & ~O_NONBLOCK);
    }
    if (flags & SOCK_CLOEXEC) real().fcntl(c.fd, F_SETFD, FD_CLOEXEC);
    State& s = state();
    if (c.client) {
        {
            std::lock_guard<std::mutex> lock(s.mu);
            s.mappings[c.fd] = Mapping{c.upstream, c.local, *c.client, c.destination};
        }
        log_line(2, "event=proxied fd=%d upstream=%s client=%s", c.fd, c.upstream.to_string().c_str(),
                 c.client->to_string().c_str());
        fill_addr(*c.client, family, addr, len);
    } else {
        log_line(3, "event=local fd=%d upstream=%s", c.fd, c.upstream.to_string().c_str());
        fill_addr(c.upstream, family, addr, len);
    }
    return c.fd;
}

bool pop_ready(int lfd, ReadyConn& out) {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.listeners.find(lfd);
    if (it == s.listeners.end() || it->second.ready.empty()) return false;
    out = it->second.ready.front();
    it->second.ready.pop_front();
    return true;
}

// Is this freshly accepted connection one of our own wake-up connections? Then close it.
bool consume_wake_token(int lfd, const Endpoint& peer) {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.listeners.find(lfd);
    if (it == s.listeners.end()) return false;
    auto& ls = it->second;
    for (std::size_t i = 0; i < ls.wake_tokens.size(); ++i) {
        if (ls.wake_tokens[i] == peer) {
            real().close(ls.wake_fds[i]);
            ls.wake_tokens.erase(ls.wake_tokens.begin() + static_cast<long>(i));
            ls.wake_fds.erase(ls.wake_fds.begin() + static_cast<long>(i));
            return true;
        }
    }
    return false;
}

// Blocking listener: wait until the listener is readable or a pending header completed.
// Returns true when the listener is readable (accept will not block for long).
bool wait_blocking(int lfd) {
    State& s = state();
    int efd;
    {
        std::lock_guard<std::mutex> lock(s.mu);
        efd = s.listeners[lfd].event_fd;
    }
    pollfd p[2] = {{lfd, POLLIN, 0}, {efd, POLLIN, 0}};
    int n = poll(p, efd >= 0 ? 2 : 1, -1);
    if (n > 0 && efd >= 0 && (p[1].revents & POLLIN)) {
        std::uint64_t v;
        ssize_t ignored = read(efd, &v, sizeof v);
        (void)ignored;
    }
    return n > 0 && (p[0].revents & (POLLIN | POLLERR | POLLHUP));
}

// The header usually arrives a few microseconds after the connection is accepted. Wait
// for it up to kFirstWaitMs, but only while no other connection is waiting on the
// listener: a slow peer then costs others nothing, and the completer takes over.
constexpr int kFirstWaitMs = 10;

ReadResult wait_briefly(int fd, int lfd, const Config& cfg) {
    ReadResult r;
    std::int64_t deadline = now_ms() + kFirstWaitMs;
    for (;;) {
        std::int64_t left = deadline - now_ms();
        if (left <= 0) return r;
        pollfd p[2] = {{fd, POLLIN, 0}, {lfd, POLLIN, 0}};
        int n = poll(p, 2, static_cast<int>(left));
        if (n <= 0) return r;
        if (p[0].revents) {
            r = read_header(fd, cfg);
            if (r.status == ReadStatus::need_more && (p[0].revents & (POLLHUP | POLLERR | POLLRDHUP))) {
                r.status = ReadStatus::drop;
                r.reason = "connection closed before a complete PROXY header";
            }
            // Complete, dropped, or a partial header: a partial one goes to the completer,
            // which waits for further bytes edge-triggered instead of spinning on a peek.
            return r;
        }
        if (p[1].revents) return r;  // someone else is waiting: hand this one over
    }
}

int do_accept(int lfd, sockaddr* addr, socklen_t* len, int flags) {
    State& s = state();
    const Config& cfg = s.config;
    if (!cfg.active()) return real().accept4(lfd, addr, len, flags);
    auto local = sock_endpoint(lfd, false);
    if (!local || !cfg.manages_port(local->port)) return real().accept4(lfd, addr, len, flags);
    int family = sock_family(lfd);
    int lfl = real().fcntl(lfd, F_GETFL);
    bool nonblocking = lfl >= 0 && (lfl & O_NONBLOCK);
    {
        std::lock_guard<std::mutex> lock(s.mu);
        auto& ls = s.listeners[lfd];
        ls.address = *local;
        // Created before the first look at the ready queue, so that a header completing
        // between that look and poll() always wakes wait_blocking().
        if (!nonblocking && ls.event_fd < 0) ls.event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    }
    for (;;) {
        ReadyConn ready;
        if (pop_ready(lfd, ready)) return deliver(ready, family, addr, len, flags);
        if (!nonblocking && !wait_blocking(lfd)) continue;
        sockaddr_storage ss{};
        socklen_t sl = sizeof ss;
        int fd = real().accept4(lfd, reinterpret_cast<sockaddr*>(&ss), &sl, SOCK_NONBLOCK | (flags & SOCK_CLOEXEC));
        if (fd < 0) {
            if ((errno == EAGAIN || errno == EWOULDBLOCK) && !nonblocking) continue;
            return -1;
        }
        auto peer = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), sl);
        if (peer && consume_wake_token(lfd, *peer)) {
            real().close(fd);
            continue;
        }
        if (!peer || !cfg.trusted.contains(peer->addr)) {
            // Untrusted: exactly what accept would have returned; its bytes are data.
            if (!(flags & SOCK_NONBLOCK)) {
                int fl = real().fcntl(fd, F_GETFL);
                if (fl >= 0) real().fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
            }
            if (addr && len) {
                std::memcpy(addr, &ss, *len < sl ? *len : sl);
                *len = sl;
            }
            log_line(3, "event=untrusted fd=%d peer=%s", fd, peer ? peer->to_string().c_str() : "?");
            return fd;
        }
        auto conn_local = sock_endpoint(fd, false);
        ReadResult r = read_header(fd, cfg);
        if (r.status == ReadStatus::need_more) r = wait_briefly(fd, lfd, cfg);
        if (r.status == ReadStatus::wake) {  // a forked sibling's wake-up connection
            real().close(fd);
            continue;
        }
        if (r.status == ReadStatus::complete)
            return deliver(ReadyConn{fd, 0, *peer, conn_local.value_or(*local), r.client, r.destination}, family, addr, len,
                           flags);
        if (r.status == ReadStatus::drop) {
            if (!cfg.require) {
                log_line(1, "event=passed upstream=%s reason=\"%s\" require=no", peer->to_string().c_str(), r.reason);
                return deliver(ReadyConn{fd, 0, *peer, conn_local.value_or(*local), std::nullopt, std::nullopt}, family,
                               addr, len, flags);
            }
            log_line(1, "event=dropped upstream=%s reason=\"%s\"", peer->to_string().c_str(), r.reason);
            real().close(fd);
            continue;
        }
        std::lock_guard<std::mutex> lock(s.mu);
        completer_add(PendingConn{fd, lfd, nonblocking, *peer, conn_local.value_or(*local), now_ms() + cfg.timeout_ms});
    }
}

const char* env_lookup(const char* name) { return std::getenv(name); }

__attribute__((constructor)) void init() {
    State& s = state();
    s.config = load_config(env_lookup);
    open_log(s.config);
    register_atfork();
    for (const auto& e : s.config.errors) log_line(0, "event=config_error error=\"%s\" (shim inert)", e.c_str());
    if (s.config.errors.empty() && s.config.trusted.empty())
        log_line(1, "event=inert reason=\"XPROXY_TRUSTED is not set: no upstream is trusted\"");
    else if (s.config.active())
        log_line(3, "event=start trusted=\"%s\" require=%d timeout_ms=%d", s.config.trusted.to_string().c_str(),
                 s.config.require ? 1 : 0, s.config.timeout_ms);
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

XPROXY_EXPORT int getpeername(int fd, sockaddr* addr, socklen_t* len) {
    try {
        if (auto m = valid_mapping(fd)) {
            if (!addr || !len) {
                errno = EFAULT;
                return -1;
            }
            fill_addr(m->client, sock_family(fd), addr, len);
            return 0;
        }
    } catch (...) {
    }
    return real().getpeername(fd, addr, len);
}

XPROXY_EXPORT int getsockname(int fd, sockaddr* addr, socklen_t* len) {
    try {
        if (state().config.getsockname_destination) {
            if (auto m = valid_mapping(fd); m && m->destination) {
                if (!addr || !len) {
                    errno = EFAULT;
                    return -1;
                }
                fill_addr(*m->destination, sock_family(fd), addr, len);
                return 0;
            }
        }
    } catch (...) {
    }
    return real().getsockname(fd, addr, len);
}

XPROXY_EXPORT int close(int fd) {
    try {
        State& s = state();
        std::lock_guard<std::mutex> lock(s.mu);
        s.mappings.erase(fd);
        if (!s.listeners.empty()) forget_listener(fd);
    } catch (...) {
    }
    return real().close(fd);
}

XPROXY_EXPORT int dup(int fd) {
    int n = real().dup(fd);
    if (n >= 0) {
        try {
            copy_mapping(fd, n);
        } catch (...) {
        }
    }
    return n;
}

XPROXY_EXPORT int dup2(int fd, int fd2) {
    int n = real().dup2(fd, fd2);
    if (n >= 0 && fd != fd2) {
        try {
            copy_mapping(fd, n);
        } catch (...) {
        }
    }
    return n;
}

XPROXY_EXPORT int dup3(int fd, int fd2, int flags) {
    int n = real().dup3(fd, fd2, flags);
    if (n >= 0) {
        try {
            copy_mapping(fd, n);
        } catch (...) {
        }
    }
    return n;
}

namespace {
int do_fcntl(int fd, int cmd, unsigned long arg) {
    int n = real().fcntl(fd, cmd, arg);
    if (n >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)) {
        try {
            copy_mapping(fd, n);
        } catch (...) {
        }
    }
    return n;
}
}  // namespace

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
