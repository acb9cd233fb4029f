// handoff_wire.hpp: the bytes of a wake-up connection and the messages of the hand-off
// socket (handoff.hpp). Both ends are this library (forked or exec'd siblings sharing a
// listener); kHandoffVersion guards against a mixed upgrade. Kept free of the library's
// other headers so that tests can speak the protocol as a forger would.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

namespace xproxy::preload {

// What a wake-up connection sends first, so that a process sharing the listener (forked
// workers) recognises it. Not a valid PROXY header prefix.
inline constexpr char kWakeMagic[] = "\r\nXPROXY-WAKE\r\n";
inline constexpr std::size_t kWakeMagicLength = sizeof kWakeMagic - 1;
inline constexpr std::size_t kHandoffNameLength = 48;  // zero-padded, no leading NUL
// A wake-up connection's bytes: kWakeMagic, then the handoff socket's name.
inline constexpr std::size_t kWakeMessageLength = kWakeMagicLength + kHandoffNameLength;

// 2: each side proves it is one of the application's processes by passing its descriptor
// of the shared listener (SCM_RIGHTS), the owner first:
//   taker: request (token)            owner: reply found=1 + owner's listener
//   taker: request (token) + listener owner: reply with endpoints + the connection
// found=0 at any step: nothing to hand over.
inline constexpr std::uint8_t kHandoffVersion = 2;

struct WireEndpoint {
    std::uint8_t present = 0;
    std::uint8_t pad[3] = {};
    std::uint32_t len = 0;
    sockaddr_storage addr{};
};

// Taker -> owner (the second one with the taker's listener descriptor).
struct HandoffRequest {
    std::uint8_t version = kHandoffVersion;
    WireEndpoint token;  // the wake-up connection's source, as the taker accepted it
};

// Owner -> taker (the first one with the owner's listener, the second with the connection).
struct HandoffReply {
    std::uint8_t version = kHandoffVersion;
    std::uint8_t found = 0;
    WireEndpoint upstream, client, destination;
};

}  // namespace xproxy::preload
