// base_unique_fd_test: a UniqueFd closes its descriptor exactly once, on destruction,
// reset or move-assignment, and never after release().
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <utility>

#include <xproxy/base/unique_fd.hpp>

using xproxy::UniqueFd;

namespace {
bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }
}  // namespace

TEST(UniqueFd, ClosesOnScopeExitResetAndMove) {
    int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(raw, 0);
    {
        UniqueFd fd(raw);
        EXPECT_TRUE(fd);
        UniqueFd moved = std::move(fd);
        EXPECT_FALSE(fd);  // NOLINT(bugprone-use-after-move): the moved-from state is under test
        EXPECT_EQ(moved.get(), raw);
        EXPECT_TRUE(is_open(raw));
    }
    EXPECT_FALSE(is_open(raw));

    int a = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    int b = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    UniqueFd fa(a), fb(b);
    fa = std::move(fb);  // a is closed, b now owned by fa
    EXPECT_FALSE(is_open(a));
    EXPECT_TRUE(is_open(b));
    fa.reset();
    EXPECT_FALSE(is_open(b));
}

TEST(UniqueFd, ReleaseHandsOwnershipBack) {
    int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(raw, 0);
    {
        UniqueFd fd(raw);
        EXPECT_EQ(fd.release(), raw);
    }
    EXPECT_TRUE(is_open(raw));
    ::close(raw);
}
