// state.hpp: the shim's process-wide state, shared by the libc entry points (shim.cpp,
// accept.cpp) and the header completer thread (completer.cpp).
//
// - mappings:  accepted fd -> original client, plus the upstream's real address and
//              port, checked against the kernel's peer before every use (an fd reused
//              behind our back never inherits a stale source);
// - listeners: per managed listening fd, the connections whose header is complete but
//              which accept() has not returned yet, and who is waiting in accept();
// - pending:   trusted connections whose header is still arriving (the completer's);
// - wakers:    our own loopback connections that make a listener readable (waker.cpp),
//              and the socket sibling processes fetch ready connections from (handoff.cpp).
// One mutex guards all of it. No entry point holds it across a blocking call.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <unordered_map>

#include <sys/socket.h>

#include "config.hpp"
#include "xproxy/ip.hpp"

namespace xproxy::preload {

// libc's own functions, resolved once with dlsym(RTLD_NEXT).
struct Real {
    int (*accept)(int, sockaddr*, socklen_t*);
    int (*accept4)(int, sockaddr*, socklen_t*, int);
    int (*getpeername)(int, sockaddr*, socklen_t*);
    int (*getsockname)(int, sockaddr*, socklen_t*);
    int (*close)(int);
    int (*dup)(int);
    int (*dup2)(int, int);
    int (*dup3)(int, int, int);
    int (*fcntl)(int, int, ...);
};
const Real& real();

struct Mapping {
    Endpoint upstream;  // the kernel's peer (the trusted upstream) at accept time
    Endpoint client;    // the original client from the header
    std::optional<Endpoint> destination;
};

// A connection whose header has been read completely (or, with XPROXY_REQUIRE=0, that is
// passed on without one).
struct ReadyConn {
    int fd = -1;
    std::int64_t since_ms = 0;  // when it became ready
    Endpoint upstream;
    std::optional<Endpoint> client;  // nullopt: LOCAL/UNKNOWN/no header: real endpoints
    std::optional<Endpoint> destination;
};

struct PendingConn {
    int fd = -1;
    int listener = -1;
    Endpoint upstream;
    std::int64_t deadline_ms = 0;
    std::size_t need = 0;  // read_header(): bytes to be queued before peeking again
};

struct Waker {
    int listener = -1;
    Endpoint token;  // the waker's local endpoint = the peer accept() will see
    bool magic_sent = false;
    unsigned long ino = 0;  // identity of our socket (see same_file)
};

struct ListenerState {
    Endpoint address;  // where the listener is bound (a mismatch means the fd was reused)
    int family = AF_INET;
    bool nonblocking = false;  // as last seen (set whenever a connection goes pending)
    std::deque<ReadyConn> ready;
    int event_fd = -1;         // blocking listeners: accept() polls it beside the listener
    unsigned long event_ino = 0;
    int pollers = 0;           // threads in accept() polling listener + event_fd
    int in_kernel_accept = 0;  // threads inside libc's accept4() on a blocking listener
    std::int64_t next_wake_ms = 0;  // wake-up connections: not before this
    int wake_round = 0;             // wake-ups since the ready queue was last empty
};

struct State {
    std::mutex mu;
    Config config;
    std::unordered_map<int, Mapping> mappings;
    std::unordered_map<int, ListenerState> listeners;
    std::unordered_map<int, PendingConn> pending;  // by connection fd
    std::unordered_map<int, Waker> wakers;         // by waker fd
    int epoll_fd = -1;
    int completer_wake = -1;  // eventfd: the pending set changed
    unsigned long epoll_ino = 0, completer_wake_ino = 0;
    int handoff_fd = -1;  // handoff.hpp: where sibling processes fetch ready connections
    unsigned long handoff_ino = 0;
    char handoff_name[48] = {};
    struct HandoffConn {
        std::int64_t deadline_ms = 0;
        int listener = -1;  // set once the requester named one of our wake-ups
    };
    std::unordered_map<int, HandoffConn> handoff_conns;  // by connection fd
    bool completer_running = false;
};
State& state();

std::int64_t now_ms();

// The inode number of fd (0 if closed): the shim's own descriptors are recognised by
// number and inode, so a number reused after an unhooked close is not mistaken for ours.
unsigned long inode_of(int fd);
inline bool same_file(int fd, unsigned long ino) { return fd >= 0 && ino != 0 && inode_of(fd) == ino; }

}  // namespace xproxy::preload
