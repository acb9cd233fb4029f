// http_listener_thread.hpp: an HTTP listener (http_listener.hpp) with its own io_context
// on its own thread, for a daemon whose work does not run on Asio (the milter's
// libmilter threads).
//
// Promises: open() binds before it returns (so it can run before privileges are dropped)
// and starts the thread; the handler runs on that one thread only; the destructor closes
// the listener, stops the thread and joins it, so nothing of the listener outlives the
// object. Start it after any fork() of the process (a thread does not survive one).
#pragma once

#include <memory>
#include <string_view>
#include <thread>

#include <xproxy/daemon/http_listener.hpp>

namespace xproxy::http {

class ListenerThread {
public:
    static Expected<std::unique_ptr<ListenerThread>> open(std::string_view spec, Limits limits, Handler handler,
                                                          unsigned unix_mode = 0660);
    ~ListenerThread();
    ListenerThread(const ListenerThread&) = delete;
    ListenerThread& operator=(const ListenerThread&) = delete;

    const Listener& listener() const { return *listener_; }

private:
    ListenerThread() = default;
    std::unique_ptr<boost::asio::io_context> io_;
    std::unique_ptr<Listener> listener_;
    std::thread thread_;
};

}  // namespace xproxy::http
