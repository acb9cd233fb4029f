// listener.cpp: see listener.hpp.
#include "listener.hpp"

#include <fcntl.h>
#include <unistd.h>

#include "log.hpp"
#include "state.hpp"
#include <xproxy/base/invariant.hpp>

namespace xproxy::preload {

namespace {

constexpr int kMaxRound = 6;  // wake-up back-off: 2^round ms between wake-ups, up to 64 ms

}  // namespace

Listener::Listener(int fd, const Endpoint& address, int family)
    : fd_(fd), address_(address), family_(family), gen_(fd_gen(fd)) {}

Listener::~Listener() {
    for (auto& r : ready_) release_fd(r.fd);
    close_own(event_rd_);
    close_own(event_wr_);
}

bool Listener::same_as(const Endpoint& address, int family) const {
    return current() && address_ == address && family_ == family;
}

bool Listener::still_listening() const {
    if (!current()) return false;
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int accepting = 0;
    socklen_t alen = sizeof accepting;
    if (real().getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0 ||
        getsockopt(fd_, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &alen) != 0 || !accepting)
        return false;
    auto e = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    return e && *e == address_;
}

void Listener::push_ready(ReadyConn c) {
    require_lock();
    ready_.push_back(std::move(c));
    signal_pollers();
}

bool Listener::pop_ready_queued(ReadyConn& out) {
    while (!ready_.empty()) {
        out = std::move(ready_.front());
        ready_.pop_front();
        if (is_own_fd(out.fd)) return true;
        disown(out.fd);
        out.fd = -1;
    }
    return false;
}

int Listener::expire_ready(std::int64_t now, int timeout_ms) {
    require_lock();
    while (nonblocking_ && !ready_.empty() && now - ready_.front().since_ms >= timeout_ms) {
        log_line(kWarning, "event=timeout upstream=%s reason=\"the application did not accept the connection\"",
                 ready_.front().upstream.to_string().c_str());
        release_fd(ready_.front().fd);
        ready_.pop_front();
    }
    if (ready_.empty()) return -1;
    std::int64_t left = nonblocking_ ? ready_.front().since_ms + timeout_ms - now : 1000;
    if (left > 1000) left = 1000;  // a listener closed meanwhile is noticed by the next sweep
    return left < 0 ? 0 : static_cast<int>(left);
}

int Listener::start_polling() {
    require_lock();
    // Made before poll(), so that a header completing from now on always wakes the poller.
    // A pipe, not an eventfd: its inode is its own, so a number the application took over
    // (dup2, a raw close) is recognised and never written to.
    if (!still_ours(event_rd_) || !still_ours(event_wr_)) {
        close_own(event_rd_);
        close_own(event_wr_);
        own_pipe(event_rd_, event_wr_);  // if it fails: poll the listener alone
    }
    ++pollers_;
    return event_rd_.fd;
}

void Listener::stop_polling(int efd, bool signalled) {
    require_lock();
    --pollers_;
    if (efd >= 0 && signalled && event_rd_.fd == efd && still_ours(event_rd_)) {
        char drain[64];
        while (read(efd, drain, sizeof drain) > 0) {
        }
    }
}

void Listener::signal_pollers() {
    if (event_wr_.fd < 0 || !still_ours(event_wr_)) return;  // never write into the application's descriptor
    ssize_t ignored = write(event_wr_.fd, "", 1);
    (void)ignored;
}

int Listener::wake_due(std::int64_t now) {
    require_lock();
    if (ready_.empty()) {
        wake_round_ = 0;
        next_wake_ms_ = 0;
        return -1;
    }
    // A polling thread has been signalled; only event loops and threads stuck in libc's
    // accept4() need a connection, and so does a poller whose pipe was taken over behind
    // our back.
    bool needed = nonblocking_ || (in_kernel_accept_ > 0 && pollers_ == 0) || (pollers_ > 0 && !still_ours(event_wr_));
    if (!needed) return -1;
    if (now < next_wake_ms_) return static_cast<int>(next_wake_ms_ - now);
    return 0;
}

int Listener::wake_sent(std::int64_t now) {
    require_lock();
    if (wake_round_ < kMaxRound) ++wake_round_;
    next_wake_ms_ = now + (std::int64_t{1} << wake_round_);
    return static_cast<int>(next_wake_ms_ - now);
}

void Listener::wake_refused() {
    require_lock();
    if (wake_round_ < kMaxRound - 1) next_wake_ms_ = 0;
}

void Listener::append_fds(std::vector<int>& out) const {
    for (const Own* o : {&event_rd_, &event_wr_})
        if (o->fd >= 0) out.push_back(o->fd);
    for (const auto& r : ready_) out.push_back(r.fd);
}

}  // namespace xproxy::preload
