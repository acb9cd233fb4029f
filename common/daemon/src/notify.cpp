// notify.cpp: sd_notify(3) for the daemons; see notify.hpp.
#include <xproxy/daemon/notify.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include <xproxy/base/escape.hpp>
#include <xproxy/base/ip.hpp>
#include <xproxy/daemon/log.hpp>

namespace xproxy::daemon {
namespace {

std::atomic<bool> g_failure_logged{false};

// "STATUS=" and the status on one line.
std::string status_line(std::string_view status) {
    std::string line = "STATUS=";
    for (char c : status) line += c == '\n' || c == '\r' ? ' ' : c;
    return line;
}

bool send(const std::string& message) {
    const int r = sd_notify(0, message.c_str());
    if (r >= 0) return r > 0;
    if (!g_failure_logged.exchange(true)) {
        const char* socket = std::getenv("NOTIFY_SOCKET");
        log::warning("event=notify_failed socket=\"%s\" error=\"%s\" (not repeated)",
                     escape_value(socket ? socket : "").c_str(), std::strerror(-r));
    }
    return false;
}

std::string describe_listener(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
        if (ss.ss_family == AF_UNIX) {
            const auto* sun = reinterpret_cast<const sockaddr_un*>(&ss);
            const auto path_len = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
            std::string path(sun->sun_path, std::min<std::size_t>(path_len, sizeof sun->sun_path));
            if (!path.empty() && path.front() == '\0') return "unix:@" + escape(path.substr(1));
            return "unix:" + escape(path.substr(0, path.find('\0')));
        }
        const bool v6 = ss.ss_family == AF_INET6;
        if (auto e = Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&ss), len))
            return (v6 ? "inet6:" : "inet:") + e->to_string();
    }
    return "fd:" + std::to_string(fd);
}

}  // namespace

bool notify_ready(std::string_view status) { return send("READY=1\n" + status_line(status)); }

bool notify_reloading(std::string_view status) {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    const auto usec = static_cast<unsigned long long>(now.tv_sec) * 1000000ULL +
                      static_cast<unsigned long long>(now.tv_nsec) / 1000ULL;
    return send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec) + "\n" + status_line(status));
}

bool notify_stopping() { return send("STOPPING=1\nSTATUS=stopping"); }

bool notify_status(std::string_view status) { return send(status_line(status)); }

std::string listening_status(const std::vector<int>& fds) {
    std::string out = "listening on ";
    for (std::size_t i = 0; i < fds.size(); ++i) out += (i ? ", " : "") + describe_listener(fds[i]);
    return out;
}

}  // namespace xproxy::daemon
