// preload_rate: connection rate of the same small server without and with
// libxproxy-preload.so (and, when the environment names one in LIBPROXYPROTO, with
// libproxyproto.so, another LD_PRELOAD library that reads PROXY headers), under the same
// load, in one run.
//
// usage: preload_rate [--mode blocking|epoll|nginx] [--seconds S] [--rounds N] [--clients C]
//        preload_rate server blocking|epoll        (prints "port=N", serves until killed)
//        preload_rate client PORT CONNECTIONS [C]  (C clients make CONNECTIONS in all; for
//                                                   perf, callgrind and strace of a server)
// blocking/epoll: the server (this program, re-executed as "preload_rate server MODE")
// greets, reads until "QUIT", answers and closes; it calls getpeername() on every
// connection, as a legacy gateway does. It does nothing else, so these two show the
// shim's cost at its largest. nginx: a real event-driven server (stream module, one
// worker, `return` of a greeting naming $remote_addr), run from a temporary directory.
// The clients always send a PROXY v2 header first (without the shim the server just
// receives it as data), so every configuration carries the same bytes. Each round runs
// every configuration once, in an order that rotates from round to round, so that machine
// noise hits all alike. The shim runs with its default log (syslog, level info) unless
// XPROXY_LOG / XPROXY_LOG_LEVEL are set; libproxyproto with
// LIBPROXYPROTO_MUST_USE_PROTOCOL_HEADER=1 (as the shim's XPROXY_REQUIRE=1), its default
// LIBPROXYPROTO_VERSION (v1 and v2: the v2 header is accepted) and no LIBPROXYPROTO_DEBUG.
// Printed: connections per second, the server's CPU time per connection (user + system,
// from wait4), the ratios of the medians, and each library's overhead per connection in
// microseconds of server CPU.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <xproxy/wire/proxy_protocol.hpp>

namespace {

const char kGreeting[] = "220 legacy.example ESMTP\r\n";
const char kBye[] = "221 bye\r\n";

void write_all(int fd, const char* p, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        p += w;
        n -= static_cast<size_t>(w);
    }
}

bool saw_quit(const std::string& s) { return s.find("QUIT\r\n") != std::string::npos; }

int listen_loopback(unsigned& port) {
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(lfd, 1024) != 0) {
        perror("bind/listen");
        exit(1);
    }
    socklen_t len = sizeof a;
    getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    return lfd;
}

void peer_of(int fd) {  // what a legacy gateway does with every connection
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len);
}

int serve_blocking(int lfd) {
    for (;;) {
        int fd = accept(lfd, nullptr, nullptr);
        if (fd < 0) continue;
        peer_of(fd);
        write_all(fd, kGreeting, sizeof kGreeting - 1);
        std::string in;
        char buf[512];
        for (;;) {
            ssize_t n = read(fd, buf, sizeof buf);
            if (n <= 0) break;
            in.append(buf, static_cast<size_t>(n));
            if (saw_quit(in)) break;
        }
        write_all(fd, kBye, sizeof kBye - 1);
        close(fd);
    }
}

int serve_epoll(int lfd) {
    fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
    int ep = epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = lfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    std::vector<std::string> inbox;
    for (;;) {
        epoll_event out[64];
        int n = epoll_wait(ep, out, 64, -1);
        for (int i = 0; i < n; ++i) {
            int fd = out[i].data.fd;
            if (fd == lfd) {
                for (;;) {
                    int c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK);
                    if (c < 0) break;
                    peer_of(c);
                    write_all(c, kGreeting, sizeof kGreeting - 1);
                    if (static_cast<size_t>(c) >= inbox.size()) inbox.resize(static_cast<size_t>(c) + 1);
                    inbox[static_cast<size_t>(c)].clear();
                    epoll_event cev{};
                    cev.events = EPOLLIN;
                    cev.data.fd = c;
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            char buf[512];
            ssize_t r = read(fd, buf, sizeof buf);
            if (r > 0) inbox[static_cast<size_t>(fd)].append(buf, static_cast<size_t>(r));
            if (r == 0 || (r < 0 && errno != EAGAIN) || saw_quit(inbox[static_cast<size_t>(fd)])) {
                write_all(fd, kBye, sizeof kBye - 1);
                close(fd);  // also leaves the epoll set
            }
        }
    }
}

// nginx as the server: writes its configuration into a temporary directory and execs it
// (in the child). Returns the port it will listen on.
unsigned nginx_port() {
    unsigned port = 0;
    int probe = listen_loopback(port);  // a free port, released for nginx
    close(probe);
    return port;
}

[[noreturn]] void exec_nginx(const std::string& root, unsigned port) {
    std::string conf = root + "/nginx.conf";
    FILE* f = fopen(conf.c_str(), "w");
    if (!f) _exit(126);
    fprintf(f,
            "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n"
            "worker_processes 1;\npid %s/nginx.pid;\nerror_log %s/error.log;\n"
            "events { worker_connections 1024; }\n"
            "stream { server { listen 127.0.0.1:%u; return \"220 $remote_addr\\r\\n221 bye\\r\\n\"; } }\n",
            root.c_str(), root.c_str(), port);
    fclose(f);
    printf("port=%u\n", port);
    fflush(stdout);
    std::string prefix = root + "/";
    execlp("nginx", "nginx", "-p", prefix.c_str(), "-c", conf.c_str(), "-g", "daemon off;",
           static_cast<char*>(nullptr));
    _exit(127);
}

bool wait_connectable(unsigned port) {
    for (int i = 0; i < 200; ++i) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_port = htons(static_cast<uint16_t>(port));
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bool ok = connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0;
        linger lg{1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(fd);
        if (ok) return true;
        usleep(20000);
    }
    return false;
}

struct Result {
    double rate = 0;    // connections per second
    double cpu_us = 0;  // server CPU per connection, microseconds
    long connections = 0;
};

// What runs in front of the server.
enum class Lib { none, shim, libproxyproto };
const char* lib_name(Lib l) { return l == Lib::none ? "without" : l == Lib::shim ? "shim" : "libproxyproto"; }

// One client connection: header + EHLO + QUIT, reads until the server closes. True when
// the server said goodbye.
bool one_connection(const sockaddr_in& to, const std::string& request) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
        close(fd);
        return false;
    }
    write_all(fd, request.data(), request.size());
    std::string in;
    char buf[256];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
    }
    linger lg{1, 0};  // no TIME_WAIT pile-up across rounds
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    return in.find("221 bye") != std::string::npos;
}

sockaddr_in loopback_port(unsigned port) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<uint16_t>(port));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return to;
}

// The environment of the server for one configuration (in the child, before exec).
void set_server_env(Lib lib) {
    unsetenv("LD_PRELOAD");
    if (lib == Lib::shim) {
        setenv("LD_PRELOAD", XPROXY_PRELOAD_SO, 1);
        setenv("XPROXY_TRUSTED", "127.0.0.1/32", 1);  // XPROXY_LOG*: the caller's, default syslog/info
    } else if (lib == Lib::libproxyproto) {
        setenv("LD_PRELOAD", getenv("LIBPROXYPROTO"), 1);
        setenv("LIBPROXYPROTO_MUST_USE_PROTOCOL_HEADER", "1", 1);
        unsetenv("LIBPROXYPROTO_DEBUG");
        unsetenv("LIBPROXYPROTO_VERSION");  // default 3: v1 and v2
    }
}

Result run_round(const char* self, const std::string& mode, Lib lib, double seconds, int clients,
                 const std::string& header) {
    int p[2];
    if (pipe(p) != 0) exit(1);
    bool nginx = mode == "nginx";
    unsigned nport = nginx ? nginx_port() : 0;
    char dir[] = "/tmp/xproxy-preload-rate-XXXXXX";
    std::string nginx_dir = nginx && mkdtemp(dir) ? dir : "";
    fflush(stdout);  // the child must not inherit our buffered lines
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        set_server_env(lib);
        if (nginx) exec_nginx(nginx_dir, nport);
        execl(self, self, "server", mode.c_str(), static_cast<char*>(nullptr));
        _exit(127);
    }
    close(p[1]);
    char line[64] = {};
    ssize_t got = read(p[0], line, sizeof line - 1);
    close(p[0]);
    unsigned port = got > 5 ? static_cast<unsigned>(std::strtol(line + 5, nullptr, 10)) : 0;
    if (port == 0 || (nginx && !wait_connectable(port))) {
        fprintf(stderr, "server did not start\n");
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        exit(1);
    }
    std::atomic<long> done{0};
    std::atomic<long> failed{0};
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    std::string request = header + "EHLO bench\r\nQUIT\r\n";
    std::vector<std::thread> pool;
    pool.reserve(static_cast<std::size_t>(clients));
    auto t0 = std::chrono::steady_clock::now();
    const sockaddr_in to = loopback_port(port);
    for (int c = 0; c < clients; ++c) {
        pool.emplace_back([&] {
            while (std::chrono::steady_clock::now() < deadline) {
                if (one_connection(to, request)) ++done;
                else ++failed;
            }
        });
    }
    for (auto& t : pool) t.join();
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    kill(pid, nginx ? SIGQUIT : SIGTERM);  // nginx: graceful, the master reaps its worker
    int status;
    rusage ru{};
    wait4(pid, &status, 0, &ru);
    if (!nginx_dir.empty()) {
        for (const char* f : {"/nginx.conf", "/nginx.pid", "/error.log"}) unlink((nginx_dir + f).c_str());
        rmdir(nginx_dir.c_str());
    }
    Result r;
    r.connections = done.load();
    r.rate = static_cast<double>(r.connections) / elapsed;
    double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
                 static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
    r.cpu_us = r.connections ? cpu / static_cast<double>(r.connections) : 0;
    if (failed.load() > 0) fprintf(stderr, "  (%s: %ld failed connections)\n", lib_name(lib), failed.load());
    return r;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

std::string v2_header() {
    xproxy::SourceInfo si;
    si.client = xproxy::Endpoint{*xproxy::IpAddress::parse("192.0.2.7"), 40007};
    si.server = xproxy::Endpoint{*xproxy::IpAddress::parse("127.0.0.1"), 25};
    return xproxy::pp::encode_v2(si);  // PROXY, TCP over IPv4, no TLV: 28 bytes
}

// "client PORT CONNECTIONS [CLIENTS]": a fixed number of connections, for profiling a
// server started by hand ("server MODE" under perf, valgrind or strace).
int run_clients(unsigned port, long connections, int clients) {
    const std::string request = v2_header() + "EHLO bench\r\nQUIT\r\n";
    const sockaddr_in to = loopback_port(port);
    std::atomic<long> next{0}, done{0};
    std::vector<std::thread> pool;
    pool.reserve(static_cast<std::size_t>(clients > 0 ? clients : 0));
    for (int c = 0; c < clients; ++c)
        pool.emplace_back([&] {
            while (next.fetch_add(1) < connections)
                if (one_connection(to, request)) ++done;
        });
    for (auto& t : pool) t.join();
    printf("%ld of %ld connections served\n", done.load(), connections);
    return done.load() == connections ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 3 && std::strcmp(argv[1], "server") == 0) {
        unsigned port = 0;
        int lfd = listen_loopback(port);
        printf("port=%u\n", port);
        fflush(stdout);
        return std::strcmp(argv[2], "epoll") == 0 ? serve_epoll(lfd) : serve_blocking(lfd);
    }
    if (argc >= 4 && std::strcmp(argv[1], "client") == 0)
        return run_clients(static_cast<unsigned>(std::strtoul(argv[2], nullptr, 10)), std::strtol(argv[3], nullptr, 10),
                           argc >= 5 ? static_cast<int>(std::strtol(argv[4], nullptr, 10)) : 1);
    std::string mode = "blocking";
    double seconds = 2;
    int rounds = 5, clients = 4;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string k = argv[i];
        if (k == "--mode") mode = argv[i + 1];
        else if (k == "--seconds") seconds = std::strtod(argv[i + 1], nullptr);
        else if (k == "--rounds") rounds = static_cast<int>(std::strtol(argv[i + 1], nullptr, 10));
        else if (k == "--clients") clients = static_cast<int>(std::strtol(argv[i + 1], nullptr, 10));
        else {
            fprintf(stderr,
                    "usage: preload_rate [--mode blocking|epoll|nginx] [--seconds S] [--rounds N] [--clients C]\n");
            return 2;
        }
    }
    const std::string header = v2_header();
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return 1;
    self[n] = 0;
    std::vector<Lib> libs = {Lib::none, Lib::shim};
    const char* lpp = getenv("LIBPROXYPROTO");
    if (lpp && *lpp) {
        if (access(lpp, R_OK) != 0) {
            fprintf(stderr, "preload_rate: LIBPROXYPROTO=%s is not readable\n", lpp);
            return 2;
        }
        libs.push_back(Lib::libproxyproto);
    }
    const char* log = getenv("XPROXY_LOG");
    const char* level = getenv("XPROXY_LOG_LEVEL");
    printf("preload_rate: %s server, %d clients, %d rounds of %.1f s per configuration\n", mode.c_str(), clients,
           rounds, seconds);
    printf("  shim: %s, XPROXY_LOG=%s XPROXY_LOG_LEVEL=%s\n", XPROXY_PRELOAD_SO, log ? log : "(default: syslog)",
           level ? level : "(default: info)");
    if (libs.size() > 2)
        printf("  libproxyproto: %s, LIBPROXYPROTO_MUST_USE_PROTOCOL_HEADER=1, header v2 (TCP4, %zu bytes)\n", lpp,
               header.size());
    printf("  %-6s %-14s %12s %16s\n", "round", "server", "conn/s", "server CPU/conn");
    std::vector<std::vector<double>> rate(libs.size()), cpu(libs.size());
    for (int r = 0; r < rounds; ++r) {
        for (std::size_t k = 0; k < libs.size(); ++k) {
            std::size_t i = (k + static_cast<std::size_t>(r)) % libs.size();  // the order rotates
            Result res = run_round(self, mode, libs[i], seconds, clients, header);
            rate[i].push_back(res.rate);
            cpu[i].push_back(res.cpu_us);
            printf("  %-6d %-14s %12.0f %13.1f us\n", r + 1, lib_name(libs[i]), res.rate, res.cpu_us);
            fflush(stdout);
        }
    }
    std::vector<double> mr, mc;
    for (std::size_t i = 0; i < libs.size(); ++i) {
        mr.push_back(median(rate[i]));
        mc.push_back(median(cpu[i]));
        printf("median  %-14s %10.0f conn/s  %6.1f us CPU/conn\n", lib_name(libs[i]), mr[i], mc[i]);
    }
    auto ratio = [](double a, double b) { return b > 0 ? a / b : 0; };
    printf("rate ratio shim/without: %.3f (target >= 0.95)\n", ratio(mr[1], mr[0]));
    printf("overhead per connection shim: %.1f us of server CPU\n", mc[1] - mc[0]);
    if (libs.size() > 2) {
        printf("rate ratio libproxyproto/without: %.3f\n", ratio(mr[2], mr[0]));
        printf("rate ratio shim/libproxyproto: %.3f (target > 1)\n", ratio(mr[1], mr[2]));
        printf("overhead per connection libproxyproto: %.1f us of server CPU\n", mc[2] - mc[0]);
    }
    return 0;
}
