// waker.cpp: see waker.hpp.
#include "waker.hpp"

#include <errno.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "fd_table.hpp"
#include "handoff.hpp"
#include "header_reader.hpp"
#include "log.hpp"
#include <xproxy/base/unique_fd.hpp>

namespace xproxy::preload {

namespace {

constexpr std::size_t kMaxWakers = 8;

const IpAddress& v6_any() {
    static const std::uint8_t zero[16] = {};
    static const IpAddress a = IpAddress::v6_bytes(zero);
    return a;
}

std::size_t wakers_of(const State& s, int lfd) {
    std::size_t n = 0;
    for (const auto& [fd, w] : s.wakers) n += w.listener == lfd;
    return n;
}

void send_magic(State& s, int fd, Waker& w) {
    if (!is_own_fd(fd)) return;  // replaced behind our back: never write into it
    char msg[kWakeMessageLength];
    wake_message(s, msg);
    if (send(fd, msg, sizeof msg, MSG_NOSIGNAL | MSG_DONTWAIT) == static_cast<ssize_t>(sizeof msg)) w.magic_sent = true;
}

// Where a wake-up connection goes and comes from: IPv4 from kWakeSourceV4 whenever the
// listener accepts IPv4 (an IPv4 listener, or a dual-stack IPv6 one bound to ::).
void wake_route(int lfd, const Endpoint& listener, Endpoint& to, IpAddress& from) {
    to = listener;
    from = IpAddress::v4(kWakeSourceV4);
    if (to.addr == IpAddress()) {
        to.addr = IpAddress::v4(0x7f000001);
    } else if (to.addr == v6_any()) {
        int v6only = 0;
        socklen_t len = sizeof v6only;
        if (getsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len) == 0 && !v6only) {
            to.addr = IpAddress::v4(0x7f000001);
        } else {
            to.addr = *IpAddress::parse("::1");
            from = to.addr;
        }
    } else if (to.addr.is_v6()) {
        from = to.addr;  // an IPv6 address of ours: recognised by the magic bytes
    }
}

void open_wake_connection(State& s, int lfd, const Listener& ls) {
    Endpoint target;
    IpAddress source;
    wake_route(lfd, ls.address(), target, source);
    sockaddr_storage to;
    unsigned to_len = target.to_sockaddr(to);
    UniqueFd sock(socket(to.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!sock) return;
    sockaddr_storage from;
    unsigned from_len = Endpoint{source, 0}.to_sockaddr(from);
    if (bind(sock.get(), reinterpret_cast<sockaddr*>(&from), from_len) != 0 ||
        (connect(sock.get(), reinterpret_cast<sockaddr*>(&to), to_len) != 0 && errno != EINPROGRESS)) {
        log_line(kWarning, "event=wake_failed listener=%s errno=%d", target.to_string().c_str(), errno);
        return;
    }
    const int fd = sock.release();  // the shim's own descriptor from now on
    adopt(fd);
    sockaddr_storage me{};
    socklen_t me_len = sizeof me;
    std::optional<Endpoint> token;
    if (real().getsockname(fd, reinterpret_cast<sockaddr*>(&me), &me_len) == 0)
        token = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&me), me_len);
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.fd = fd;
    if (!token || epoll_ctl(s.epoll.fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        release_fd(fd);
        return;
    }
    Waker& w = s.wakers[fd];
    w = Waker{lfd, *token, false};
    send_magic(s, fd, w);  // usually the loopback handshake is already complete
    log_line(kDebug, "event=wake listener=%s token=%s", target.to_string().c_str(), token->to_string().c_str());
}

}  // namespace

bool is_wake_source(const Endpoint& peer) { return peer.addr == IpAddress::v4(kWakeSourceV4); }

int wake_listener(State& s, int lfd, Listener& ls, std::int64_t now) {
    int wait = ls.wake_due(now);
    if (wait != 0) return wait;
    if (wakers_of(s, lfd) < kMaxWakers) open_wake_connection(s, lfd, ls);
    return ls.wake_sent(now);
}

void waker_event(State& s, int fd, std::uint32_t events) {
    auto it = s.wakers.find(fd);
    if (it == s.wakers.end()) return;
    if (events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
        // Refused, or a sibling process took it: wake again soon (Listener::wake_refused).
        if (auto ls = s.listeners.find(it->second.listener); ls != s.listeners.end()) ls->second.wake_refused();
        s.wakers.erase(it);
        release_fd(fd);
        return;
    }
    if ((events & EPOLLOUT) && !it->second.magic_sent) send_magic(s, fd, it->second);
}

bool consume_wake_token(State& s, const Endpoint& peer) {
    for (auto it = s.wakers.begin(); it != s.wakers.end(); ++it) {
        if (it->second.token == peer) {
            int fd = it->first;
            s.wakers.erase(it);
            release_fd(fd);
            return true;
        }
    }
    return false;
}

void close_wakers(State& s, int lfd) {
    for (auto it = s.wakers.begin(); it != s.wakers.end();) {
        if (it->second.listener == lfd) {
            release_fd(it->first);
            it = s.wakers.erase(it);
        } else {
            ++it;
        }
    }
}

}  // namespace xproxy::preload
