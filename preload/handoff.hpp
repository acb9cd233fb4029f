// handoff.hpp: giving a ready connection to the process that took our wake-up.
//
// Forked workers share one listener, and which of them accepts a wake-up connection is
// the kernel's choice. So the wake-up says where the ready connection can be fetched:
// after kWakeMagic it carries the name of a Unix SOCK_SEQPACKET socket in the abstract
// namespace that the owning process's completer thread listens on. A sibling that
// accepts the wake-up asks that socket for the connection (naming the wake-up's
// endpoint), receives its descriptor (SCM_RIGHTS) with the endpoints from its PROXY
// header, and returns it from its own accept(). Only a peer with our effective uid is
// served. If the owner already returned the connection itself, the answer is empty and
// the sibling goes on as if nothing had happened.
#pragma once

#include <cstddef>

#include "state.hpp"

namespace xproxy::preload {

inline constexpr std::size_t kHandoffNameLength = 48;  // zero-padded, no leading NUL
// A wake-up connection's bytes: kWakeMagic, then the handoff socket's name.
inline constexpr std::size_t kWakeMessageLength = 15 + kHandoffNameLength;

// Owner side (caller holds mu): creates the handoff socket if needed and returns the
// wake-up message for it in msg (a name of zeros if it could not be created).
void wake_message(State& s, char (&msg)[kWakeMessageLength]);
// Owner side, completer thread (caller holds mu): true when fd is the handoff socket or
// one of its connections, and handles the event.
bool handoff_event(State& s, int fd);
// Owner side: closes handoff connections older than their deadline; returns the epoll
// timeout it needs (-1: none).
int handoff_housekeeping(State& s, std::int64_t now);

// Sibling side, accept path (mu NOT held): wake_fd is a wake-up connection that is not
// ours. Reads its message (waiting a few milliseconds at most) and fetches the ready
// connection it announces. Returns true with out filled when one was handed over.
bool take_handoff(int wake_fd, const Endpoint& wake_peer, ReadyConn& out);

}  // namespace xproxy::preload
