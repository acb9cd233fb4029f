// fd_table.hpp: what the shim knows per descriptor number, readable without a lock.
//
// close(), dup(), dup2(), dup3() and fcntl(F_DUPFD) are async-signal-safe in libc, and
// applications call them from signal handlers and between fork() and exec(): their hooks
// take no lock and allocate nothing from the heap. Per number the table holds
//   gen  - bumped by every hooked close of the number, every dup onto it and every accept
//          that returns it; what the shim records about "descriptor N" (a mapping, a
//          listener, one of its own descriptors) is valid only while gen is unchanged;
//   own  - the number is one of the shim's own descriptors, with the file's device and
//          inode: the application's close() of it is refused; a number closed and reused
//          behind the shim's back (a raw system call) no longer matches and is not ours;
//   the mapping (accepted connection -> original client), guarded by State::mu.
// The shim's code closes a descriptor it no longer owns through UniqueFd or real().close();
// UniqueFd's close() is the hook below (shim.cpp), which refuses a number still marked as
// ours: disown() it first.
// Slots live in chunks allocated with mmap (async-signal-safe) on first use and never
// freed; numbers beyond kMaxFds are never recorded (a connection that would need a
// mapping there is refused, see accept.cpp).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <optional>

#include <xproxy/base/ip.hpp>

namespace xproxy::preload {

inline constexpr int kMaxFds = 1 << 22;

// One of the shim's own descriptors as it was when the shim made it.
struct Own {
    int fd = -1;
    std::uint32_t gen = 0;
    dev_t dev = 0;
    ino_t ino = 0;
};

// What getpeername() (and getsockname()) report for an accepted connection.
struct Mapping {
    Endpoint upstream;  // the kernel's peer (the trusted upstream) at accept time
    Endpoint client;    // the original client from the header
    std::optional<Endpoint> destination;
};

// Marks fd as the shim's own (close() by the application is refused). Call it right after
// creating fd. Returns its identity (fd -1 when fd cannot be recorded).
Own adopt(int fd);
// Forgets that fd is ours (the shim closes it, or hands it to the application).
void disown(int fd);
// True when o still names the descriptor the shim made: same generation, device, inode.
// Checked before the shim reads, writes or closes one of its own descriptors.
bool still_ours(const Own& o);
// Closes o if it is still ours; forgets it in any case; o.fd becomes -1.
void close_own(Own& o);
// A non-blocking, close-on-exec pipe whose two ends are ours; false (nothing left open,
// rd and wr untouched) when it cannot be made or recorded.
bool own_pipe(Own& rd, Own& wr);
// Lock-free, async-signal-safe: fd is one of the shim's own descriptors (identity checked).
bool is_own_fd(int fd);
// Closes fd if it is still one of the shim's own descriptors; forgets it in any case (a
// number taken over by the application is never closed by the shim).
void release_fd(int fd);

// Lock-free, async-signal-safe: a hook closed fd, duplicated onto it, or accept returned
// it: every record about the number is stale from now on.
void touch_fd(int fd);
std::uint32_t fd_gen(int fd);
// Makes sure fd's slot exists, so that touch_fd() of it is recorded (managed listeners).
void track_fd(int fd);

// Mappings (caller holds State::mu, except where noted).
bool set_mapping(int fd, const Mapping& m);  // false: fd beyond the table
void clear_mapping(int fd);
std::optional<Mapping> get_mapping(int fd);  // only if recorded since the last touch_fd
bool may_have_mapping(int fd);               // lock-free hint for the dup hooks
// Copies fd's mapping to fd2 (whose gen was just bumped); no heap allocation.
void copy_mapping_slot(int fd, int fd2);
// Forgets the mappings of every number in [first, last].
void clear_mappings_in(unsigned first, unsigned last);

}  // namespace xproxy::preload
