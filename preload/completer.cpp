// completer.cpp: see completer.hpp.
#include "completer.hpp"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>

#include "fd_table.hpp"
#include "handoff.hpp"
#include "header_reader.hpp"
#include "log.hpp"
#include "waker.hpp"
#include <xproxy/base/invariant.hpp>
#include <xproxy/base/unique_fd.hpp>

namespace xproxy::preload {

namespace {

// A pending connection leaves the set (the caller erases it).
void pending_gone(State& s, const PendingConn& p) {
    if (auto ls = s.listeners.find(p.listener); ls != s.listeners.end()) ls->second.pending_gone();
}

void unwatch(State& s, int fd) {
    if (s.epoll.fd >= 0) epoll_ctl(s.epoll.fd, EPOLL_CTL_DEL, fd, nullptr);
}

// The peer never sent a usable header: drop it, or pass it on with XPROXY_REQUIRE=0.
void give_up(State& s, const PendingConn& p, const char* event, std::string_view reason, const std::string& bytes) {
    if (!s.config.require) {
        log_line(kWarning, "event=passed upstream=%s reason=\"%.*s\" require=no", p.upstream.to_string().c_str(),
                 static_cast<int>(reason.size()), reason.data());
        push_ready(s, p.listener, ReadyConn{p.fd, now_ms(), p.upstream, std::nullopt, std::nullopt});
        tally(Tally::passed);
        return;
    }
    tally(Tally::dropped);
    log_line(kWarning, "event=%s upstream=%s reason=\"%.*s\"%s%s%s", event, p.upstream.to_string().c_str(),
             static_cast<int>(reason.size()), reason.data(), bytes.empty() ? "" : " first_bytes=\"", bytes.c_str(),
             bytes.empty() ? "" : "\"");
    release_fd(p.fd);
}

void on_pending_event(State& s, int fd, std::uint32_t events) {
    auto it = s.pending.find(fd);
    if (it == s.pending.end()) return;
    if (!is_own_fd(fd)) {  // replaced behind our back: the number is not ours to read
        pending_gone(s, it->second);
        s.pending.erase(it);
        return;
    }
    ReadResult r = read_header(fd, s.config, it->second.need);  // O(1) until the header can be decided
    if (r.status == ReadStatus::need_more) {
        if (!(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return;  // wait for the next bytes
        r.status = ReadStatus::drop;                                 // the peer finished sending: it can never complete
        r.reason = "connection closed before a complete PROXY header";
    }
    PendingConn p = it->second;
    pending_gone(s, p);
    s.pending.erase(it);
    unwatch(s, fd);
    switch (r.status) {
        case ReadStatus::wake:  // another process's wake-up connection
            release_fd(fd);
            return;
        case ReadStatus::drop: give_up(s, p, "dropped", r.reason, r.first_bytes); return;
        case ReadStatus::complete:
            push_ready(s, p.listener, ReadyConn{fd, now_ms(), p.upstream, r.client, r.destination});
            tally(r.client ? Tally::proxied : Tally::local);
            return;
        case ReadStatus::need_more:  // decided above: waits for more bytes, or became drop
            break;
    }
    XPROXY_UNREACHABLE();
}

// Deadlines and wake-ups; returns the epoll timeout until the next one.
int housekeeping(State& s) {
    std::int64_t now = now_ms();
    int timeout = -1;
    auto sooner = [&timeout](std::int64_t ms) {
        int t = ms < 0 ? 0 : static_cast<int>(ms);
        if (timeout < 0 || t < timeout) timeout = t;
    };
    // Deadlines are scanned only when the earliest one is due, not on every event: a
    // thousand trickling headers cost no thousand-fold scan per byte.
    if (now >= s.next_deadline_ms) {
        std::int64_t next = INT64_MAX;
        for (auto it = s.pending.begin(); it != s.pending.end();) {
            if (it->second.deadline_ms <= now) {
                PendingConn p = it->second;
                pending_gone(s, p);
                it = s.pending.erase(it);
                unwatch(s, p.fd);
                give_up(s, p, "timeout", "no complete PROXY header within XPROXY_TIMEOUT_MS", "");
            } else {
                next = std::min(next, it->second.deadline_ms);
                ++it;
            }
        }
        s.next_deadline_ms = next;
    }
    if (!s.pending.empty()) sooner(s.next_deadline_ms - now);
    // Listeners closed (or replaced) through a hook since they were learnt: their ready
    // connections and wake-ups go.
    std::vector<int> stale;
    for (const auto& [lfd, ls] : s.listeners)
        if (!ls.current()) stale.push_back(lfd);
    for (int lfd : stale) forget_listener(s, lfd);
    for (auto& [lfd, ls] : s.listeners) {
        int expiry = ls.expire_ready(now, s.config.timeout_ms);
        if (expiry >= 0) sooner(expiry);
        int again = wake_listener(s, lfd, ls, now);
        if (again >= 0) sooner(again);
    }
    int handoff = handoff_housekeeping(s, now);
    if (handoff >= 0) sooner(handoff);
    return timeout;
}

// epoll_wait failed for good, or its descriptor is no longer ours (closed or replaced
// behind our back): stop, and let the next slow header start a new thread. Descriptors
// still ours are closed; numbers taken over by the application are only forgotten.
void stop_on_error(State& s, int err) {
    log_line(kError, "event=completer_stopped errno=%d pending=%zu", err, s.pending.size());
    for (auto& [fd, p] : s.pending) release_fd(fd);
    s.pending.clear();
    for (auto& [lfd, ls] : s.listeners) ls.pending_cleared();
    for (auto& [fd, w] : s.wakers) release_fd(fd);
    s.wakers.clear();
    for (auto& [fd, hc] : s.handoff_conns) release_fd(fd);
    s.handoff_conns.clear();
    for (Own* o : {&s.handoff, &s.epoll, &s.wake_rd, &s.wake_wr}) close_own(*o);
    s.completer_running = false;
    ++s.completer_epoch;  // the thread that ran with these stops at its next round
}

// Handles one round of epoll events, then deadlines and wake-ups; returns the timeout.
int handle(State& s, const epoll_event* events, int n) {
    for (int i = 0; i < n; ++i) {
        int fd = events[i].data.fd;
        if (fd == s.wake_rd.fd) {
            char drain[64];
            if (still_ours(s.wake_rd))
                while (read(fd, drain, sizeof drain) > 0) {
                }
        } else if (s.pending.count(fd)) {
            on_pending_event(s, fd, events[i].events);
        } else if (!handoff_event(s, fd)) {
            waker_event(s, fd, events[i].events);
        }
    }
    return housekeeping(s);
}

void* run(void* arg) {
    State& s = state();
    const auto epoch = static_cast<unsigned>(reinterpret_cast<std::uintptr_t>(arg));
    epoll_event events[64];
    int n = 0;
    for (;;) {
        int timeout = 10;
        int epfd;
        {
            std::lock_guard<ShimMutex> lock(s.mu);
            if (epoch != s.completer_epoch) return nullptr;  // stopped; a newer thread may run
            if (!still_ours(s.epoll)) {                      // never wait on a descriptor the application took over
                stop_on_error(s, EBADF);
                return nullptr;
            }
            epfd = s.epoll.fd;
            // Nothing may escape the thread (std::terminate would end the application):
            // an allocation failure is logged and the work retried on the next round.
            try {
                timeout = handle(s, events, n);
            } catch (...) {
                log_line(kError, "event=completer_error reason=\"out of memory\"");
            }
        }
        n = epoll_wait(epfd, events, 64, timeout);
        if (n < 0) {
            int err = errno;
            n = 0;
            if (err == EINTR) continue;
            std::lock_guard<ShimMutex> lock(s.mu);
            stop_on_error(s, err);
            return nullptr;
        }
    }
}

// The completer's wake-up pipe, made again if either end is no longer ours (the shim
// never writes into a descriptor the application took over).
bool ensure_wake_pipe(State& s) {
    if (still_ours(s.wake_rd) && still_ours(s.wake_wr)) return true;
    close_own(s.wake_rd);
    close_own(s.wake_wr);
    if (!own_pipe(s.wake_rd, s.wake_wr)) return false;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = s.wake_rd.fd;
    if (epoll_ctl(s.epoll.fd, EPOLL_CTL_ADD, s.wake_rd.fd, &ev) != 0) {
        close_own(s.wake_rd);
        close_own(s.wake_wr);
        return false;
    }
    return true;
}

bool start_thread(State& s) {
    if (s.completer_running && !still_ours(s.epoll)) stop_on_error(s, EBADF);  // taken over
    if (s.completer_running) return true;
    if (!still_ours(s.epoll)) {
        close_own(s.epoll);
        UniqueFd ep(epoll_create1(EPOLL_CLOEXEC));
        if (ep) {
            s.epoll = adopt(ep.get());
            if (s.epoll.fd >= 0) (void)ep.release();  // the shim's own descriptor from now on
        }
        close_own(s.wake_rd);  // registered in the old epoll: made again below
        close_own(s.wake_wr);
    }
    if (s.epoll.fd < 0 || !ensure_wake_pipe(s)) return false;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);  // the thread inherits "everything blocked"
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    void* epoch = reinterpret_cast<void*>(static_cast<std::uintptr_t>(s.completer_epoch));
    s.completer_running = pthread_create(&t, &attr, run, epoch) == 0;
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return s.completer_running;
}

void close_internal(State& s) {
    for (auto& [fd, p] : s.pending) release_fd(fd);
    s.pending.clear();
    s.listeners.clear();  // closes their ready connections and event pipes
    for (auto& [fd, w] : s.wakers) release_fd(fd);
    s.wakers.clear();
    for (auto& [fd, hc] : s.handoff_conns) release_fd(fd);
    s.handoff_conns.clear();
    for (Own* o : {&s.handoff, &s.epoll, &s.wake_rd, &s.wake_wr}) close_own(*o);
    s.completer_running = false;
}

void atfork_prepare() { state().mu.lock(); }
void atfork_parent() { state().mu.unlock(); }
// The child has no completer thread, and the pending and ready connections belong to the
// parent: the child closes its copies. Mappings stay (a forked worker keeps serving the
// connection its parent accepted).
void atfork_child() {
    State& s = state();
    reset_tally();
    close_internal(s);
    s.mu.unlock();
}

}  // namespace

void register_atfork() { pthread_atfork(atfork_prepare, atfork_parent, atfork_child); }

void completer_add(State& s, const PendingConn& p) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
    ev.data.fd = p.fd;
    adopt(p.fd);  // the shim's until delivered: the application's close() of the number is refused
    if (!start_thread(s) || epoll_ctl(s.epoll.fd, EPOLL_CTL_ADD, p.fd, &ev) != 0) {
        log_line(kError, "event=dropped upstream=%s reason=\"cannot start the header thread\"",
                 p.upstream.to_string().c_str());
        release_fd(p.fd);
        return;
    }
    s.pending[p.fd] = p;
    if (auto ls = s.listeners.find(p.listener); ls != s.listeners.end()) ls->second.pending_added();
    s.next_deadline_ms = std::min(s.next_deadline_ms, p.deadline_ms);
    if (ensure_wake_pipe(s)) {
        ssize_t ignored = write(s.wake_wr.fd, "", 1);  // recompute the timeout
        (void)ignored;
    }
}

void push_ready(State& s, int lfd, ReadyConn c) {
    auto it = s.listeners.find(lfd);
    if (it == s.listeners.end()) {  // the listener was closed meanwhile
        release_fd(c.fd);
        return;
    }
    it->second.push_ready(std::move(c));
    wake_listener(s, lfd, it->second, now_ms());
}

void forget_listener(State& s, int lfd) {
    auto it = s.listeners.find(lfd);
    if (it == s.listeners.end()) return;
    s.listeners.erase(it);  // closes its ready connections and event pipe
    close_wakers(s, lfd);
    for (auto p = s.pending.begin(); p != s.pending.end();) {
        if (p->second.listener == lfd) {
            unwatch(s, p->first);
            release_fd(p->first);
            p = s.pending.erase(p);
        } else {
            ++p;
        }
    }
}

std::vector<int> internal_fds(State& s) {
    std::vector<int> out;
    for (const Own* o : {&s.epoll, &s.wake_rd, &s.wake_wr, &s.handoff})
        if (o->fd >= 0) out.push_back(o->fd);
    for (const auto& [fd, p] : s.pending) out.push_back(fd);
    for (const auto& [fd, w] : s.wakers) out.push_back(fd);
    for (const auto& [fd, hc] : s.handoff_conns) out.push_back(fd);
    for (const auto& [lfd, ls] : s.listeners) ls.append_fds(out);
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace xproxy::preload
