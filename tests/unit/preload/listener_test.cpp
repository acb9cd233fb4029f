// listener_test: the shim's Listener (preload/listener.hpp) outside a preloaded process.
// The ready queue never returns a connection taken over behind the shim's back; an event
// loop's ready connections expire and a blocking listener's stay; wake-ups are needed only
// when nobody polls, and back off 2, 4, ... 64 ms; the counters never go below zero; the
// destructor closes what is still the shim's and nothing else; every step requires the
// shim's mutex.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mutex>

#include "fd_table.hpp"
#include "listener.hpp"
#include "log.hpp"
#include "state.hpp"

namespace xproxy::preload {
namespace {

class ListenerTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        Config quiet;
        quiet.log = Config::Log::off;  // expiry logs a warning: not into the test's syslog
        open_log(quiet);
    }

    // A descriptor standing for an accepted connection (one end of a socket pair).
    int connection() {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) abort();
        ::close(sv[1]);
        return sv[0];
    }
    // One the completer finished: the shim's own until accept() returns it.
    ReadyConn ready(std::int64_t since_ms) {
        int fd = connection();
        adopt(fd);
        return ReadyConn{fd, since_ms, upstream, std::nullopt, std::nullopt};
    }
    static bool is_open(int fd) { return fcntl(fd, F_GETFD) >= 0; }

    const Endpoint address{IpAddress::v4(0x7f000001), 2525};
    const Endpoint upstream{IpAddress::v4(0x7f000002), 40000};
    int lfd = connection();  // stands for the listening socket (never read)
};

TEST_F(ListenerTest, StandsForItsNumberUntilAHookTouchesIt) {
    track_fd(lfd);
    std::lock_guard<ShimMutex> lock(state().mu);
    Listener l(lfd, address, AF_INET);
    EXPECT_TRUE(l.current());
    EXPECT_TRUE(l.same_as(address, AF_INET));
    EXPECT_FALSE(l.same_as(address, AF_INET6));
    EXPECT_FALSE(l.same_as(upstream, AF_INET));
    touch_fd(lfd);  // closed or replaced through a hook
    EXPECT_FALSE(l.current());
    EXPECT_FALSE(l.same_as(address, AF_INET));
    EXPECT_FALSE(l.still_listening());
    ::close(lfd);
}

TEST_F(ListenerTest, PopReadySkipsConnectionsTakenOver) {
    std::lock_guard<ShimMutex> lock(state().mu);
    Listener l(lfd, address, AF_INET);
    ReadyConn lost = ready(1);
    ReadyConn kept = ready(2);
    l.push_ready(lost);
    l.push_ready(kept);
    touch_fd(lost.fd);  // the application's now (dup2 onto it)
    ReadyConn out;
    ASSERT_TRUE(l.pop_ready(out));
    EXPECT_EQ(out.fd, kept.fd);
    EXPECT_EQ(out.since_ms, 2);
    EXPECT_FALSE(l.pop_ready(out));
    EXPECT_FALSE(l.has_ready());
    EXPECT_TRUE(is_open(lost.fd));  // forgotten, never closed by the shim
    for (int fd : {lost.fd, kept.fd, lfd}) {
        disown(fd);
        ::close(fd);
    }
}

TEST_F(ListenerTest, OnlyAnEventLoopsReadyConnectionsExpire) {
    std::lock_guard<ShimMutex> lock(state().mu);
    Listener l(lfd, address, AF_INET);
    ReadyConn c = ready(0);
    l.push_ready(c);
    // Blocking: kept, as the kernel keeps a connection; looked at again within a second.
    EXPECT_EQ(l.expire_ready(10000, 3000), 1000);
    EXPECT_TRUE(l.has_ready());
    l.set_nonblocking(true);
    EXPECT_EQ(l.expire_ready(2500, 3000), 500);   // due at 3000
    EXPECT_EQ(l.expire_ready(1000, 3000), 1000);  // never more than a second
    EXPECT_TRUE(l.has_ready());
    EXPECT_EQ(l.expire_ready(3000, 3000), -1);
    EXPECT_FALSE(l.has_ready());
    EXPECT_FALSE(is_open(c.fd));  // the shim's: closed
    ::close(lfd);
}

TEST_F(ListenerTest, WakeUpsOnlyWhenNobodyPollsAndTheyBackOff) {
    std::lock_guard<ShimMutex> lock(state().mu);
    Listener l(lfd, address, AF_INET);
    EXPECT_EQ(l.wake_due(100), -1);  // nothing ready
    l.push_ready(ready(100));
    EXPECT_EQ(l.wake_due(100), -1);  // blocking, nobody inside libc's accept4()
    l.entered_kernel_accept();
    EXPECT_EQ(l.wake_due(100), 0);
    int efd = l.start_polling();  // a poller is signalled through the pipe instead
    EXPECT_GE(efd, 0);
    EXPECT_EQ(l.wake_due(100), -1);
    l.stop_polling(efd, true);
    l.left_kernel_accept();
    l.left_kernel_accept();  // never below zero
    EXPECT_EQ(l.wake_due(100), -1);
    l.set_nonblocking(true);  // an event loop watches only the listener
    ASSERT_EQ(l.wake_due(100), 0);
    const int want[] = {2, 4, 8, 16, 32, 64, 64};
    std::int64_t now = 100;
    for (int w : want) {
        EXPECT_EQ(l.wake_sent(now), w);
        EXPECT_EQ(l.wake_due(now + 1), w - 1);
        now += w;
        EXPECT_EQ(l.wake_due(now), 0);
    }
    EXPECT_EQ(l.wake_sent(now), 64);
    l.wake_refused();  // after this long, the back-off applies
    EXPECT_EQ(l.wake_due(now + 1), 63);
    ReadyConn out;
    ASSERT_TRUE(l.pop_ready(out));
    EXPECT_EQ(l.wake_due(now), -1);  // emptied: the back-off starts again
    l.push_ready(out);
    EXPECT_EQ(l.wake_due(now), 0);
    EXPECT_EQ(l.wake_sent(now), 2);
    l.wake_refused();  // early on: the next one goes at once
    EXPECT_EQ(l.wake_due(now + 1), 0);
    ::close(lfd);
}

TEST_F(ListenerTest, PendingCountNeverBelowZero) {
    std::lock_guard<ShimMutex> lock(state().mu);
    Listener l(lfd, address, AF_INET);
    EXPECT_FALSE(l.has_pending());
    l.pending_gone();
    EXPECT_FALSE(l.has_pending());
    l.pending_added();
    l.pending_added();
    l.pending_gone();
    EXPECT_TRUE(l.has_pending());
    l.pending_cleared();
    EXPECT_FALSE(l.has_pending());
    ::close(lfd);
}

TEST_F(ListenerTest, DestructorClosesWhatIsStillTheShims) {
    std::lock_guard<ShimMutex> lock(state().mu);
    ReadyConn ours = ready(0);
    ReadyConn taken = ready(0);
    int efd = -1;
    std::vector<int> fds;
    {
        Listener l(lfd, address, AF_INET);
        l.push_ready(ours);
        l.push_ready(taken);
        efd = l.start_polling();
        l.stop_polling(efd, false);
        l.append_fds(fds);
        touch_fd(taken.fd);
    }
    EXPECT_EQ(fds.size(), 4u);  // the event pipe's two ends and both ready connections
    EXPECT_FALSE(is_open(ours.fd));
    EXPECT_FALSE(is_open(efd));
    EXPECT_TRUE(is_open(taken.fd));
    ::close(taken.fd);
    ::close(lfd);
}

TEST_F(ListenerTest, EveryStepRequiresTheShimsMutex) {
    Listener l(lfd, address, AF_INET);
    EXPECT_DEATH(l.pending_added(), "invariant failed: ShimMutex::held_by_this_thread");
    ::close(lfd);
}

}  // namespace
}  // namespace xproxy::preload
