// state.hpp: the shim's process-wide state, shared by the libc entry points (shim.cpp)
// and the header completer thread (completer.cpp).
//
// - mappings: accepted fd -> original client (and the upstream's real endpoints, checked
//   against the kernel before every use, so a reused fd never inherits a stale source);
// - listeners: per managed listening fd, the connections whose header is complete but
//   which accept() has not returned yet, and how to wake the application;
// - pending: trusted connections whose header is still arriving, owned by the completer.
// One mutex guards all of it; no libc entry point holds it across a blocking call.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

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
    Endpoint local;     // the kernel's local address at accept time
    Endpoint client;    // the original client from the header
    std::optional<Endpoint> destination;
};

// A connection whose header has been read completely.
struct ReadyConn {
    int fd = -1;
    std::int64_t ready_ms = 0;  // when the header completed (re-wake after 20 ms)
    Endpoint upstream;
    Endpoint local;
    std::optional<Endpoint> client;  // nullopt: LOCAL/UNKNOWN, use the real endpoints
    std::optional<Endpoint> destination;
};

struct PendingConn {
    int fd = -1;
    int listener = -1;
    bool listener_nonblocking = false;
    Endpoint upstream;
    Endpoint local;
    std::int64_t deadline_ms = 0;
};

struct ListenerState {
    std::deque<ReadyConn> ready;
    int event_fd = -1;                 // blocking accept() waits on it too
    std::vector<Endpoint> wake_tokens; // our own wake-up connections (non-blocking listeners)
    std::vector<int> wake_fds;         // their client ends, closed once accepted
    Endpoint address;                  // where the listener is bound
    bool nonblocking = false;
};

struct State {
    std::mutex mu;
    Config config;
    std::unordered_map<int, Mapping> mappings;
    std::unordered_map<int, ListenerState> listeners;
    std::unordered_map<int, PendingConn> pending;  // by connection fd
    int epoll_fd = -1;
    int completer_wake = -1;  // eventfd: pending set changed
    bool completer_running = false;
};
State& state();

std::int64_t now_ms();

// Logging (syslog, stderr, file:PATH or off as configured). Values are ours (addresses,
// static reasons), never raw peer bytes.
// Opens the configured log at load time.
void open_log(const Config& cfg);
void log_line(int level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// Result of trying to read a header from a non-blocking connection.
enum class ReadStatus { complete, need_more, drop, wake };

// What a wake-up connection sends, so that any process sharing the listener (forked
// workers) recognises and closes it.
inline constexpr char kWakeMagic[] = "\r\nXPROXY-WAKE\r\n";
inline constexpr std::size_t kWakeMagicLength = sizeof kWakeMagic - 1;
struct ReadResult {
    ReadStatus status = ReadStatus::need_more;
    const char* reason = "";  // drop: why (static)
    int version = 0;
    std::optional<Endpoint> client;
    std::optional<Endpoint> destination;
};
// Peeks, decodes and consumes exactly the header; never blocks.
ReadResult read_header(int fd, const Config& cfg);

// Hands a trusted connection with an incomplete header to the completer thread.
// Caller holds state().mu.
void completer_add(PendingConn p);
// Forgets pending and ready connections of a listener being closed. Caller holds mu.
void forget_listener(int listener_fd);
// Wakes whoever waits on a listener after a connection became ready. Caller holds mu.
void wake_listener(int listener_fd, bool nonblocking);

}  // namespace xproxy::preload
