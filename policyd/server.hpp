// server.hpp: the policy daemon's network loop (Boost.Asio, C++20 coroutines, on the
// accept loop of xproxy/daemon/acceptor.hpp).
// Many persistent Postfix connections are served concurrently on a small thread pool;
// one stalled or hostile peer only ever costs its own connection (idle timeout, bounded
// buffers via the handler). Listeners are already-open descriptors (see
// xproxy/daemon/listen.hpp), TCP or unix. A TCP peer outside allow_peers is closed before
// it can send a request (event=peer_refused): the inject policy signs whatever client
// a request names, so only the MTA may ask.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "connection_handler.hpp"
#include <xproxy/base/ip.hpp>
#include <xproxy/daemon/http_listener.hpp>

namespace xproxy::policyd {

// An HTTP service served on the same io_context (http_listener.hpp): the auth policy.
struct HttpService {
    int fd = -1;       // listening; the server's from run() on
    std::string name;  // for log lines
    http::Limits limits;
    http::Handler handler;
};

struct ServerOptions {
    std::vector<int> listen_fds;
    unsigned threads = 2;
    std::chrono::seconds idle_timeout{300};  // Postfix closes idle policy connections after 300 s
    CidrSet allow_peers;                     // TCP peers served; others are closed at once (empty = nobody)
    std::vector<HttpService> http_services;
};

class Server {
public:
    Server(ServerOptions opts, std::shared_ptr<HandlerFactory> factory);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Runs until stop() or SIGTERM/SIGINT; on_hup runs on SIGHUP, started once the
    // signals are caught. Returns the process exit status.
    int run(const std::function<void()>& on_hup = {}, const std::function<void()>& started = {});
    void stop();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace xproxy::policyd
