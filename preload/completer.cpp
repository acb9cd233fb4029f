// completer.cpp: the thread that finishes slow headers so that accept() never waits for
// one peer. Trusted connections whose PROXY header is incomplete at accept time are
// watched here with epoll; when a header completes the connection moves to its
// listener's ready queue and the application is woken:
//   - a blocking accept() polls the listener and the listener's eventfd, which we signal;
//   - a non-blocking listener is watched by the application's own epoll/poll/select, which
//     only sees the listening socket. We make it readable by opening a loopback connection
//     to the listener ("wake token"); accept() recognises and closes such connections and
//     returns the ready one instead. A wake-up costs one extra local connection, and only
//     happens for headers that did not arrive with the connection.
// A header that is still incomplete at its deadline is dropped (closed and logged).
// The thread blocks every signal and is restarted lazily after fork().
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "state.hpp"

namespace xproxy::preload {

namespace {

constexpr int kRewakeMs = 20;

void watch(State& s, int fd) {
    epoll_event ev{};
    // Edge-triggered: headers are only peeked until complete, so a level-triggered watch
    // would report a partial header again and again.
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
    ev.data.fd = fd;
    epoll_ctl(s.epoll_fd, EPOLL_CTL_ADD, fd, &ev);
}

void unwatch(State& s, int fd) { epoll_ctl(s.epoll_fd, EPOLL_CTL_DEL, fd, nullptr); }

// Opens a loopback connection to a non-blocking listener so that the application's
// event loop sees it readable. Caller holds mu.
void wake_by_connection(State& s, ListenerState& ls) {
    Endpoint target = ls.address;
    if (target.addr == IpAddress()) target.addr = *IpAddress::parse("127.0.0.1");
    else if (target.addr == *IpAddress::parse("::")) target.addr = *IpAddress::parse("::1");
    sockaddr_storage ss;
    unsigned len = target.to_sockaddr(ss);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    // A loopback connect completes at once (the kernel queues it in the backlog).
    timeval tv{0, 100000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
        send(fd, kWakeMagic, kWakeMagicLength, MSG_NOSIGNAL | MSG_DONTWAIT) != static_cast<ssize_t>(kWakeMagicLength)) {
        real().close(fd);
        return;
    }
    sockaddr_storage me{};
    socklen_t mlen = sizeof me;
    if (real().getsockname(fd, reinterpret_cast<sockaddr*>(&me), &mlen) != 0) {
        real().close(fd);
        return;
    }
    auto token = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&me), mlen);
    if (!token) {
        real().close(fd);
        return;
    }
    ls.wake_tokens.push_back(*token);
    ls.wake_fds.push_back(fd);
    (void)s;
}

void* run(void*) {
    State& s = state();
    epoll_event events[64];
    for (;;) {
        int timeout = -1;
        {
            std::lock_guard<std::mutex> lock(s.mu);
            std::int64_t now = now_ms();
            for (const auto& [lfd, ls] : s.listeners)
                if (!ls.ready.empty() && ls.nonblocking) timeout = kRewakeMs;
            for (const auto& [fd, p] : s.pending) {
                std::int64_t left = p.deadline_ms - now;
                if (left < 0) left = 0;
                if (timeout < 0 || left < timeout) timeout = static_cast<int>(left);
            }
        }
        int n = epoll_wait(s.epoll_fd, events, 64, timeout);
        if (n < 0 && errno != EINTR) return nullptr;
        std::lock_guard<std::mutex> lock(s.mu);
        for (int i = 0; i < n; ++i) {
            int fd = events[i].data.fd;
            if (fd == s.completer_wake) {
                std::uint64_t v;
                ssize_t ignored = read(s.completer_wake, &v, sizeof v);
                (void)ignored;
                continue;
            }
            auto it = s.pending.find(fd);
            if (it == s.pending.end()) continue;
            PendingConn p = it->second;
            ReadResult r = read_header(fd, s.config);
            if (r.status == ReadStatus::need_more) {
                if (!(events[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) continue;
                r.status = ReadStatus::drop;  // the peer finished sending: it will never complete
                r.reason = "connection closed before a complete PROXY header";
            }
            s.pending.erase(it);
            unwatch(s, fd);
            if (r.status == ReadStatus::wake) {  // another process's wake-up connection
                real().close(fd);
                continue;
            }
            if (r.status == ReadStatus::drop) {
                log_line(1, "event=dropped upstream=%s reason=\"%s\"", p.upstream.to_string().c_str(), r.reason);
                real().close(fd);
                continue;
            }
            auto ls = s.listeners.find(p.listener);
            if (ls == s.listeners.end()) {  // listener closed meanwhile
                real().close(fd);
                continue;
            }
            ls->second.ready.push_back(ReadyConn{fd, now_ms(), p.upstream, p.local, r.client, r.destination});
            ls->second.nonblocking = p.listener_nonblocking;
            wake_listener(p.listener, p.listener_nonblocking);
        }
        std::int64_t now = now_ms();
        // Forked workers share a listener: our wake-up connection may have been accepted
        // by another process. Wake again until the application takes its connection, and
        // give up on one it never takes within the header timeout.
        for (auto& [lfd, ls] : s.listeners) {
            if (ls.ready.empty() || !ls.nonblocking) continue;
            while (!ls.ready.empty() && now - ls.ready.front().ready_ms > s.config.timeout_ms) {
                log_line(1, "event=timeout upstream=%s reason=\"the application did not accept the connection\"",
                         ls.ready.front().upstream.to_string().c_str());
                real().close(ls.ready.front().fd);
                ls.ready.pop_front();
            }
            if (!ls.ready.empty() && now - ls.ready.back().ready_ms >= kRewakeMs && ls.wake_fds.size() < 64)
                wake_by_connection(s, ls);
        }
        for (auto it = s.pending.begin(); it != s.pending.end();) {
            if (it->second.deadline_ms <= now) {
                log_line(1, "event=timeout upstream=%s reason=\"no complete PROXY header within %d ms\"",
                         it->second.upstream.to_string().c_str(), s.config.timeout_ms);
                unwatch(s, it->first);
                real().close(it->first);
                it = s.pending.erase(it);
            } else {
                ++it;
            }
        }
    }
}

void start_thread(State& s) {
    if (s.completer_running) return;
    if (s.epoll_fd < 0) s.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (s.completer_wake < 0) {
        s.completer_wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = s.completer_wake;
        epoll_ctl(s.epoll_fd, EPOLL_CTL_ADD, s.completer_wake, &ev);
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    if (pthread_create(&t, &attr, run, nullptr) == 0) s.completer_running = true;
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

void atfork_prepare() { state().mu.lock(); }
void atfork_parent() { state().mu.unlock(); }
// The child has no completer thread. Connections that were pending or ready belong to the
// parent: the child closes its copies. Mappings stay (a forked worker keeps serving the
// connection its parent accepted).
void atfork_child() {
    State& s = state();
    for (auto& [fd, p] : s.pending) real().close(fd);
    s.pending.clear();
    for (auto& [lfd, ls] : s.listeners) {
        for (auto& r : ls.ready) real().close(r.fd);
        for (int fd : ls.wake_fds) real().close(fd);
        if (ls.event_fd >= 0) real().close(ls.event_fd);
    }
    s.listeners.clear();
    if (s.epoll_fd >= 0) real().close(s.epoll_fd);
    if (s.completer_wake >= 0) real().close(s.completer_wake);
    s.epoll_fd = s.completer_wake = -1;
    s.completer_running = false;
    s.mu.unlock();
}

}  // namespace

void register_atfork() { pthread_atfork(atfork_prepare, atfork_parent, atfork_child); }

void completer_add(PendingConn p) {
    State& s = state();
    start_thread(s);
    if (!s.completer_running) {  // cannot wait for it: drop rather than block
        log_line(0, "event=dropped upstream=%s reason=\"cannot start the header thread\"", p.upstream.to_string().c_str());
        real().close(p.fd);
        return;
    }
    s.pending[p.fd] = p;
    watch(s, p.fd);
    std::uint64_t one = 1;
    ssize_t ignored = write(s.completer_wake, &one, sizeof one);  // recompute the timeout
    (void)ignored;
}

void forget_listener(int listener_fd) {
    State& s = state();
    auto it = s.listeners.find(listener_fd);
    if (it == s.listeners.end()) return;
    for (auto& r : it->second.ready) real().close(r.fd);
    for (int fd : it->second.wake_fds) real().close(fd);
    if (it->second.event_fd >= 0) real().close(it->second.event_fd);
    s.listeners.erase(it);
    for (auto p = s.pending.begin(); p != s.pending.end();) {
        if (p->second.listener == listener_fd) {
            unwatch(s, p->first);
            real().close(p->first);
            p = s.pending.erase(p);
        } else {
            ++p;
        }
    }
}

void wake_listener(int listener_fd, bool nonblocking) {
    State& s = state();
    auto it = s.listeners.find(listener_fd);
    if (it == s.listeners.end()) return;
    if (it->second.event_fd >= 0) {
        std::uint64_t one = 1;
        ssize_t ignored = write(it->second.event_fd, &one, sizeof one);
        (void)ignored;
    }
    if (nonblocking) wake_by_connection(s, it->second);
}

}  // namespace xproxy::preload
