// downstream_pool.cpp: parked downstream connections; see the header.
#include "downstream_pool.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace xproxy::xproxyd {

DownstreamPool::~DownstreamPool() {
    for (auto& [name, q] : idle_)
        for (auto& c : q) discard(c);
}

void DownstreamPool::discard(PooledConnection& c) {
    if (c.conn) c.conn->close();
    c.conn.reset();
    c.fd.reset();
}

bool DownstreamPool::usable(const PooledConnection& c, std::chrono::steady_clock::time_point now) const {
    if (now - c.since > limit_) return false;
    // Nothing may be waiting on a parked connection: EOF or a 421 means the server gave up.
    char b;
    const int fd = c.conn ? c.conn->socket().native_handle() : c.fd.get();
    ssize_t n = ::recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void DownstreamPool::put(const std::string& downstream, PooledConnection c) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& q = idle_[downstream];
    c.since = std::chrono::steady_clock::now();
    q.push_back(std::move(c));
    while (q.size() > max_) {
        discard(q.front());
        q.pop_front();
    }
}

std::optional<PooledConnection> DownstreamPool::take(const std::string& downstream, const std::string& identity) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = idle_.find(downstream);
    if (it == idle_.end()) return std::nullopt;
    auto& q = it->second;
    auto now = std::chrono::steady_clock::now();
    // Drop what has expired or died, oldest first.
    while (!q.empty() && now - q.front().since > limit_) {
        discard(q.front());
        q.pop_front();
    }
    for (auto c = q.rbegin(); c != q.rend(); ++c) {
        if (c->identity != identity) continue;
        PooledConnection out = std::move(*c);
        q.erase(std::next(c).base());
        if (usable(out, now)) return out;
        discard(out);
        return std::nullopt;
    }
    return std::nullopt;
}

std::size_t DownstreamPool::size() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::size_t n = 0;
    for (const auto& [name, q] : idle_) n += q.size();
    return n;
}

}  // namespace xproxy::xproxyd
