// policyd_load: load generator for Postfix policy servers (bench/policyd_bench.sh).
//   policyd_load PORT CONNECTIONS SECONDS [RATE]
// Opens CONNECTIONS persistent connections to 127.0.0.1:PORT and sends the Postfix 3.7
// RCPT request captured in tests/e2e/data. Without RATE each connection sends its next
// request as soon as the previous reply arrived (throughput); with RATE requests per
// second are started on a fixed schedule spread over the connections (latency: a request
// late on its schedule counts from when it was due). Prints
// "requests=N seconds=S rate=R p50_us=.. p99_us=.. max_us=.. errors=E".
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: policyd_load PORT CONNECTIONS SECONDS REQUEST_FILE [RATE]\n");
        return 2;
    }
    int port = std::atoi(argv[1]);
    int nconn = std::atoi(argv[2]);
    double seconds = std::atof(argv[3]);
    std::ifstream in(argv[4], std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string req = ss.str();
    double rate = argc > 5 ? std::atof(argv[5]) : 0;

    std::vector<int> fds;
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(port));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < nconn; ++i) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
            std::perror("connect");
            return 1;
        }
        fds.push_back(fd);
    }
    struct Conn {
        bool busy = false;
        Clock::time_point started;
        std::string buf;
    };
    std::vector<Conn> conns(static_cast<std::size_t>(nconn));
    std::vector<double> lat;
    lat.reserve(2000000);
    long errors = 0, sent = 0;
    auto t0 = Clock::now();
    auto end = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    std::vector<pollfd> pfds(static_cast<std::size_t>(nconn));
    long due = 0;  // open loop: requests due so far
    std::size_t next_conn = 0;
    std::deque<Clock::time_point> backlog;  // due times not yet sent (open loop)
    for (;;) {
        auto now = Clock::now();
        if (now >= end) break;
        if (rate > 0) {
            long should = static_cast<long>(std::chrono::duration<double>(now - t0).count() * rate);
            for (; due < should; ++due)
                backlog.push_back(t0 + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(static_cast<double>(due) / rate)));
        }
        for (std::size_t k = 0; k < conns.size(); ++k) {
            std::size_t i = (next_conn + k) % conns.size();
            if (conns[i].busy) continue;
            if (rate > 0) {
                if (backlog.empty()) break;
                conns[i].started = backlog.front();
                backlog.pop_front();
            } else {
                conns[i].started = now;
            }
            if (send(fds[i], req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) ++errors;
            conns[i].busy = true;
            ++sent;
            next_conn = i + 1;
        }
        for (std::size_t i = 0; i < fds.size(); ++i) pfds[i] = {fds[i], POLLIN, 0};
        // Open loop: sleep no longer than until the next request is due.
        timespec ts{0, 100000000};
        if (rate > 0) {
            auto next_due = t0 + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(static_cast<double>(due) / rate));
            auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(next_due - Clock::now()).count();
            if (!backlog.empty() || wait < 0) wait = 0;
            ts = {0, static_cast<long>(wait)};
        }
        int n = ppoll(pfds.data(), pfds.size(), &ts, nullptr);
        if (n <= 0) continue;
        for (std::size_t i = 0; i < fds.size(); ++i) {
            if (!(pfds[i].revents & POLLIN)) continue;
            char b[4096];
            ssize_t r = recv(fds[i], b, sizeof b, 0);
            if (r <= 0) {
                ++errors;
                conns[i].busy = true;  // dead connection stays out of the rotation
                continue;
            }
            conns[i].buf.append(b, static_cast<std::size_t>(r));
            std::size_t p;
            while ((p = conns[i].buf.find("\n\n")) != std::string::npos) {
                if (conns[i].buf.rfind("action=", 0) != 0) ++errors;
                conns[i].buf.erase(0, p + 2);
                lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - conns[i].started).count());
                conns[i].busy = false;
            }
        }
    }
    double s = std::chrono::duration<double>(Clock::now() - t0).count();
    std::sort(lat.begin(), lat.end());
    auto pct = [&](double q) { return lat.empty() ? 0.0 : lat[std::min(lat.size() - 1, static_cast<std::size_t>(q * static_cast<double>(lat.size())))]; };
    std::printf("requests=%zu seconds=%.2f rate=%.0f p50_us=%.0f p99_us=%.0f max_us=%.0f errors=%ld\n", lat.size(), s,
                static_cast<double>(lat.size()) / s, pct(0.5), pct(0.99), lat.empty() ? 0.0 : lat.back(), errors);
    for (int fd : fds) close(fd);
    return errors ? 1 : 0;
}
