// policyd_load: load generator for Postfix policy servers (bench/policyd_bench.sh).
//   policyd_load PORT CONNECTIONS SECONDS REQUEST_FILE [RATE]
// Opens CONNECTIONS persistent TCP connections to 127.0.0.1:PORT (TCP_NODELAY) and sends
// the requests of REQUEST_FILE (one or more Postfix policy requests, each ended by an
// empty line) in turn, like Postfix: at most one request outstanding per connection.
//   without RATE (closed loop): each connection sends its next request as soon as the
//     reply to the previous one arrived; measures throughput.
//   with RATE (open loop): request k is due at k / RATE seconds, evenly paced (the wait
//     uses epoll_pwait2 with a nanosecond timeout and 1 ns timer slack), and goes out on
//     the next idle connection, round robin from connection k % CONNECTIONS; if none is
//     idle it waits for the first one that becomes idle.
// Latency is measured per request from its send() to the arrival of its reply. How late
// the generator itself sent requests (send time minus due time) is reported separately
// as lag_*: a large lag means the machine, not the server, was the bottleneck. The first
// tenth of the run (at most 1 s) is warm-up and not counted. Prints one line:
//   requests=N seconds=S rate=R p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=..
//   lag_p99_us=.. lag_max_us=.. unsent=U errors=E actions=DUNNO:n,550:n,...
// `actions` counts the replies by the first word of the action, so two servers can be
// checked to answer a request mix alike.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Conn {
    int fd = -1;
    bool busy = false;
    bool counted = false;  // the outstanding request is past the warm-up
    Clock::time_point sent;
    std::string buf;
};

std::vector<std::string> split_requests(const std::string& text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    for (;;) {
        auto end = text.find("\n\n", start);
        if (end == std::string::npos) break;
        out.push_back(text.substr(start, end + 2 - start));
        start = end + 2;
    }
    return out;
}

double percentile(const std::vector<double>& sorted, double q) {
    if (sorted.empty()) return 0;
    auto rank = static_cast<std::size_t>(q * static_cast<double>(sorted.size()) + 0.999999);
    return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

double micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

}  // namespace

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: policyd_load PORT CONNECTIONS SECONDS REQUEST_FILE [RATE]\n");
        return 2;
    }
    const int port = static_cast<int>(std::strtol(argv[1], nullptr, 10));
    const int nconn = static_cast<int>(std::strtol(argv[2], nullptr, 10));
    const double seconds = std::strtod(argv[3], nullptr);
    const double rate = argc > 5 ? std::strtod(argv[5], nullptr) : 0;
    std::ifstream in(argv[4], std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::vector<std::string> reqs = split_requests(ss.str());
    if (port <= 0 || nconn <= 0 || seconds <= 0 || reqs.empty()) {
        std::fprintf(stderr, "policyd_load: bad arguments or no request in %s\n", argv[4]);
        return 2;
    }
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    std::vector<Conn> conns(static_cast<std::size_t>(nconn));
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(port));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (std::size_t i = 0; i < conns.size(); ++i) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
            std::perror("policyd_load: connect");
            return 1;
        }
        conns[i].fd = fd;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = i;
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }

    std::vector<double> lat, lag;
    lat.reserve(4000000);
    lag.reserve(rate > 0 ? static_cast<std::size_t>(rate * seconds) + 16 : 16);
    std::map<std::string, long> actions;
    long errors = 0;
    std::size_t next_req = 0;  // index into reqs, cycles
    const auto t0 = Clock::now();
    const auto warm = t0 + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(std::min(1.0, seconds / 10)));
    const auto end = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    auto due_time = [&](long k) {
        return t0 + std::chrono::duration_cast<Clock::duration>(
                        std::chrono::duration<double>(static_cast<double>(k) / rate));
    };
    auto send_on = [&](Conn& c, Clock::time_point due) {
        const std::string& r = reqs[next_req];
        next_req = (next_req + 1) % reqs.size();
        c.sent = Clock::now();
        c.busy = true;
        c.counted = due >= warm;
        if (send(c.fd, r.data(), r.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(r.size())) ++errors;
        if (rate > 0 && c.counted) lag.push_back(micros(c.sent - due));
    };

    long k = 0;                             // open loop: next request number to become due
    std::deque<Clock::time_point> backlog;  // due but no idle connection yet
    std::vector<epoll_event> events(conns.size());
    for (;;) {
        auto now = Clock::now();
        if (now >= end) break;
        if (rate > 0) {
            for (; due_time(k) <= now; ++k) {
                std::size_t start = static_cast<std::size_t>(k) % conns.size();
                std::size_t i = 0;
                for (; i < conns.size(); ++i)
                    if (!conns[(start + i) % conns.size()].busy) break;
                if (i < conns.size() && backlog.empty()) send_on(conns[(start + i) % conns.size()], due_time(k));
                else backlog.push_back(due_time(k));
            }
        } else {
            for (auto& c : conns)
                if (!c.busy) send_on(c, now);
        }
        timespec ts{0, 100000000};
        if (rate > 0) {
            auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(due_time(k) - Clock::now()).count();
            wait = std::max<long long>(0, std::min<long long>(wait, 100000000));
            ts.tv_nsec = static_cast<long>(wait);
        }
        int n = epoll_pwait2(ep, events.data(), static_cast<int>(events.size()), &ts, nullptr);
        for (int e = 0; e < n; ++e) {
            Conn& c = conns[events[static_cast<std::size_t>(e)].data.u64];
            char b[4096];
            ssize_t r = recv(c.fd, b, sizeof b, MSG_DONTWAIT);
            if (r <= 0) {
                ++errors;
                epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
                c.busy = true;  // a dead connection stays out of the rotation
                continue;
            }
            auto got = Clock::now();
            c.buf.append(b, static_cast<std::size_t>(r));
            std::size_t p;
            while ((p = c.buf.find("\n\n")) != std::string::npos) {
                if (c.buf.rfind("action=", 0) != 0) {
                    ++errors;
                } else {
                    auto word_end = c.buf.find_first_of(" \n", 7);
                    ++actions[c.buf.substr(7, word_end - 7)];
                }
                c.buf.erase(0, p + 2);
                if (!c.busy) {
                    ++errors;  // a reply nobody asked for
                    continue;
                }
                if (c.counted) lat.push_back(micros(got - c.sent));
                c.busy = false;
                if (rate > 0 && !backlog.empty()) {
                    send_on(c, backlog.front());
                    backlog.pop_front();
                }
            }
        }
    }
    double measured = std::chrono::duration<double>(Clock::now() - warm).count();
    std::sort(lat.begin(), lat.end());
    std::sort(lag.begin(), lag.end());
    std::string acts;
    for (const auto& [word, count] : actions) acts += (acts.empty() ? "" : ",") + word + ":" + std::to_string(count);
    std::printf(
        "requests=%zu seconds=%.2f rate=%.0f p50_us=%.0f p90_us=%.0f p99_us=%.0f p999_us=%.0f max_us=%.0f "
        "lag_p99_us=%.0f lag_max_us=%.0f unsent=%zu errors=%ld actions=%s\n",
        lat.size(), measured, static_cast<double>(lat.size()) / measured, percentile(lat, 0.50), percentile(lat, 0.90),
        percentile(lat, 0.99), percentile(lat, 0.999), lat.empty() ? 0.0 : lat.back(), percentile(lag, 0.99),
        lag.empty() ? 0.0 : lag.back(), backlog.size(), errors, acts.empty() ? "-" : acts.c_str());
    for (auto& c : conns) close(c.fd);
    close(ep);
    return errors ? 1 : 0;
}
