// downstream_pool.hpp: idle downstream connections kept between client sessions.
//
// A plain-TCP downstream connection that finished its transactions cleanly is parked here
// (with what its EHLO offered and the identity it announced) instead of being closed with
// QUIT, and the next session that needs a connection to that downstream with the same
// identity takes it. With PROXY, XCLIENT and XPROXYFROM the identity is the announced
// source, so a parked connection is only ever reused for the same original client; with
// XFORWARD and none it is shared.
// Connections idle longer than the limit, or that the server closed or wrote to while
// parked, are closed instead of reused. Thread-safe.
//
// With one event-loop thread the connection is parked as it is (socket, deadline timer,
// registration with the event loop), so that handing it to the next session costs no
// system call. With several threads only its descriptor is parked: the next session may
// run on another thread, and the connection's timer must not fire on the old one's.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include <xproxy/base/unique_fd.hpp>
#include <xproxy/wire/smtp_command.hpp>

#include "conn.hpp"

namespace xproxy::xproxyd {

struct PooledConnection {
    std::shared_ptr<Conn> conn;  // parked as it is (one event-loop thread), or
    UniqueFd fd;                 // only its descriptor (several threads)
    std::size_t index = 0;       // destination index
    std::string identity;
    smtp::EhloKeywords ehlo;
    std::chrono::steady_clock::time_point since{};
};

class DownstreamPool {
public:
    DownstreamPool(std::size_t max_idle, std::chrono::seconds idle_limit, bool keep_live = false)
        : max_(max_idle), limit_(idle_limit), live_(keep_live) {}
    ~DownstreamPool();
    DownstreamPool(const DownstreamPool&) = delete;
    DownstreamPool& operator=(const DownstreamPool&) = delete;

    bool enabled() const { return max_ > 0; }
    // Connections are parked as live Conn objects (one event-loop thread), not descriptors.
    bool keeps_live() const { return live_; }
    // Parks c (closes the oldest parked connection of that downstream beyond the bound).
    void put(const std::string& downstream, PooledConnection c);
    // The most recently parked live connection with this identity, if any.
    std::optional<PooledConnection> take(const std::string& downstream, const std::string& identity);
    std::size_t size() const;

private:
    bool usable(const PooledConnection& c, std::chrono::steady_clock::time_point now) const;
    static void discard(PooledConnection& c);
    std::size_t max_;
    std::chrono::seconds limit_;
    bool live_;
    mutable std::mutex mu_;
    std::map<std::string, std::deque<PooledConnection>> idle_;
};

}  // namespace xproxy::xproxyd
