// handoff.cpp: see handoff.hpp. Messages are fixed-size structs: both ends are the same
// library (forked or exec'd siblings); kVersion guards against a mixed upgrade.
#include "handoff.hpp"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "header_reader.hpp"
#include "log.hpp"

namespace xproxy::preload {

namespace {

constexpr std::uint8_t kVersion = 1;
constexpr int kConnDeadlineMs = 200;
constexpr int kTakerWaitMs = 20;  // for the wake-up's bytes, and for the answer

struct WireEndpoint {
    std::uint8_t present = 0;
    std::uint8_t pad[3] = {};
    std::uint32_t len = 0;
    sockaddr_storage addr{};
};

struct Request {
    std::uint8_t version = kVersion;
    WireEndpoint token;
};

struct Reply {
    std::uint8_t version = kVersion;
    std::uint8_t found = 0;
    WireEndpoint upstream, client, destination;
};

WireEndpoint to_wire(const std::optional<Endpoint>& e) {
    WireEndpoint w;
    if (e) {
        w.present = 1;
        w.len = e->to_sockaddr(w.addr);
    }
    return w;
}

std::optional<Endpoint> from_wire(const WireEndpoint& w) {
    if (!w.present || w.len > sizeof w.addr) return std::nullopt;
    return Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&w.addr), w.len);
}

socklen_t abstract_address(const char* name, sockaddr_un& a) {
    std::memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    std::size_t n = strnlen(name, kHandoffNameLength);
    std::memcpy(a.sun_path + 1, name, n);  // sun_path[0] == 0: abstract namespace
    return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
}

bool open_handoff_socket(State& s) {
    std::uint64_t nonce = 0;
    if (getrandom(&nonce, sizeof nonce, GRND_NONBLOCK) != sizeof nonce) nonce ^= static_cast<std::uint64_t>(now_ms());
    std::memset(s.handoff_name, 0, sizeof s.handoff_name);
    std::snprintf(s.handoff_name, sizeof s.handoff_name, "xproxy-preload.%d.%016llx", static_cast<int>(getpid()),
                  static_cast<unsigned long long>(nonce));
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un a;
    socklen_t len = abstract_address(s.handoff_name, a);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), len) != 0 || listen(fd, 64) != 0 ||
        epoll_ctl(s.epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        log_line(kWarning, "event=handoff_unavailable errno=%d", errno);
        real().close(fd);
        std::memset(s.handoff_name, 0, sizeof s.handoff_name);
        return false;
    }
    s.handoff_fd = fd;
    s.handoff_ino = inode_of(fd);
    return true;
}

void accept_requests(State& s) {
    for (;;) {
        int c = real().accept4(s.handoff_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) return;
        ucred cred{};
        socklen_t len = sizeof cred;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.fd = c;
        if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != geteuid() ||
            epoll_ctl(s.epoll_fd, EPOLL_CTL_ADD, c, &ev) != 0) {
            real().close(c);
            continue;
        }
        s.handoff_conns[c] = now_ms() + kConnDeadlineMs;
    }
}

// Answers one request: the ready connection announced by the named wake-up, if any.
void answer(State& s, int c) {
    Request req;
    ssize_t n = recv(c, &req, sizeof req, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;  // not there yet
    s.handoff_conns.erase(c);
    Reply rep;
    int passed = -1;
    auto token = n == static_cast<ssize_t>(sizeof req) && req.version == kVersion ? from_wire(req.token) : std::nullopt;
    if (token) {
        for (auto w = s.wakers.begin(); w != s.wakers.end(); ++w) {
            if (w->second.token != *token) continue;
            auto ls = s.listeners.find(w->second.listener);
            if (ls != s.listeners.end() && !ls->second.ready.empty()) {
                ReadyConn r = std::move(ls->second.ready.front());
                ls->second.ready.pop_front();
                rep.found = 1;
                rep.upstream = to_wire(r.upstream);
                rep.client = to_wire(r.client);
                rep.destination = to_wire(r.destination);
                passed = r.fd;
            }
            break;
        }
    }
    iovec iov{&rep, sizeof rep};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    if (passed >= 0) {
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        cmsghdr* cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(cm), &passed, sizeof passed);
    }
    if (sendmsg(c, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) != static_cast<ssize_t>(sizeof rep) && passed >= 0)
        log_line(kWarning, "event=dropped reason=\"handing the connection to a sibling process failed\" errno=%d", errno);
    else if (passed >= 0)
        log_line(kDebug, "event=handed_off fd=%d", passed);
    if (passed >= 0) real().close(passed);  // the sibling owns it now (or it is lost, logged)
    real().close(c);
}

}  // namespace

void wake_message(State& s, char (&msg)[kWakeMessageLength]) {
    std::memset(msg, 0, sizeof msg);
    std::memcpy(msg, kWakeMagic, kWakeMagicLength);
    if (s.handoff_fd < 0) open_handoff_socket(s);
    std::memcpy(msg + kWakeMagicLength, s.handoff_name, kHandoffNameLength);
}

bool handoff_event(State& s, int fd) {
    if (fd >= 0 && fd == s.handoff_fd) {
        accept_requests(s);
        return true;
    }
    if (s.handoff_conns.count(fd)) {
        answer(s, fd);
        return true;
    }
    return false;
}

int handoff_housekeeping(State& s, std::int64_t now) {
    int timeout = -1;
    for (auto it = s.handoff_conns.begin(); it != s.handoff_conns.end();) {
        if (it->second <= now) {
            real().close(it->first);
            it = s.handoff_conns.erase(it);
        } else {
            int t = static_cast<int>(it->second - now);
            if (timeout < 0 || t < timeout) timeout = t;
            ++it;
        }
    }
    return timeout;
}

bool take_handoff(int wake_fd, const Endpoint& wake_peer, ReadyConn& out) {
    char msg[kWakeMessageLength];
    std::size_t got = 0;
    std::int64_t deadline = now_ms() + kTakerWaitMs;
    while (got < sizeof msg) {
        ssize_t n = recv(wake_fd, msg + got, sizeof msg - got, MSG_DONTWAIT);
        if (n > 0) {
            got += static_cast<std::size_t>(n);
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) return false;
        std::int64_t left = deadline - now_ms();
        pollfd p{wake_fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, static_cast<int>(left)) < 0) return false;
    }
    if (std::memcmp(msg, kWakeMagic, kWakeMagicLength) != 0 || msg[kWakeMagicLength] == 0) return false;
    char name[kHandoffNameLength + 1] = {};
    std::memcpy(name, msg + kWakeMagicLength, kHandoffNameLength);
    int u = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (u < 0) return false;
    timeval tv{0, kTakerWaitMs * 1000};
    setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(u, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_un a;
    socklen_t alen = abstract_address(name, a);
    Request req;
    req.token = to_wire(wake_peer);
    Reply rep;
    iovec iov{&rep, sizeof rep};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    ssize_t n = -1;
    if (connect(u, reinterpret_cast<sockaddr*>(&a), alen) == 0 && send(u, &req, sizeof req, MSG_NOSIGNAL) == sizeof req)
        n = recvmsg(u, &m, MSG_CMSG_CLOEXEC);
    real().close(u);
    int fd = -1;
    for (cmsghdr* cm = n > 0 ? CMSG_FIRSTHDR(&m) : nullptr; cm; cm = CMSG_NXTHDR(&m, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS && cm->cmsg_len == CMSG_LEN(sizeof(int)))
            std::memcpy(&fd, CMSG_DATA(cm), sizeof fd);
    auto upstream = from_wire(rep.upstream);
    if (n != static_cast<ssize_t>(sizeof rep) || rep.version != kVersion || !rep.found || fd < 0 || !upstream) {
        if (fd >= 0) real().close(fd);
        return false;
    }
    out = ReadyConn{fd, now_ms(), *upstream, from_wire(rep.client), from_wire(rep.destination)};
    return true;
}

}  // namespace xproxy::preload
