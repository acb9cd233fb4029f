// loopback_pair.hpp: for unit tests that decide on an accepted TCP connection's peer. A
// listener on 127.0.0.1 (ephemeral port) and one connection to it from a chosen loopback
// source address; all three descriptors are closed with the object. The accepted end is
// taken with accept4(), so a test linked with an interposed accept() does not run it.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace xproxy::test {

struct LoopbackPair {
    int listener = -1, client = -1, accepted = -1;
    LoopbackPair() = default;
    LoopbackPair(const LoopbackPair&) = delete;
    LoopbackPair& operator=(const LoopbackPair&) = delete;
    ~LoopbackPair() {
        for (int fd : {listener, client, accepted})
            if (fd >= 0) close(fd);
    }
};

// Fills p; fails the calling test (ASSERT) when any step does not work.
inline void connect_from(LoopbackPair& p, const char* source) {
    p.listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(p.listener, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(listen(p.listener, 4), 0);
    socklen_t len = sizeof a;
    ASSERT_EQ(getsockname(p.listener, reinterpret_cast<sockaddr*>(&a), &len), 0);
    p.client = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in src{};
    src.sin_family = AF_INET;
    ASSERT_EQ(inet_pton(AF_INET, source, &src.sin_addr), 1);
    ASSERT_EQ(bind(p.client, reinterpret_cast<sockaddr*>(&src), sizeof src), 0);
    ASSERT_EQ(connect(p.client, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    p.accepted = accept4(p.listener, nullptr, nullptr, 0);
    ASSERT_GE(p.accepted, 0);
}

}  // namespace xproxy::test
