// handoff.hpp: giving a ready connection to the process that took our wake-up.
//
// Forked workers share one listener, and which of them accepts a wake-up connection is
// the kernel's choice. So the wake-up says where the ready connection can be fetched:
// after kWakeMagic it carries the name of a Unix SOCK_SEQPACKET socket in the abstract
// namespace that the owning process's completer thread listens on. A sibling that
// accepts the wake-up asks that socket for the connection (naming the wake-up's
// endpoint), receives its descriptor (SCM_RIGHTS) with the endpoints from its PROXY
// header, and returns it from its own accept(). If the owner already returned the
// connection itself, the answer is empty and the sibling goes on.
//
// Anyone on the host can open a connection from 127.88.80.87 and name any abstract
// socket, so neither the wake-up nor the name is trusted. Both sides authenticate each
// other before anything is handed over:
//   - the socket's peer must have our effective uid (SO_PEERCRED, recorded by the kernel
//     at listen/connect time): the taker sends nothing to, and waits for nothing from, a
//     process of another user, and the owner serves none;
//   - then each side passes its descriptor of the shared listener (SCM_RIGHTS), the owner
//     first, and the other checks that it is the very socket it accepts on (device and
//     inode): only a process the application gave its listener to can produce it, and
//     the taker shows its own only to such a process (handoff_wire.hpp).
// The taker waits for a wake-up's bytes (20 ms at most) only when the kernel says the
// connecting socket belongs to our own user (sock_diag); another user's wake-up without
// its message is closed at once, so a flood of them never holds accept().
#pragma once

#include "handoff_wire.hpp"
#include "state.hpp"

namespace xproxy::preload {

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
// ours, accepted on lfd. Reads its message (waited for only from our own user), checks
// the named socket's owner and fetches the ready connection it announces. Returns true
// with out filled when one was handed over by an authenticated sibling.
bool take_handoff(int wake_fd, int lfd, const Endpoint& wake_peer, ReadyConn& out);

}  // namespace xproxy::preload
