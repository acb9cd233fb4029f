// handoff.cpp: see handoff.hpp (the messages are in handoff_wire.hpp).
#include "handoff.hpp"

#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <utility>

#include "fd_table.hpp"
#include "header_reader.hpp"
#include "log.hpp"
#include <xproxy/base/unique_fd.hpp>

namespace xproxy::preload {

namespace {

constexpr int kConnDeadlineMs = 200;
constexpr int kTakerWaitMs = 20;  // for an authenticated sibling's answer
constexpr int kMaxFds = 2;        // a message carries at most two descriptors

using Request = HandoffRequest;
using Reply = HandoffReply;

// The same open socket (device and inode: a socket's inode is unique while it exists).
bool same_socket(int a, int b) {
    struct stat x {
    }, y{};
    return a >= 0 && b >= 0 && fstat(a, &x) == 0 && fstat(b, &y) == 0 && S_ISSOCK(x.st_mode) && x.st_dev == y.st_dev &&
           x.st_ino == y.st_ino;
}

// One message and the descriptors that came with it; those not taken are closed, whatever
// the peer sent (more than kMaxFds: the kernel discards the rest and sets MSG_CTRUNC).
struct Received {
    ssize_t n = -1;
    UniqueFd fds[kMaxFds];
    int nfds = 0;
    bool extra = false;  // truncated control data, or descriptors of another kind
    int take(int i) { return fds[i].release(); }
};

void receive(int sock, void* buf, std::size_t len, Received& r) {
    iovec iov{buf, len};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    r.n = recvmsg(sock, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (r.n < 0) return;
    r.extra = (m.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0;
    for (cmsghdr* cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len < CMSG_LEN(0)) {
            r.extra = true;
            continue;
        }
        std::size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
            UniqueFd got(fd);
            if (r.nfds < kMaxFds) {
                r.fds[r.nfds++] = std::move(got);
            } else {
                r.extra = true;  // closed here
            }
        }
    }
}

// Sends one message with the given descriptors (none when count is 0).
bool send_with_fds(int sock, const void* buf, std::size_t len, const int* fds, int count) {
    iovec iov{const_cast<void*>(buf), len};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
    if (count > 0) {
        m.msg_control = control;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * static_cast<std::size_t>(count));
        cmsghdr* cm = CMSG_FIRSTHDR(&m);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * static_cast<std::size_t>(count));
        std::memcpy(CMSG_DATA(cm), fds, sizeof(int) * static_cast<std::size_t>(count));
    }
    return sendmsg(sock, &m, MSG_NOSIGNAL | MSG_DONTWAIT) == static_cast<ssize_t>(len);
}

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
    UniqueFd sock(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!sock) return false;
    const int fd = sock.get();
    sockaddr_un a;
    socklen_t len = abstract_address(s.handoff_name, a);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), len) != 0 || listen(fd, 64) != 0 ||
        epoll_ctl(s.epoll.fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        log_line(kWarning, "event=handoff_unavailable errno=%d", errno);
        std::memset(s.handoff_name, 0, sizeof s.handoff_name);
        return false;
    }
    s.handoff = adopt(fd);
    if (s.handoff.fd < 0) {
        epoll_ctl(s.epoll.fd, EPOLL_CTL_DEL, fd, nullptr);
        std::memset(s.handoff_name, 0, sizeof s.handoff_name);
        return false;
    }
    (void)sock.release();  // the shim's own descriptor from now on
    return true;
}

void accept_requests(State& s) {
    for (;;) {
        int c = real().accept4(s.handoff.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) return;
        adopt(c);
        ucred cred{};
        socklen_t len = sizeof cred;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.fd = c;
        if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != geteuid() ||
            epoll_ctl(s.epoll.fd, EPOLL_CTL_ADD, c, &ev) != 0) {
            release_fd(c);
            continue;
        }
        s.handoff_conns[c] = State::HandoffConn{now_ms() + kConnDeadlineMs, -1};
    }
}

// One step of the exchange with a requester (see handoff.hpp):
//   1. request naming a wake-up         -> our descriptor of that wake-up's listener;
//   2. request with its listener's      -> the ready connection, if that descriptor is
//                                          our listener.
// Anything else ends the exchange. Returns false when the connection is finished.
bool answer_step(State& s, int c, State::HandoffConn& hc) {
    Request req;
    Received got;
    receive(c, &req, sizeof req, got);
    if (got.n < 0 && (errno == EAGAIN || errno == EINTR)) return true;  // not there yet
    auto token = got.n == static_cast<ssize_t>(sizeof req) && req.version == kHandoffVersion && !got.extra
                     ? from_wire(req.token)
                     : std::nullopt;
    if (!token) return false;
    auto w = s.wakers.begin();
    while (w != s.wakers.end() && w->second.token != *token) ++w;
    Reply rep;
    if (hc.listener < 0) {  // step 1: prove that we hold the listener
        auto ls = w == s.wakers.end() ? s.listeners.end() : s.listeners.find(w->second.listener);
        if (got.nfds != 0 || ls == s.listeners.end() || !ls->second.still_listening()) {
            send_with_fds(c, &rep, sizeof rep, nullptr, 0);  // not (or no longer) ours
            return false;
        }
        hc.listener = w->second.listener;
        rep.found = 1;
        return send_with_fds(c, &rep, sizeof rep, &hc.listener, 1);
    }
    // Step 2: the requester's proof, then the connection.
    if (got.nfds != 1 || !same_socket(got.fds[0].get(), hc.listener)) {
        log_line(kWarning, "event=handoff_refused reason=\"the requester does not hold the listener\"");
        return false;
    }
    int passed = -1;
    auto ls = s.listeners.find(hc.listener);
    ReadyConn r;
    // A ready connection taken over behind our back is never passed on (pop_ready).
    if (w != s.wakers.end() && w->second.listener == hc.listener && ls != s.listeners.end() &&
        ls->second.pop_ready(r)) {
        rep.found = 1;
        rep.upstream = to_wire(r.upstream);
        rep.client = to_wire(r.client);
        rep.destination = to_wire(r.destination);
        passed = r.fd;
    }
    bool sent = send_with_fds(c, &rep, sizeof rep, &passed, passed >= 0 ? 1 : 0);
    if (passed >= 0) {
        if (sent) log_line(kDebug, "event=handed_off fd=%d", passed);
        else
            log_line(kWarning, "event=dropped reason=\"handing the connection to a sibling process failed\" errno=%d",
                     errno);
        release_fd(passed);  // the sibling owns it now (or it is lost, logged)
    }
    return false;
}

void answer(State& s, int c) {
    auto it = s.handoff_conns.find(c);
    if (it == s.handoff_conns.end()) return;
    if (is_own_fd(c) && answer_step(s, c, it->second)) return;
    s.handoff_conns.erase(c);
    release_fd(c);
}

// The owner (uid) of the socket at the other end of a local TCP connection, as the
// kernel records it (sock_diag): -1 when unknown. Asks the kernel only, never the peer.
long peer_socket_uid(int fd) {
    sockaddr_storage me{}, peer{};
    socklen_t ml = sizeof me, pl = sizeof peer;
    if (real().getsockname(fd, reinterpret_cast<sockaddr*>(&me), &ml) != 0 ||
        real().getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) != 0 || me.ss_family != peer.ss_family)
        return -1;
    struct {
        nlmsghdr nlh;
        inet_diag_req_v2 r;
    } req{};
    req.nlh.nlmsg_len = sizeof req;
    req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    req.nlh.nlmsg_flags = NLM_F_REQUEST;
    req.r.sdiag_family = static_cast<std::uint8_t>(me.ss_family);
    req.r.sdiag_protocol = IPPROTO_TCP;
    req.r.idiag_states = ~0U;
    req.r.id.idiag_cookie[0] = req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    // The peer's socket: its source is the peer, its destination is us.
    if (me.ss_family == AF_INET) {
        auto* m = reinterpret_cast<sockaddr_in*>(&me);
        auto* p = reinterpret_cast<sockaddr_in*>(&peer);
        req.r.id.idiag_sport = p->sin_port;
        req.r.id.idiag_dport = m->sin_port;
        std::memcpy(req.r.id.idiag_src, &p->sin_addr, 4);
        std::memcpy(req.r.id.idiag_dst, &m->sin_addr, 4);
    } else if (me.ss_family == AF_INET6) {
        auto* m = reinterpret_cast<sockaddr_in6*>(&me);
        auto* p = reinterpret_cast<sockaddr_in6*>(&peer);
        req.r.id.idiag_sport = p->sin6_port;
        req.r.id.idiag_dport = m->sin6_port;
        std::memcpy(req.r.id.idiag_src, &p->sin6_addr, 16);
        std::memcpy(req.r.id.idiag_dst, &m->sin6_addr, 16);
    } else {
        return -1;
    }
    UniqueFd netlink(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
    if (!netlink) return -1;
    const int nl = netlink.get();
    long uid = -1;
    alignas(nlmsghdr) char buf[1024];
    timeval tv{0, 100000};  // the kernel answers at once; this only bounds a broken case
    setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (send(nl, &req, sizeof req, 0) == static_cast<ssize_t>(sizeof req)) {
        ssize_t n = recv(nl, buf, sizeof buf, 0);
        auto* h = reinterpret_cast<nlmsghdr*>(buf);
        if (n >= static_cast<ssize_t>(NLMSG_LENGTH(sizeof(inet_diag_msg))) && NLMSG_OK(h, static_cast<unsigned>(n)) &&
            h->nlmsg_type == SOCK_DIAG_BY_FAMILY) {
            inet_diag_msg m;
            std::memcpy(&m, buf + NLMSG_HDRLEN, sizeof m);
            uid = static_cast<long>(m.idiag_uid);
        }
    }
    return uid;
}

}  // namespace

void wake_message(State& s, char (&msg)[kWakeMessageLength]) {
    std::memset(msg, 0, sizeof msg);
    std::memcpy(msg, kWakeMagic, kWakeMagicLength);
    if (s.handoff.fd >= 0 && !still_ours(s.handoff)) {  // replaced behind our back
        close_own(s.handoff);
        std::memset(s.handoff_name, 0, sizeof s.handoff_name);
    }
    if (s.handoff.fd < 0) open_handoff_socket(s);
    std::memcpy(msg + kWakeMagicLength, s.handoff_name, kHandoffNameLength);
}

bool handoff_event(State& s, int fd) {
    if (fd >= 0 && fd == s.handoff.fd) {
        if (still_ours(s.handoff)) accept_requests(s);
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
        if (it->second.deadline_ms <= now) {
            release_fd(it->first);
            it = s.handoff_conns.erase(it);
        } else {
            int t = static_cast<int>(it->second.deadline_ms - now);
            if (timeout < 0 || t < timeout) timeout = t;
            ++it;
        }
    }
    return timeout;
}

bool take_handoff(int wake_fd, int lfd, const Endpoint& wake_peer, ReadyConn& out) {
    // Anyone can connect from the wake-up address, and a complete message costs a forger
    // nothing: so before anything is read, let alone acted on, the kernel must say that
    // the connecting socket belongs to our own user (sock_diag); another user's wake-up is
    // refused at once, whether its message has arrived or not. The owner sends its message
    // as soon as its connection is established, which can be just after we accepted it:
    // ours is waited for, briefly.
    const long uid = peer_socket_uid(wake_fd);
    if (uid != static_cast<long>(geteuid())) {
        log_line(kDebug, "event=wake_refused reason=\"wake-up from another user\" uid=%ld", uid);
        return false;
    }
    char msg[kWakeMessageLength];
    std::size_t have = 0;
    const std::int64_t deadline = now_ms() + kTakerWaitMs;
    while (have < sizeof msg) {
        ssize_t n = recv(wake_fd, msg + have, sizeof msg - have, MSG_DONTWAIT);
        if (n > 0) {
            have += static_cast<std::size_t>(n);
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) return false;
        std::int64_t left = deadline - now_ms();
        pollfd w{wake_fd, POLLIN, 0};
        if (left <= 0 || poll(&w, 1, static_cast<int>(left)) < 0) return false;
    }
    if (std::memcmp(msg, kWakeMagic, kWakeMagicLength) != 0 || msg[kWakeMagicLength] == 0) return false;
    char name[kHandoffNameLength + 1] = {};
    std::memcpy(name, msg + kWakeMagicLength, kHandoffNameLength);
    UniqueFd sock(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!sock) return false;
    const int u = sock.get();
    sockaddr_un a;
    socklen_t alen = abstract_address(name, a);
    if (connect(u, reinterpret_cast<sockaddr*>(&a), alen) != 0) return false;  // gone, or its backlog is full
    // Who listens there, as the kernel recorded it: nothing is sent to, and nothing
    // waited for from, a process of another user.
    ucred cred{};
    socklen_t clen = sizeof cred;
    if (getsockopt(u, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0 || cred.uid != geteuid()) {
        log_line(kWarning, "event=wake_refused reason=\"hand-off socket of another user\" pid=%d uid=%u",
                 static_cast<int>(cred.pid), static_cast<unsigned>(cred.uid));
        return false;
    }
    Request req;
    req.token = to_wire(wake_peer);
    pollfd p{u, POLLIN, 0};
    Reply rep;
    // 1. The owner proves it holds our listener before we show ours.
    {
        Received r;
        if (!send_with_fds(u, &req, sizeof req, nullptr, 0) || poll(&p, 1, kTakerWaitMs) <= 0) return false;
        receive(u, &rep, sizeof rep, r);
        if (r.n != static_cast<ssize_t>(sizeof rep) || rep.version != kHandoffVersion || !rep.found) return false;
        if (r.nfds != 1 || r.extra || !same_socket(r.fds[0].get(), lfd)) {
            log_line(kWarning, "event=wake_refused reason=\"the hand-off peer does not hold the listener\" pid=%d",
                     static_cast<int>(cred.pid));
            return false;
        }
    }
    // 2. Our proof; the connection.
    Received r;
    if (!send_with_fds(u, &req, sizeof req, &lfd, 1) || poll(&p, 1, kTakerWaitMs) <= 0) return false;
    receive(u, &rep, sizeof rep, r);
    if (r.n != static_cast<ssize_t>(sizeof rep) || rep.version != kHandoffVersion || !rep.found || r.nfds != 1 ||
        r.extra)
        return false;
    auto upstream = from_wire(rep.upstream);
    if (!upstream) return false;
    out = ReadyConn{r.take(0), now_ms(), *upstream, from_wire(rep.client), from_wire(rep.destination)};
    return true;
}

}  // namespace xproxy::preload
