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
#include <optional>
#include <utility>

#include "completer.hpp"
#include "fd_table.hpp"
#include "handoff.hpp"
#include "header_reader.hpp"
#include "log.hpp"
#include "waker.hpp"
#include <xproxy/base/invariant.hpp>
#include <xproxy/base/unique_fd.hpp>

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

// One call of accept()/accept4() on a managed listener.
struct AcceptCall {
    State& s;
    const Config& cfg;
    int lfd;
    sockaddr* addr;
    socklen_t* len;
    int flags;
    Endpoint where;          // where the listener is bound
    int family = AF_UNSPEC;  // the listener's family; AF_UNSPEC: learn the listener (again)
};

// What a step of the accept loop decided: a value is what accept() returns (a connection,
// or -1 with errno set); kNext: go on with the next connection.
using Outcome = std::optional<int>;
constexpr Outcome kNext = std::nullopt;

// A number accept() returns is a new connection: nothing recorded about it holds.
int fresh(int fd) {
    if (fd >= 0) touch_fd(fd);
    return fd;
}

// Finishes an accept: records the mapping, fills the caller's buffer with the original
// client (in the listener's family: IPv4 on an IPv6 listener is v4-mapped). queued: the
// connection comes from the ready queue or a sibling, and needs the caller's flags.
int deliver(const AcceptCall& call, const ReadyConn& c, bool queued) {
    if (queued) {
        disown(c.fd);  // the application's from now on
        apply_flags(c.fd, call.flags);
    }
    const Endpoint& shown = c.client ? *c.client : c.upstream;
    bool recorded = true;
    {
        // A connection without a client (LOCAL, UNKNOWN, no header) must not inherit the
        // mapping of an earlier connection on this number that was closed unhooked.
        std::lock_guard<ShimMutex> lock(call.s.mu);
        if (c.client) recorded = set_mapping(c.fd, Mapping{c.upstream, *c.client, c.destination});
        else clear_mapping(c.fd);
    }
    if (!recorded) {  // getpeername() could not name the client: never let it name the upstream
        log_line(kError, "event=dropped fd=%d reason=\"descriptor number too large to record\"", c.fd);
        real().close(c.fd);
        errno = ECONNABORTED;
        return -1;
    }
    if (log_enabled(kDebug)) {  // one line per connection: debug (info counts them, log.hpp)
        if (c.client)
            log_line(kDebug, "event=proxied fd=%d upstream=%s client=%s", c.fd, c.upstream.to_string().c_str(),
                     c.client->to_string().c_str());
        else log_line(kDebug, "event=local fd=%d upstream=%s", c.fd, c.upstream.to_string().c_str());
    }
    if (call.addr) {
        sockaddr_storage ss;
        socklen_t full = shown.to_sockaddr(ss, call.family == AF_INET6);
        copy_out(ss, full, call.addr, call.len);
    }
    return c.fd;
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
    Listener& ls = it->second;
    ls.stop_polling(efd, (p[1].revents & POLLIN) != 0);
    if (ls.has_ready()) return Wait::ready;
    if (n < 0 && err == EINTR) return interrupt_like_libc() ? Wait::interrupted : Wait::ready;
    if (n <= 0 || !(p[0].revents & (POLLIN | POLLERR | POLLHUP))) return Wait::ready;  // look again
    ls.entered_kernel_accept();
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
        Listener& ls = it->second;
        ls.set_nonblocking(nonblocking);
        if (ls.has_ready()) return Wait::ready;
        if (nonblocking) {
            ls.entered_kernel_accept();
            return Wait::accept;
        }
        efd = ls.start_polling();
    }
    return wait_blocking(s, lfd, efd);
}

void left_kernel_accept(State& s, int lfd) {
    std::lock_guard<ShimMutex> lock(s.mu);
    if (auto it = s.listeners.find(lfd); it != s.listeners.end()) it->second.left_kernel_accept();
}

// An IPv6 peer at the listener's own address or ::1 that sent the wake-up magic: a
// sibling process's wake-up connection to an IPv6-only listener.
bool sibling_wake_v6(int fd, const Endpoint& peer, const Endpoint& listener) {
    static const std::uint8_t v6_loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return peer.addr.is_v6() && (peer.addr == listener.addr || peer.addr == IpAddress::v6_bytes(v6_loopback)) &&
           peek_wake_magic(fd);
}

// Asks the kernel where the listener is bound; false (and forgotten) when it is not a
// managed AF_INET/AF_INET6 port.
bool learn_listener(AcceptCall& call) {
    State& s = call.s;
    SockName n = sock_name(call.lfd);
    if (!n.endpoint || !call.cfg.manages_port(n.endpoint->port)) {
        std::lock_guard<ShimMutex> lock(s.mu);
        forget_listener(s, call.lfd);
        return false;
    }
    track_fd(call.lfd);  // its close through a hook must be seen (generation)
    std::lock_guard<ShimMutex> lock(s.mu);
    auto it = s.listeners.find(call.lfd);
    if (it != s.listeners.end() && !it->second.same_as(*n.endpoint, n.family)) {
        forget_listener(s, call.lfd);  // closed or replaced since it was learnt
        it = s.listeners.end();
    }
    if (it == s.listeners.end()) s.listeners.try_emplace(call.lfd, call.lfd, *n.endpoint, n.family);
    call.where = *n.endpoint;
    call.family = n.family;
    return true;
}

enum class Queue { deliver, learn, look_again, interrupted, accept };

// The listener as learnt by an earlier accept(), if its number was not closed since (a
// managed listener is remembered until close(), close_range() or closefrom() of its
// descriptor, all three hooked; otherwise learn: ask the kernel). Then its ready queue;
// with headers pending on it, a blocking caller waits (wait_for_listener). accept: go into
// libc's accept4() (the caller is then counted in_kernel_accept). One lock for all of it.
Queue take_ready_or_wait(AcceptCall& call, ReadyConn& ready) {
    bool pending = false;
    {
        std::lock_guard<ShimMutex> lock(call.s.mu);
        auto it = call.s.listeners.find(call.lfd);
        if (it == call.s.listeners.end() || !it->second.current()) {  // not learnt, or closed meanwhile
            call.family = AF_UNSPEC;
            return Queue::learn;
        }
        if (call.family == AF_UNSPEC) {
            call.where = it->second.address();
            call.family = it->second.family();
        }
        if (it->second.pop_ready(ready)) return Queue::deliver;
        pending = it->second.has_pending();  // counted: no scan per accept
        if (!pending) it->second.entered_kernel_accept();
    }
    if (!pending) return Queue::accept;
    switch (wait_for_listener(call.s, call.lfd)) {
        case Wait::ready: return Queue::look_again;
        case Wait::interrupted: return Queue::interrupted;
        case Wait::accept: return Queue::accept;
    }
    XPROXY_UNREACHABLE();
}

bool consume_own_wake(State& s, const Endpoint& peer) {
    std::lock_guard<ShimMutex> lock(s.mu);
    return consume_wake_token(s, peer);
}

// A sibling process's wake-up: fetch the ready connection it announces (handoff.hpp).
// The wake-up connection itself is closed in any case.
Outcome take_from_sibling(const AcceptCall& call, UniqueFd wake, const Endpoint& peer) {
    ReadyConn handed;
    bool taken = take_handoff(wake.get(), call.lfd, peer, handed);
    wake.reset();
    if (!taken) return kNext;
    return deliver(call, handed, true);
}

// A trusted peer's header is invalid, unauthenticated or never came: passed on with the
// real endpoints (XPROXY_REQUIRE=0) or dropped.
Outcome refuse_header(const AcceptCall& call, UniqueFd conn, const Endpoint& peer, const ReadResult& r) {
    if (!call.cfg.require) {
        log_line(kWarning, "event=passed upstream=%s reason=\"%.*s\" require=no", peer.to_string().c_str(),
                 static_cast<int>(r.reason.size()), r.reason.data());
        int fd = deliver(call, ReadyConn{conn.release(), 0, peer, std::nullopt, std::nullopt}, false);
        tally(fd >= 0 ? Tally::passed : Tally::dropped);
        return fd;
    }
    tally(Tally::dropped);
    log_line(kWarning, "event=dropped upstream=%s reason=\"%.*s\"%s%s%s", peer.to_string().c_str(),
             static_cast<int>(r.reason.size()), r.reason.data(), r.first_bytes.empty() ? "" : " first_bytes=\"",
             r.first_bytes.c_str(), r.first_bytes.empty() ? "" : "\"");
    return kNext;
}

// Still incomplete after the first wait: the completer finishes it.
void give_to_completer(const AcceptCall& call, int fd, const Endpoint& peer, bool nonblocking) {
    real().fcntl(fd, F_SETFD, FD_CLOEXEC);  // ours until delivered: never into an exec'd child
    std::lock_guard<ShimMutex> lock(call.s.mu);
    if (auto it = call.s.listeners.find(call.lfd); it != call.s.listeners.end())
        it->second.set_nonblocking(nonblocking);
    completer_add(call.s, PendingConn{fd, call.lfd, peer, now_ms() + call.cfg.timeout_ms});
}

// A trusted peer: read its header, waiting for it briefly if it has not arrived.
Outcome serve_trusted(const AcceptCall& call, int fd, const Endpoint& peer) {
    ReadResult r = read_header(fd, call.cfg);
    bool nonblocking = false;
    if (r.status == ReadStatus::need_more) {
        nonblocking = listener_nonblocking(call.lfd);
        r = wait_briefly(fd, call.lfd, call.cfg, nonblocking ? kFirstWaitEventLoopMs : kFirstWaitBlockingMs);
    }
    switch (r.status) {
        case ReadStatus::complete: {
            int out = deliver(call, ReadyConn{fd, 0, peer, r.client, r.destination}, false);
            tally(out < 0 ? Tally::dropped : r.client ? Tally::proxied : Tally::local);
            return out;
        }
        case ReadStatus::wake:  // a sibling's wake-up to an IPv6-only listener, from a trusted ::1
            return take_from_sibling(call, UniqueFd(fd), peer);
        case ReadStatus::drop: return refuse_header(call, UniqueFd(fd), peer, r);
        case ReadStatus::need_more: give_to_completer(call, fd, peer, nonblocking); return kNext;
    }
    XPROXY_UNREACHABLE();
}

// libc's accept4() with the caller's flags, then: wake-ups, untrusted peers, trusted ones.
Outcome accept_next(const AcceptCall& call) {
    sockaddr_storage ss{};
    socklen_t sl = sizeof ss;
    int fd = fresh(real().accept4(call.lfd, reinterpret_cast<sockaddr*>(&ss), &sl, call.flags));
    int err = errno;
    left_kernel_accept(call.s, call.lfd);
    if (fd < 0) {
        errno = err;
        return -1;
    }
    auto peer = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), sl);
    if (peer && is_wake_source(*peer)) {  // ours or a sibling process's wake-up
        UniqueFd wake(fd);
        if (consume_own_wake(call.s, *peer)) return kNext;  // ours: closed
        return take_from_sibling(call, std::move(wake), *peer);
    }
    if (peer && peer->addr.is_v6() && consume_own_wake(call.s, *peer)) {  // IPv6-only listeners: from ::1
        UniqueFd ours(fd);                                                // closed
        return kNext;
    }
    if (peer && call.cfg.trusted.contains(peer->addr)) return serve_trusted(call, fd, *peer);
    if (peer && sibling_wake_v6(fd, *peer, call.where)) return take_from_sibling(call, UniqueFd(fd), *peer);
    // Untrusted: what libc returned; its bytes are the application's.
    copy_out(ss, sl, call.addr, call.len);
    tally(Tally::untrusted);
    if (log_enabled(kDebug))
        log_line(kDebug, "event=untrusted fd=%d peer=%s", fd, peer ? peer->to_string().c_str() : "?");
    return fd;
}

}  // namespace

int do_accept(int lfd, sockaddr* addr, socklen_t* len, int flags) {
    State& s = state();
    if (!s.config.active() || (addr && !len)) return real().accept4(lfd, addr, len, flags);
    // A signal handler that interrupted the shim in this thread cannot take its lock; it
    // gets EINTR rather than a connection whose header was never read.
    if (ShimMutex::held_by_this_thread()) {
        errno = EINTR;
        return -1;
    }
    AcceptCall call{s, s.config, lfd, addr, len, flags, Endpoint{}, AF_UNSPEC};
    for (;;) {
        ReadyConn ready;
        switch (take_ready_or_wait(call, ready)) {
            case Queue::deliver: return deliver(call, ready, true);
            case Queue::learn:
                if (!learn_listener(call)) return fresh(real().accept4(lfd, addr, len, flags));  // not managed
                continue;
            case Queue::look_again: continue;
            case Queue::interrupted: errno = EINTR; return -1;
            case Queue::accept: break;
        }
        if (Outcome done = accept_next(call)) return *done;
    }
}

}  // namespace xproxy::preload
