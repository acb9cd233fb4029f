// state.hpp: the shim's process-wide state, shared by the libc entry points (shim.cpp,
// accept.cpp) and the header completer thread (completer.cpp).
//
// - mappings:  accepted fd -> original client, plus the upstream's real address and
//              port (fd_table.hpp: valid until the number is closed or replaced through a
//              hook, and checked against the kernel's peer before every use);
// - listeners: per managed listening fd, a Listener (listener.hpp): the connections whose
//              header is complete but which accept() has not returned yet, and who is
//              waiting in accept();
// - pending:   trusted connections whose header is still arriving (the completer's);
// - wakers:    our own loopback connections that make a listener readable (waker.cpp),
//              and the socket sibling processes fetch ready connections from (handoff.cpp).
// One mutex guards all of it. No entry point holds it across a blocking call, and the
// hooks that must be async-signal-safe (close, dup*) do not take it (fd_table.hpp).
#pragma once

#include <cstdint>
#include <unordered_map>

#include <sys/socket.h>
#include <sys/types.h>

#include "config.hpp"
#include "fd_table.hpp"
#include "listener.hpp"
#include "shim_mutex.hpp"
#include <xproxy/base/ip.hpp>

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
};

struct State {
    ShimMutex mu;
    Config config;
    std::unordered_map<int, Listener> listeners;   // by listening fd (listener.hpp)
    std::unordered_map<int, PendingConn> pending;  // by connection fd
    std::unordered_map<int, Waker> wakers;         // by waker fd
    Own epoll;
    Own wake_rd, wake_wr;  // a pipe: the pending set changed
    Own handoff;           // handoff.hpp: where sibling processes fetch ready connections
    char handoff_name[48] = {};
    struct HandoffConn {
        std::int64_t deadline_ms = 0;
        int listener = -1;  // set once the requester named one of our wake-ups
    };
    std::unordered_map<int, HandoffConn> handoff_conns;  // by connection fd
    bool completer_running = false;
    unsigned completer_epoch = 0;       // a completer thread whose epoch is older stops
    std::int64_t next_deadline_ms = 0;  // no pending deadline before this: no scan
};
State& state();

std::int64_t now_ms();

}  // namespace xproxy::preload
