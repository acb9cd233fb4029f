// milter_accept_test: the peer check of the milter's interposed accept() (accept_hooks.cpp,
// linked into this test as into the executable) holds for every descriptor number, also
// beyond the table that only serves read()'s TCP_QUICKACK.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "accept_hooks.hpp"
#include "loopback_pair.hpp"

namespace {

// A connection from a chosen source; its accepted end (taken with accept4(), not the
// interposed accept()) is what screen_accepted() decides on.
using Conn = xproxy::test::LoopbackPair;
using xproxy::test::connect_from;

}  // namespace

TEST(MilterAccept, PeerCheckDoesNotDependOnTheDescriptorNumber) {
    const auto allow = *xproxy::CidrSet::parse("127.0.0.2/32");
    xproxy::milter::set_peer_allow_list(&allow);
    // A mark table of one entry: every accepted descriptor lies beyond it, as descriptors
    // >= 65536 lie beyond the executable's table.
    std::atomic<unsigned char> marks[1];
    marks[0].store(7);
    {
        Conn c;
        connect_from(c, "127.0.0.1");
        ASSERT_GE(c.accepted, 1);
        errno = 0;
        EXPECT_EQ(xproxy::milter::screen_accepted(c.accepted, marks, 1), -1);
        EXPECT_EQ(errno, ECONNABORTED);
        EXPECT_EQ(fcntl(c.accepted, F_GETFD), -1) << "the refused connection is closed";
        c.accepted = -1;
    }
    {
        Conn c;
        connect_from(c, "127.0.0.2");
        EXPECT_EQ(xproxy::milter::screen_accepted(c.accepted, marks, 1), c.accepted);
        int nodelay = 0;
        socklen_t len = sizeof nodelay;
        ASSERT_EQ(getsockopt(c.accepted, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len), 0);
        EXPECT_NE(nodelay, 0);
    }
    EXPECT_EQ(marks[0].load(), 7) << "nothing written beyond the table";
    // Inside the table: the same decisions, and the mark is set.
    std::atomic<unsigned char> big[4096] = {};
    {
        Conn c;
        connect_from(c, "127.0.0.1");
        ASSERT_LT(c.accepted, 4096);
        EXPECT_EQ(xproxy::milter::screen_accepted(c.accepted, big, 4096), -1);
        c.accepted = -1;
    }
    {
        Conn c;
        connect_from(c, "127.0.0.2");
        ASSERT_LT(c.accepted, 4096);
        EXPECT_EQ(xproxy::milter::screen_accepted(c.accepted, big, 4096), c.accepted);
        EXPECT_EQ(big[c.accepted].load(), 1);
    }
    EXPECT_EQ(xproxy::milter::screen_accepted(-1, big, 4096), -1);
    xproxy::milter::set_peer_allow_list(nullptr);
}

TEST(MilterAccept, UnsetListRefusesEveryTcpPeer) {
    xproxy::milter::set_peer_allow_list(nullptr);
    std::atomic<unsigned char> marks[1];
    Conn c;
    connect_from(c, "127.0.0.1");
    EXPECT_EQ(xproxy::milter::screen_accepted(c.accepted, marks, 1), -1);
    c.accepted = -1;
}

TEST(MilterAccept, UnixConnectionIsLeftToTheSocketPermissions) {
    std::atomic<unsigned char> marks[1];
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    EXPECT_EQ(xproxy::milter::screen_accepted(sv[0], marks, 1), sv[0]);
    close(sv[0]);
    close(sv[1]);
}
