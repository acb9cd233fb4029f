// shim_mutex.hpp: the lock that guards the shim's state (state.hpp), and which a thread
// can ask whether it holds.
#pragma once

#include <atomic>
#include <mutex>

namespace xproxy::preload {

// A mutex that knows whether this thread holds it (or is about to take it), so that a
// hook run by a signal handler that interrupted the shim in this thread never waits for
// itself. The depth is thread-local in the initial-exec model (a preloaded library has
// static TLS): reading it is a plain load, async-signal-safe. It is raised before the
// lock is taken and lowered after it is released, so no signal can fall in between.
inline thread_local __attribute__((tls_model("initial-exec"))) int t_shim_lock_depth = 0;

class ShimMutex {
public:
    void lock() {
        ++t_shim_lock_depth;
        std::atomic_signal_fence(std::memory_order_seq_cst);
        mu_.lock();
    }
    void unlock() {
        mu_.unlock();
        std::atomic_signal_fence(std::memory_order_seq_cst);
        --t_shim_lock_depth;
    }
    static bool held_by_this_thread() { return t_shim_lock_depth > 0; }

private:
    std::mutex mu_;
};

}  // namespace xproxy::preload
