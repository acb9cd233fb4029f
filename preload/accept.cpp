// accept.cpp: the accept path of a managed TCP listener.
//
// The shim calls libc's accept4() itself, with the caller's flags, and then:
//   - an untrusted peer is returned at once, exactly as libc returned it: its bytes,
//     PROXY-looking or not, are the application's data;
//   - a trusted peer's header is read (header_reader.hpp, MSG_DONTWAIT: the socket's own
//     mode does not matter). It usually arrives with the connection; if not, the shim
//     waits for it briefly, but only while no other connection waits on the listener,
//     then hands the connection to the completer thread (close-on-exec while it is ours)
//     and goes on with the next one. So a silent peer never delays another.
// The fast path (no late header pending on this listener) costs two system calls on top
// of libc's accept4: a peek and the read of the header.
// While headers are pending, a blocking accept() waits in poll() on the listener and the
// listener's event pipe, which the completer signals; a non-blocking accept() returns
// EAGAIN when nothing is complete, and the completer wakes the event loop (waker.hpp).
// Threads sitting inside libc's accept4() are counted so the completer can wake them.
#include "accept.hpp"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>

#include "completer.hpp"
#include "fd_table.hpp"
#include "handoff.hpp"
#include "header_reader.hpp"
#include "log.hpp"
#include "waker.hpp"

namespace xproxy::preload {

namespace {

// How long accept() waits for a header that did not arrive with its connection, while no
// other connection is waiting. Shorter for an event loop, which serves other sockets.
constexpr int kFirstWaitBlockingMs = 10;
constexpr int kFirstWaitEventLoopMs = 2;

struct SockName {
    int family = AF_UNSPEC;
    std::optional<Endpoint> endpoint;  // AF_INET/AF_INET6 only
};

SockName sock_name(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    SockName out;
    if (real().getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return out;
    out.family = ss.ss_family;
    if (out.family == AF_INET || out.family == AF_INET6)
        out.endpoint = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    return out;
}

void copy_out(const sockaddr_storage& ss, socklen_t full, sockaddr* addr, socklen_t* len) {
    if (!addr || !len) return;
    std::memcpy(addr, &ss, *len < full ? *len : full);
    *len = full;
}

// Gives a connection that was accepted by an earlier call (or in another process) exactly
// the flags this caller asked for.
void apply_flags(int fd, int flags) {
    int fl = real().fcntl(fd, F_GETFL);
    if (fl >= 0) real().fcntl(fd, F_SETFL, (flags & SOCK_NONBLOCK) ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
    real().fcntl(fd, F_SETFD, (flags & SOCK_CLOEXEC) ? FD_CLOEXEC : 0);
}

// Finishes an accept: records the mapping, fills the caller's buffer with the original
// client (in the listener's family: IPv4 on an IPv6 listener is v4-mapped). queued: the
// connection comes from the ready queue or a sibling, and needs the caller's flags.
int deliver(State& s, const ReadyConn& c, int family, sockaddr* addr, socklen_t* len, int flags, bool queued) {
    if (queued) {
        disown(c.fd);  // the application's from now on
        apply_flags(c.fd, flags);
    }
    const Endpoint& shown = c.client ? *c.client : c.upstream;
    bool recorded = true;
    {
        // A connection without a client (LOCAL, UNKNOWN, no header) must not inherit the
        // mapping of an earlier connection on this number that was closed unhooked.
        std::lock_guard<ShimMutex> lock(s.mu);
        if (c.client) recorded = set_mapping(c.fd, Mapping{c.upstream, *c.client, c.destination});
        else clear_mapping(c.fd);
    }
    if (!recorded) {  // getpeername() could not name the client: never let it name the upstream
        log_line(kError, "event=dropped fd=%d reason=\"descriptor number too large to record\"", c.fd);
        real().close(c.fd);
        errno = ECONNABORTED;
        return -1;
    }
    if (c.client) {
        if (log_enabled(kInfo))
            log_line(kInfo, "event=proxied fd=%d upstream=%s client=%s", c.fd, c.upstream.to_string().c_str(),
                     c.client->to_string().c_str());
    } else if (log_enabled(kDebug)) {
        log_line(kDebug, "event=local fd=%d upstream=%s", c.fd, c.upstream.to_string().c_str());
    }
    sockaddr_storage ss;
    socklen_t full = shown.to_sockaddr(ss, family == AF_INET6);
    copy_out(ss, full, addr, len);
    return c.fd;
}

// The next ready connection whose number is still ours (one the application took over
// behind our back is forgotten, never returned as a new connection).
bool pop_ready(ListenerState& ls, ReadyConn& out) {
    while (!ls.ready.empty()) {
        out = std::move(ls.ready.front());
        ls.ready.pop_front();
        if (is_own_fd(out.fd)) return true;
        disown(out.fd);
        out.fd = -1;
    }
    return false;
}

ReadResult wait_briefly(int fd, int lfd, const Config& cfg, int wait_ms) {
    ReadResult r;
    std::int64_t deadline = now_ms() + wait_ms;
    for (;;) {
        std::int64_t left = deadline - now_ms();
        if (left <= 0) return r;
        pollfd p[2] = {{fd, POLLIN | POLLRDHUP, 0}, {lfd, POLLIN, 0}};
        if (poll(p, 2, static_cast<int>(left)) <= 0) return r;
        if (p[0].revents) {
            r = read_header(fd, cfg);
            if (r.status == ReadStatus::need_more && (p[0].revents & (POLLHUP | POLLERR | POLLRDHUP))) {
                r.status = ReadStatus::drop;
                r.reason = "connection closed before a complete PROXY header";
            }
            // Complete, dropped, or still partial: a partial one goes to the completer,
            // which waits for further bytes edge-triggered instead of spinning on a peek.
            return r;
        }
        if (p[1].revents) return r;  // another connection waits: hand this one over
    }
}

// poll() is never restarted after a signal handler, while libc's accept() is when the
// handler has SA_RESTART. A signal can only have interrupted us through a handler, so if
// every installed handler has SA_RESTART the wait is restarted; otherwise EINTR.
bool interrupt_like_libc() {
    for (int sig = 1; sig < NSIG; ++sig) {
        struct sigaction sa {};
        // Fault signals (whose handlers crash reporters and sanitizers install) do not
        // interrupt a wait.
        if (sig == SIGKILL || sig == SIGSTOP || sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL ||
            sig == SIGTRAP || sig == SIGSYS || sigaction(sig, nullptr, &sa) != 0)
            continue;
        bool handler = (sa.sa_flags & SA_SIGINFO) ? sa.sa_sigaction != nullptr
                                                  : sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN;
        if (handler && !(sa.sa_flags & SA_RESTART)) return true;
    }
    return false;
}

enum class Wait { ready, accept, interrupted };

bool has_pending(const State& s, int lfd) {
    auto it = s.listeners.find(lfd);
    return it != s.listeners.end() && it->second.pending > 0;  // counted: no scan per accept
}

bool listener_nonblocking(int lfd) {
    int fl = real().fcntl(lfd, F_GETFL);
    return fl >= 0 && (fl & O_NONBLOCK);
}

// Blocking listener with nothing ready: poll the listener and the event pipe. Returns
// accept when the listener is readable (the caller is then counted in_kernel_accept).
Wait wait_blocking(State& s, int lfd, int efd) {
    pollfd p[2] = {{lfd, POLLIN, 0}, {efd, POLLIN, 0}};
    int n = poll(p, efd >= 0 ? 2 : 1, -1);
    int err = errno;
    std::lock_guard<ShimMutex> lock(s.mu);
    auto it = s.listeners.find(lfd);
    if (it == s.listeners.end()) return Wait::accept;  // closed meanwhile: libc says EBADF
    ListenerState& ls = it->second;
    --ls.pollers;
    if (efd >= 0 && (p[1].revents & POLLIN) && ls.event_rd.fd == efd && still_ours(ls.event_rd)) {
        char drain[64];
        while (read(efd, drain, sizeof drain) > 0) {
        }
    }
    if (!ls.ready.empty()) return Wait::ready;
    if (n < 0 && err == EINTR) return interrupt_like_libc() ? Wait::interrupted : Wait::ready;
    if (n <= 0 || !(p[0].revents & (POLLIN | POLLERR | POLLHUP))) return Wait::ready;  // look again
    ++ls.in_kernel_accept;
    return Wait::accept;
}

// Headers are pending on this listener: a blocking caller must not sit in libc's
// accept4() where a completed header cannot reach it, so it polls (caller holds no lock).
Wait wait_for_listener(State& s, int lfd) {
    bool nonblocking = listener_nonblocking(lfd);
    int efd;
    {
        std::lock_guard<ShimMutex> lock(s.mu);
        auto it = s.listeners.find(lfd);
        if (it == s.listeners.end()) return Wait::accept;
        ListenerState& ls = it->second;
        ls.nonblocking = nonblocking;
        if (!ls.ready.empty()) return Wait::ready;
        if (nonblocking) {
            ++ls.in_kernel_accept;
            return Wait::accept;
        }
        // Created before poll(), so that a header completing from now on always wakes us.
        // A pipe, not an eventfd: its inode is its own, so a number the application took
        // over (dup2, a raw close) is recognised and never written to (waker.cpp).
        if (!still_ours(ls.event_rd) || !still_ours(ls.event_wr)) {
            close_own(ls.event_rd);
            close_own(ls.event_wr);
            int p[2];
            if (pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0) {
                ls.event_rd = adopt(p[0]);
                ls.event_wr = adopt(p[1]);
                if (ls.event_rd.fd < 0 || ls.event_wr.fd < 0) {  // beyond the table: poll without it
                    for (int i : {0, 1}) {
                        disown(p[i]);
                        real().close(p[i]);
                    }
                    ls.event_rd = ls.event_wr = Own{};
                }
            }
        }
        efd = ls.event_rd.fd;
        ++ls.pollers;
    }
    return wait_blocking(s, lfd, efd);
}

void left_kernel_accept(State& s, int lfd) {
    std::lock_guard<ShimMutex> lock(s.mu);
    auto it = s.listeners.find(lfd);
    if (it != s.listeners.end() && it->second.in_kernel_accept > 0) --it->second.in_kernel_accept;
}

// An IPv6 peer at the listener's own address or ::1 that sent the wake-up magic: a
// sibling process's wake-up connection to an IPv6-only listener.
bool sibling_wake_v6(int fd, const Endpoint& peer, const Endpoint& listener) {
    static const std::uint8_t v6_loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return peer.addr.is_v6() && (peer.addr == listener.addr || peer.addr == IpAddress::v6_bytes(v6_loopback)) &&
           peek_wake_magic(fd);
}

}  // namespace


int do_accept(int lfd, sockaddr* addr, socklen_t* len, int flags) {
    State& s = state();
    const Config& cfg = s.config;
    if (!cfg.active() || (addr && !len)) return real().accept4(lfd, addr, len, flags);
    // A signal handler that interrupted the shim in this thread cannot take its lock; it
    // gets EINTR rather than a connection whose header was never read.
    if (ShimMutex::held_by_this_thread()) {
        errno = EINTR;
        return -1;
    }
    // A number accept() returns is a new connection: nothing recorded about it holds.
    auto fresh = [](int fd) {
        if (fd >= 0) touch_fd(fd);
        return fd;
    };
    // A managed listener is remembered until close(), close_range() or closefrom() of its
    // descriptor (all three are hooked).
    Endpoint where;
    int family = AF_UNSPEC;
    {
        std::lock_guard<ShimMutex> lock(s.mu);
        if (auto it = s.listeners.find(lfd); it != s.listeners.end() && it->second.gen == fd_gen(lfd)) {
            where = it->second.address;
            family = it->second.family;
        }
    }
    bool relearn = family == AF_UNSPEC;
    for (;;) {
        if (relearn) {
            SockName n = sock_name(lfd);
            if (!n.endpoint || !cfg.manages_port(n.endpoint->port)) {
                {
                    std::lock_guard<ShimMutex> lock(s.mu);
                    forget_listener(s, lfd);
                }
                return fresh(real().accept4(lfd, addr, len, flags));  // not managed
            }
            track_fd(lfd);  // its close through a hook must be seen (generation)
            std::lock_guard<ShimMutex> lock(s.mu);
            auto [it, added] = s.listeners.try_emplace(lfd);
            if (!added && (it->second.address != *n.endpoint || it->second.family != n.family ||
                           it->second.gen != fd_gen(lfd))) {
                forget_listener(s, lfd);  // closed or replaced since it was learnt
                it = s.listeners.try_emplace(lfd).first;
            }
            it->second.gen = fd_gen(lfd);
            it->second.address = where = *n.endpoint;
            it->second.family = family = n.family;
            relearn = false;
        }
        ReadyConn ready;
        bool pending = false;
        {
            std::lock_guard<ShimMutex> lock(s.mu);
            auto it = s.listeners.find(lfd);
            if (it == s.listeners.end() || it->second.gen != fd_gen(lfd)) {  // closed meanwhile
                relearn = true;
                continue;
            }
            if (!pop_ready(it->second, ready)) {
                pending = has_pending(s, lfd);
                if (!pending) ++it->second.in_kernel_accept;
            }
        }
        if (ready.fd >= 0) return deliver(s, ready, family, addr, len, flags, true);
        if (pending) {
            Wait w = wait_for_listener(s, lfd);
            if (w == Wait::ready) continue;
            if (w == Wait::interrupted) {
                errno = EINTR;
                return -1;
            }
        }
        sockaddr_storage ss{};
        socklen_t sl = sizeof ss;
        int fd = fresh(real().accept4(lfd, reinterpret_cast<sockaddr*>(&ss), &sl, flags));
        int err = errno;
        left_kernel_accept(s, lfd);
        if (fd < 0) {
            errno = err;
            return -1;
        }
        auto peer = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), sl);
        if (peer && is_wake_source(*peer)) {  // ours or a sibling process's wake-up
            bool ours;
            {
                std::lock_guard<ShimMutex> lock(s.mu);
                ours = consume_wake_token(s, *peer);
            }
            ReadyConn handed;
            bool taken = !ours && take_handoff(fd, lfd, *peer, handed);
            real().close(fd);
            if (taken) return deliver(s, handed, family, addr, len, flags, true);
            continue;
        }
        if (peer && peer->addr.is_v6()) {  // IPv6-only listeners: wake-ups from ::1
            std::lock_guard<ShimMutex> lock(s.mu);
            if (consume_wake_token(s, *peer)) {
                real().close(fd);
                continue;
            }
        }
        if (!peer || !cfg.trusted.contains(peer->addr)) {
            if (peer && sibling_wake_v6(fd, *peer, where)) {
                ReadyConn handed;
                bool taken = take_handoff(fd, lfd, *peer, handed);
                real().close(fd);
                if (taken) return deliver(s, handed, family, addr, len, flags, true);
                continue;
            }
            // Untrusted: what libc returned; its bytes are the application's.
            copy_out(ss, sl, addr, len);
            if (log_enabled(kDebug))
                log_line(kDebug, "event=untrusted fd=%d peer=%s", fd, peer ? peer->to_string().c_str() : "?");
            return fd;
        }
        ReadResult r = read_header(fd, cfg);
        bool nonblocking = false;
        if (r.status == ReadStatus::need_more) {
            nonblocking = listener_nonblocking(lfd);
            r = wait_briefly(fd, lfd, cfg, nonblocking ? kFirstWaitEventLoopMs : kFirstWaitBlockingMs);
        }
        switch (r.status) {
        case ReadStatus::complete:
            return deliver(s, ReadyConn{fd, 0, *peer, r.client, r.destination}, family, addr, len,
                           flags, false);
        case ReadStatus::wake: {  // a sibling's wake-up to an IPv6-only listener, from a trusted ::1
            ReadyConn handed;
            bool taken = take_handoff(fd, lfd, *peer, handed);
            real().close(fd);
            if (taken) return deliver(s, handed, family, addr, len, flags, true);
            continue;
        }
        case ReadStatus::drop:
            if (!cfg.require) {
                log_line(kWarning, "event=passed upstream=%s reason=\"%.*s\" require=no", peer->to_string().c_str(),
                         static_cast<int>(r.reason.size()), r.reason.data());
                return deliver(s, ReadyConn{fd, 0, *peer, std::nullopt, std::nullopt}, family, addr,
                               len, flags, false);
            }
            log_line(kWarning, "event=dropped upstream=%s reason=\"%.*s\"%s%s%s", peer->to_string().c_str(),
                     static_cast<int>(r.reason.size()), r.reason.data(), r.first_bytes.empty() ? "" : " first_bytes=\"",
                     r.first_bytes.c_str(), r.first_bytes.empty() ? "" : "\"");
            real().close(fd);
            continue;
        case ReadStatus::need_more: {
            real().fcntl(fd, F_SETFD, FD_CLOEXEC);  // ours until delivered: never into an exec'd child
            std::lock_guard<ShimMutex> lock(s.mu);
            if (auto it = s.listeners.find(lfd); it != s.listeners.end()) it->second.nonblocking = nonblocking;
            completer_add(s, PendingConn{fd, lfd, *peer, now_ms() + cfg.timeout_ms});
            continue;
        }
        }
    }
}

}  // namespace xproxy::preload
