// listener.hpp: one managed listening socket and everything the shim keeps for it, from
// the accept() that learns it until a hooked close of its number, a close_range() over it
// or fork() ends it.
//
// A Listener is learnt by accept(): its address, its family and the generation of its
// descriptor number (fd_table.hpp); it stands for that socket only while the generation is
// unchanged. It holds
//   - the ready queue: connections whose header the completer finished and which neither
//     accept() nor a sibling process (handoff.hpp) has taken yet;
//   - how many of its connections are still pending in the completer (no scan per accept);
//   - the threads in a blocking accept(): those polling the listener beside its event pipe,
//     which is signalled when a connection becomes ready, and those inside libc's accept4(),
//     which only a wake-up connection reaches (waker.hpp);
//   - the back-off of those wake-up connections.
// It owns its ready connections and its event pipe: the destructor closes those that are
// still the shim's (a number the application took over is only forgotten).
//
// Locking: callers hold State::mu for every method; those that change the listener check
// it (XPROXY_INVARIANT). The accept path, the completer and the hand-off change a listener
// together with the pending connections and the wakers in one step, so one lock guards
// all of them (state.hpp).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include <sys/socket.h>

#include "fd_table.hpp"
#include "shim_mutex.hpp"
#include <xproxy/base/invariant.hpp>
#include <xproxy/base/ip.hpp>

namespace xproxy::preload {

// A connection whose header has been read completely (or, with XPROXY_REQUIRE=0, that is
// passed on without one).
struct ReadyConn {
    int fd = -1;
    std::int64_t since_ms = 0;  // when it became ready
    Endpoint upstream;
    std::optional<Endpoint> client;  // nullopt: LOCAL/UNKNOWN/no header: real endpoints
    std::optional<Endpoint> destination;
};

class Listener {
public:
    // Learnt now, bound to address: the number's current generation is recorded.
    Listener(int fd, const Endpoint& address, int family);
    ~Listener();
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;

    // Identity.
    const Endpoint& address() const { return address_; }
    int family() const { return family_; }
    // False once its number was closed or replaced through a hook since it was learnt.
    bool current() const { return gen_ == fd_gen(fd_); }
    // Still the socket learnt: current, and bound to the same address in the same family.
    bool same_as(const Endpoint& address, int family) const;
    // Its number still names a listening socket at our address (asks the kernel): the
    // hand-off never passes on a number reused for anything else.
    bool still_listening() const;

    // The ready queue.
    // Queues a connection whose header is done and signals the event pipe, if it is still
    // ours, for the polling threads (the others need a wake-up connection, wake_due()).
    void push_ready(ReadyConn c);
    // The oldest ready connection whose number is still ours (one the application took
    // over behind our back is forgotten, never returned as a new connection).
    bool pop_ready(ReadyConn& out) {
        require_lock();
        return !ready_.empty() && pop_ready_queued(out);
    }
    bool has_ready() const { return !ready_.empty(); }
    // An event loop that never takes its connection (it stopped accepting) loses it after
    // timeout_ms (logged); a blocking listener keeps it, as the kernel would. Returns the
    // milliseconds until it wants to look again, or -1.
    int expire_ready(std::int64_t now, int timeout_ms);

    // Its connections pending in the completer.
    void pending_added() {
        require_lock();
        ++pending_;
    }
    // Not an invariant: a connection that went pending while its listener was being
    // forgotten and learnt again was never counted here.
    void pending_gone() {
        require_lock();
        if (pending_ > 0) --pending_;
    }
    void pending_cleared() {
        require_lock();
        pending_ = 0;
    }
    bool has_pending() const { return pending_ > 0; }

    // Threads in accept().
    // As the listener's mode was last seen (whenever a connection goes pending).
    void set_nonblocking(bool nonblocking) {
        require_lock();
        nonblocking_ = nonblocking;
    }
    void entered_kernel_accept() {
        require_lock();
        ++in_kernel_accept_;
    }
    // Not an invariant either: the thread may have entered while an earlier Listener held
    // the number.
    void left_kernel_accept() {
        require_lock();
        if (in_kernel_accept_ > 0) --in_kernel_accept_;
    }
    // A blocking accept() is about to poll the listener: (re)makes the event pipe, counts
    // the poller, returns the pipe's read end to poll beside the listener (-1: none).
    int start_polling();
    // Its poll() returned; drains the event pipe when it was signalled (signalled: efd
    // reported readable).
    void stop_polling(int efd, bool signalled);

    // Wake-up connections (waker.cpp): 0 when one is due now, otherwise the milliseconds
    // until one may be, or -1 when none is needed (nothing ready, or a polling thread was
    // signalled). An empty ready queue starts the back-off again.
    int wake_due(std::int64_t now);
    // One was opened (or the limit of outstanding ones reached) now: backs off; returns the
    // milliseconds until the next may be.
    int wake_sent(std::int64_t now);
    // A wake-up was refused, or a sibling took it: the next one goes at once, unless this
    // has gone on for a while (the application is busy; the back-off applies).
    void wake_refused();

    // Appends the descriptors it owns (event pipe, ready connections).
    void append_fds(std::vector<int>& out) const;

private:
    int fd_;
    Endpoint address_;  // where the listener is bound (a mismatch means the fd was reused)
    int family_;
    std::uint32_t gen_;  // fd_gen() of fd_ when it was learnt
    bool nonblocking_ = false;
    std::deque<ReadyConn> ready_;
    Own event_rd_, event_wr_;        // blocking listeners: a pipe accept() polls beside the listener
    int pollers_ = 0;                // threads in accept() polling listener + event pipe
    int pending_ = 0;                // its connections in State::pending
    int in_kernel_accept_ = 0;       // threads inside libc's accept4()
    std::int64_t next_wake_ms_ = 0;  // wake-up connections: not before this
    int wake_round_ = 0;             // wake-ups since the ready queue was last empty

    static void require_lock() { XPROXY_INVARIANT(ShimMutex::held_by_this_thread()); }
    bool pop_ready_queued(ReadyConn& out);
    void signal_pollers();
};

}  // namespace xproxy::preload
