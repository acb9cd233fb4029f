// waker.hpp: waking an application that waits on a listener, after the completer thread
// finished a header the application's accept() gave up on.
//
// A blocking accept() polls the listener and the listener's event pipe, which is enough
// while some thread polls. An event loop (epoll, poll, select on a non-blocking listener)
// and a thread already inside libc's accept4() only notice a new connection on the
// listener itself. For them the shim opens a loopback connection to the listener (a
// "wake-up connection"); the application's next accept() returns the ready connection,
// and the shim closes the wake-up connection when it accepts it.
//
// A wake-up connection comes from kWakeSourceV4 (127.88.80.87), so any process sharing
// the listener (forked workers: nginx, pre-forking servers, Postfix's smtpd processes)
// recognises it by its source address alone, at accept time, whether or not loopback is
// trusted; it then fetches the ready connection from us (handoff.hpp) and returns it.
// An IPv6-only listener gets one from ::1 instead, recognised by the kWakeMagic bytes
// it sends. A wake-up whose peer closed it without taking the connection is followed by
// another at once, unless wake-ups have gone on for a while. Wake-ups back off (2, 4, ...
// 64 ms apart, at most kMaxWakers outstanding) while the application does not take its
// connection; an event loop's connection is given up after XPROXY_TIMEOUT_MS (the
// back-off and the expiry are the Listener's, listener.hpp).
// All functions: caller holds state().mu.
#pragma once

#include <cstdint>

#include "state.hpp"

namespace xproxy::preload {

// Source address of IPv4 wake-up connections ("XPW" in the last three bytes).
inline constexpr std::uint32_t kWakeSourceV4 = 0x7f585057;  // 127.88.80.87

// True when peer is a wake-up connection's source (ours or a sibling process's).
bool is_wake_source(const Endpoint& peer);
// Opens a wake-up connection if the listener has ready connections nobody will notice
// (Listener::wake_due). Returns milliseconds until it wants to be called again, or -1.
int wake_listener(State& s, int lfd, Listener& ls, std::int64_t now);
// Handles an epoll event on a waker fd (sends the magic, forgets a closed one).
void waker_event(State& s, int fd, std::uint32_t events);
// True (and our waker is closed) when peer is one of our own wake-up connections.
bool consume_wake_token(State& s, const Endpoint& peer);
// Closes the wakers of a listener being forgotten.
void close_wakers(State& s, int lfd);

}  // namespace xproxy::preload
