// completer.cpp: see completer.hpp.
#include "completer.hpp"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>

#include "handoff.hpp"
#include "header_reader.hpp"
#include "log.hpp"
#include "waker.hpp"

namespace xproxy::preload {

namespace {

void unwatch(State& s, int fd) {
    if (s.epoll_fd >= 0) epoll_ctl(s.epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
}

// The peer never sent a usable header: drop it, or pass it on with XPROXY_REQUIRE=0.
void give_up(State& s, const PendingConn& p, const char* event, std::string_view reason, const std::string& bytes) {
    if (!s.config.require) {
        log_line(kWarning, "event=passed upstream=%s reason=\"%.*s\" require=no", p.upstream.to_string().c_str(),
                 static_cast<int>(reason.size()), reason.data());
        push_ready(s, p.listener, ReadyConn{p.fd, now_ms(), p.upstream, std::nullopt, std::nullopt});
        return;
    }
    log_line(kWarning, "event=%s upstream=%s reason=\"%.*s\"%s%s%s", event, p.upstream.to_string().c_str(),
             static_cast<int>(reason.size()), reason.data(), bytes.empty() ? "" : " first_bytes=\"",
             bytes.c_str(), bytes.empty() ? "" : "\"");
    real().close(p.fd);
}

void on_pending_event(State& s, int fd, std::uint32_t events) {
    auto it = s.pending.find(fd);
    if (it == s.pending.end()) return;
    ReadResult r = read_header(fd, s.config, it->second.need);  // O(1) until the header can be decided
    if (r.status == ReadStatus::need_more) {
        if (!(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return;  // wait for the next bytes
        r.status = ReadStatus::drop;  // the peer finished sending: it can never complete
        r.reason = "connection closed before a complete PROXY header";
    }
    PendingConn p = it->second;
    s.pending.erase(it);
    unwatch(s, fd);
    if (r.status == ReadStatus::wake) {  // another process's wake-up connection
        real().close(fd);
    } else if (r.status == ReadStatus::drop) {
        give_up(s, p, "dropped", r.reason, r.first_bytes);
    } else {
        push_ready(s, p.listener, ReadyConn{fd, now_ms(), p.upstream, r.client, r.destination});
    }
}

// Deadlines and wake-ups; returns the epoll timeout until the next one.
int housekeeping(State& s) {
    std::int64_t now = now_ms();
    int timeout = -1;
    auto sooner = [&timeout](std::int64_t ms) {
        int t = ms < 0 ? 0 : static_cast<int>(ms);
        if (timeout < 0 || t < timeout) timeout = t;
    };
    for (auto it = s.pending.begin(); it != s.pending.end();) {
        if (it->second.deadline_ms <= now) {
            PendingConn p = it->second;
            it = s.pending.erase(it);
            unwatch(s, p.fd);
            give_up(s, p, "timeout", "no complete PROXY header within XPROXY_TIMEOUT_MS", "");
        } else {
            sooner(it->second.deadline_ms - now);
            ++it;
        }
    }
    for (auto& [lfd, ls] : s.listeners) {
        // An event loop that never takes its connection (it stopped accepting) loses it
        // after the header timeout; a blocking listener keeps it, as the kernel would.
        while (ls.nonblocking && !ls.ready.empty() && now - ls.ready.front().since_ms >= s.config.timeout_ms) {
            log_line(kWarning, "event=timeout upstream=%s reason=\"the application did not accept the connection\"",
                     ls.ready.front().upstream.to_string().c_str());
            real().close(ls.ready.front().fd);
            ls.ready.pop_front();
        }
        if (ls.nonblocking && !ls.ready.empty()) sooner(ls.ready.front().since_ms + s.config.timeout_ms - now);
        int again = wake_listener(s, lfd, ls, now);
        if (again >= 0) sooner(again);
    }
    int handoff = handoff_housekeeping(s, now);
    if (handoff >= 0) sooner(handoff);
    return timeout;
}

// epoll_wait failed for good (its descriptor was closed behind our back): stop, and let
// the next slow header start a new thread. The pending descriptors may have been closed
// and reused too, so they are forgotten, not closed.
void stop_on_error(State& s, int err) {
    log_line(kError, "event=completer_stopped errno=%d pending=%zu", err, s.pending.size());
    s.pending.clear();
    s.wakers.clear();
    s.handoff_conns.clear();
    s.handoff_fd = -1;
    s.epoll_fd = -1;
    s.completer_wake = -1;
    s.completer_running = false;
}

// Handles one round of epoll events, then deadlines and wake-ups; returns the timeout.
int handle(State& s, const epoll_event* events, int n) {
    for (int i = 0; i < n; ++i) {
        int fd = events[i].data.fd;
        if (fd == s.completer_wake) {
            std::uint64_t v;
            ssize_t ignored = read(fd, &v, sizeof v);
            (void)ignored;
        } else if (s.pending.count(fd)) {
            on_pending_event(s, fd, events[i].events);
        } else if (!handoff_event(s, fd)) {
            waker_event(s, fd, events[i].events);
        }
    }
    return housekeeping(s);
}

void* run(void*) {
    State& s = state();
    epoll_event events[64];
    int n = 0;
    for (;;) {
        int timeout = 10;
        int epfd;
        {
            std::lock_guard<std::mutex> lock(s.mu);
            epfd = s.epoll_fd;
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
            std::lock_guard<std::mutex> lock(s.mu);
            stop_on_error(s, err);
            return nullptr;
        }
    }
}

bool start_thread(State& s) {
    if (s.completer_running) return true;
    if (s.epoll_fd < 0) {
        s.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        s.epoll_ino = inode_of(s.epoll_fd);
    }
    if (s.completer_wake < 0 && s.epoll_fd >= 0) {
        s.completer_wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        s.completer_wake_ino = inode_of(s.completer_wake);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = s.completer_wake;
        if (s.completer_wake >= 0) epoll_ctl(s.epoll_fd, EPOLL_CTL_ADD, s.completer_wake, &ev);
    }
    if (s.epoll_fd < 0 || s.completer_wake < 0) return false;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);  // the thread inherits "everything blocked"
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    s.completer_running = pthread_create(&t, &attr, run, nullptr) == 0;
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return s.completer_running;
}

void close_internal(State& s) {
    for (auto& [fd, p] : s.pending) real().close(fd);
    s.pending.clear();
    for (auto& [lfd, ls] : s.listeners) {
        for (auto& r : ls.ready) real().close(r.fd);
        if (ls.event_fd >= 0) real().close(ls.event_fd);
    }
    s.listeners.clear();
    for (auto& [fd, w] : s.wakers) real().close(fd);
    s.wakers.clear();
    for (auto& [fd, hc] : s.handoff_conns) real().close(fd);
    s.handoff_conns.clear();
    if (s.handoff_fd >= 0) real().close(s.handoff_fd);
    s.handoff_fd = -1;
    if (s.epoll_fd >= 0) real().close(s.epoll_fd);
    if (s.completer_wake >= 0) real().close(s.completer_wake);
    s.epoll_fd = s.completer_wake = -1;
    s.completer_running = false;
}

void atfork_prepare() { state().mu.lock(); }
void atfork_parent() { state().mu.unlock(); }
// The child has no completer thread, and the pending and ready connections belong to the
// parent: the child closes its copies. Mappings stay (a forked worker keeps serving the
// connection its parent accepted).
void atfork_child() {
    State& s = state();
    close_internal(s);
    s.mu.unlock();
}

}  // namespace

void register_atfork() { pthread_atfork(atfork_prepare, atfork_parent, atfork_child); }

void completer_add(State& s, const PendingConn& p) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
    ev.data.fd = p.fd;
    if (!start_thread(s) || epoll_ctl(s.epoll_fd, EPOLL_CTL_ADD, p.fd, &ev) != 0) {
        log_line(kError, "event=dropped upstream=%s reason=\"cannot start the header thread\"",
                 p.upstream.to_string().c_str());
        real().close(p.fd);
        return;
    }
    s.pending[p.fd] = p;
    std::uint64_t one = 1;
    ssize_t ignored = write(s.completer_wake, &one, sizeof one);  // recompute the timeout
    (void)ignored;
}

void push_ready(State& s, int lfd, ReadyConn c) {
    auto it = s.listeners.find(lfd);
    if (it == s.listeners.end()) {  // the listener was closed meanwhile
        real().close(c.fd);
        return;
    }
    it->second.ready.push_back(std::move(c));
    signal_pollers(it->second);
    wake_listener(s, lfd, it->second, now_ms());
}

void forget_listener(State& s, int lfd) {
    auto it = s.listeners.find(lfd);
    if (it == s.listeners.end()) return;
    for (auto& r : it->second.ready) real().close(r.fd);
    if (it->second.event_fd >= 0) real().close(it->second.event_fd);
    s.listeners.erase(it);
    close_wakers(s, lfd);
    for (auto p = s.pending.begin(); p != s.pending.end();) {
        if (p->second.listener == lfd) {
            unwatch(s, p->first);
            real().close(p->first);
            p = s.pending.erase(p);
        } else {
            ++p;
        }
    }
}

bool is_internal_fd(State& s, int fd) {
    if (fd < 0) return false;
    if (fd == s.epoll_fd && same_file(fd, s.epoll_ino)) return true;
    if (fd == s.completer_wake && same_file(fd, s.completer_wake_ino)) return true;
    if (auto w = s.wakers.find(fd); w != s.wakers.end() && same_file(fd, w->second.ino)) return true;
    if (fd == s.handoff_fd && same_file(fd, s.handoff_ino)) return true;
    if (s.handoff_conns.count(fd)) return true;
    if (is_log_fd(fd)) return true;
    if (auto p = s.pending.find(fd); p != s.pending.end()) {
        unwatch(s, fd);
        s.pending.erase(p);
        return false;
    }
    for (auto& [lfd, ls] : s.listeners) {
        if (ls.event_fd == fd && same_file(fd, ls.event_ino)) return true;
        for (auto r = ls.ready.begin(); r != ls.ready.end(); ++r) {
            if (r->fd == fd) {
                ls.ready.erase(r);
                return false;
            }
        }
    }
    return false;
}

std::vector<int> internal_fds(State& s) {
    std::vector<int> out;
    for (int fd : {s.epoll_fd, s.completer_wake, s.handoff_fd})
        if (fd >= 0) out.push_back(fd);
    for (const auto& [fd, p] : s.pending) out.push_back(fd);
    for (const auto& [fd, w] : s.wakers) out.push_back(fd);
    for (const auto& [fd, hc] : s.handoff_conns) out.push_back(fd);
    for (const auto& [lfd, ls] : s.listeners) {
        if (ls.event_fd >= 0) out.push_back(ls.event_fd);
        for (const auto& r : ls.ready) out.push_back(r.fd);
    }
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace xproxy::preload
