// completer.hpp: the thread that finishes slow headers, so that accept() never waits for
// one peer. Trusted connections whose PROXY header is not complete when accept() gets
// them are watched here (edge-triggered epoll: a partial header is only peeked, so a
// level-triggered watch would report it again and again). When a header completes the
// connection joins its listener's ready queue and the application is woken (waker.hpp).
// A header still incomplete at its deadline is dropped (closed, logged) or, with
// XPROXY_REQUIRE=0, passed on with the real endpoints. The thread blocks every signal,
// starts on first use and again after fork() in the child.
// All functions but register_atfork: caller holds state().mu.
#pragma once

#include <vector>

#include "state.hpp"

namespace xproxy::preload {

// Installs the fork handlers (once, from the library constructor).
void register_atfork();
// Takes over a trusted connection whose header is incomplete.
void completer_add(State& s, const PendingConn& p);
// Queues a connection as ready for listener lfd and wakes whoever waits on it.
void push_ready(State& s, int lfd, ReadyConn c);
// Forgets a listener being closed: closes its ready, pending and wake-up connections.
void forget_listener(State& s, int lfd);
// Every descriptor the shim owns (its own, and pending and ready connections), sorted.
std::vector<int> internal_fds(State& s);

}  // namespace xproxy::preload
