// milter_socket.cpp: see milter_socket.hpp.
#include "milter_socket.hpp"

#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstdlib>

namespace xproxy::milter {

std::string libmilter_conn(const daemon::ListenSpec& spec, const std::string& placeholder, int activated) {
    using K = daemon::ListenSpec::Kind;
    switch (spec.kind) {
        case K::inet:
            return (spec.host.find(':') != std::string::npos ? "inet6:" : "inet:") + std::to_string(spec.port) + "@" +
                   spec.host;
        case K::unix_: return "unix:" + spec.path;
        case K::fd:
        case K::systemd: {
            sockaddr_storage ss{};
            socklen_t len = sizeof ss;
            if (activated >= 0 && getsockname(activated, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
                if (ss.ss_family == AF_INET) return "inet:0@127.0.0.1";
                if (ss.ss_family == AF_INET6) return "inet6:0@::1";
            }
            return "unix:" + placeholder;
        }
    }
    return {};
}

std::set<int> listening_fds() {
    std::set<int> out;
    DIR* d = opendir("/proc/self/fd");
    if (!d) return out;
    int self = dirfd(d);
    while (dirent* e = readdir(d)) {
        char* end = nullptr;
        long fd = std::strtol(e->d_name, &end, 10);
        if (!end || *end || fd < 0 || fd == self) continue;
        int accepting = 0;
        socklen_t len = sizeof accepting;
        if (getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) == 0 && accepting)
            out.insert(static_cast<int>(fd));
    }
    closedir(d);
    return out;
}

bool set_nodelay_if_tcp(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return false;
    if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) return true;
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0;
}

bool has_nodelay(int fd) {
    int v = 0;
    socklen_t len = sizeof v;
    return getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len) == 0 && v != 0;
}

}  // namespace xproxy::milter
