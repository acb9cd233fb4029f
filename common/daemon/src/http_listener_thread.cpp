// http_listener_thread.cpp: see http_listener_thread.hpp.
#include <xproxy/daemon/http_listener_thread.hpp>

#include <boost/asio/executor_work_guard.hpp>

#include <xproxy/base/escape.hpp>
#include <xproxy/daemon/log.hpp>

namespace xproxy::http {

Expected<std::unique_ptr<ListenerThread>> ListenerThread::open(std::string_view spec, Limits limits, Handler handler,
                                                               unsigned unix_mode) {
    std::unique_ptr<ListenerThread> t(new ListenerThread());
    t->io_ = std::make_unique<boost::asio::io_context>(1);
    auto listener = Listener::open(*t->io_, spec, std::move(limits), std::move(handler), unix_mode);
    if (!listener) return Failure{listener.error()};
    t->listener_ = std::move(*listener);
    t->thread_ = std::thread([io = t->io_.get()] {
        auto work = boost::asio::make_work_guard(*io);  // runs until the destructor stops it
        for (;;) {
            try {
                io->run();
                return;
            } catch (const std::exception& e) {
                // Connections catch their own errors; whatever still escapes ends one
                // handler, not the thread.
                log::error("event=http_thread_error error=\"%s\"", escape_value(e.what(), 200).c_str());
            }
        }
    });
    return t;
}

ListenerThread::~ListenerThread() {
    if (listener_) listener_->close();
    if (io_) io_->stop();
    if (thread_.joinable()) thread_.join();
    listener_.reset();
}

}  // namespace xproxy::http
