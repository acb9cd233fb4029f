// watchdog.hpp: the idle watchdog of one connection, for read and write timeouts.
//
// Reads and writes only move the deadline (touch(): no timer operation per request); the
// timer wakes at the deadline, sleeps again if it moved, or else cancels the socket's
// pending read or write, which then ends with operation_aborted. The timer's handler
// holds the WatchedSocket, so the state can never be freed under it; stop() keeps it from
// re-arming after the end. Meant for a connection served on its own strand (acceptor.hpp).
//
//   auto c = std::make_shared<WatchedSocket<Socket>>(std::move(sock), idle);
//   start_watchdog(c);
//   for (;;) { c->touch(); co_await c->sock.async_read_some(...); ... }
//   c->stop();
#pragma once

#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>

namespace xproxy::daemon {

template <class Socket>
struct WatchedSocket {
    using Clock = std::chrono::steady_clock;
    WatchedSocket(Socket s, Clock::duration idle_after)
        : sock(std::move(s)), timer(sock.get_executor()), idle(idle_after), deadline(Clock::now() + idle_after) {}

    // Activity: the connection may idle for another `idle` from now.
    void touch() { deadline = Clock::now() + idle; }
    // The end: the timer stops and is not armed again.
    void stop() {
        done = true;
        timer.cancel();
    }

    Socket sock;
    boost::asio::steady_timer timer;
    Clock::duration idle;
    Clock::time_point deadline;
    bool done = false;
};

template <class Socket>
void start_watchdog(std::shared_ptr<WatchedSocket<Socket>> c) {
    c->timer.expires_at(c->deadline);
    c->timer.async_wait([c](boost::system::error_code ec) {
        if (ec || c->done) return;
        if (WatchedSocket<Socket>::Clock::now() < c->deadline) return start_watchdog(c);  // active meanwhile
        boost::system::error_code ignored;
        c->sock.cancel(ignored);  // the pending read or write ends with operation_aborted
    });
}

}  // namespace xproxy::daemon
