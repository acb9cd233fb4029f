// test_server: a small "legacy" TCP server the shim tests run with LD_PRELOAD set. It
// knows nothing of PROXY headers: it reports what libc tells it.
//
// usage: preload_test_server MODE [v6] ; prints "port=N\n" on stdout once listening.
// MODE: blocking  - one thread, blocking accept()
//       threads   - four threads calling accept() on the same blocking listener
//       epoll     - accept4(SOCK_NONBLOCK) on a non-blocking listener driven by epoll
//       dup       - like blocking, but serves each connection through dup()/dup2()/fcntl(F_DUPFD)
//       fclose    - like blocking, but closes each connection with fclose() (not hooked), then
//                   opens an outgoing connection to the port named by the first payload byte
//                   pair ("C<port>") and reports that socket's getpeername()
//       highfd    - like blocking, with 1100 descriptors opened first (accepted fds > 1024)
//       eagain    - non-blocking listener; calls accept() 100000 times with nothing
//                   pending, then serves like epoll (for leak checks)
// v6: listen on [::] (dual stack) instead of 127.0.0.1.
// Per connection it writes "accept=A peer=P sock=S fd=N\n", reads until EOF or a line
// "STATS", and answers "data=<bytes received>\n" or "fds=N rss=KB\n".
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <dirent.h>

#include <string>
#include <thread>
#include <vector>

static std::string fmt(const sockaddr_storage& ss, socklen_t len) {
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss.ss_family == AF_INET && len >= sizeof(sockaddr_in)) {
        auto* s = reinterpret_cast<const sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &s->sin_addr, host, sizeof host);
        port = ntohs(s->sin_port);
        return std::string(host) + ":" + std::to_string(port);
    }
    if (ss.ss_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
        auto* s = reinterpret_cast<const sockaddr_in6*>(&ss);
        inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof host);
        port = ntohs(s->sin6_port);
        return "[" + std::string(host) + "]:" + std::to_string(port);
    }
    return "family" + std::to_string(ss.ss_family) + "/len" + std::to_string(len);
}

static void write_all(int fd, const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
        ssize_t n = write(fd, s.data() + off, s.size() - off);
        if (n <= 0) return;
        off += static_cast<size_t>(n);
    }
}

static std::string stats() {
    int fds = 0;
    if (DIR* d = opendir("/proc/self/fd")) {
        while (readdir(d)) ++fds;
        closedir(d);
        fds -= 3;  // ".", ".." and the DIR's own fd
    }
    long rss = 0;
    if (FILE* f = fopen("/proc/self/status", "r")) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "VmRSS:", 6) == 0) rss = atol(line + 6);
        fclose(f);
    }
    return "fds=" + std::to_string(fds) + " rss=" + std::to_string(rss) + "\n";
}

static std::string describe(int fd, const sockaddr_storage& acc, socklen_t acclen) {
    sockaddr_storage peer{}, sock{};
    socklen_t pl = sizeof peer, sl = sizeof sock;
    std::string p = getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) == 0 ? fmt(peer, pl) : "error";
    std::string s = getsockname(fd, reinterpret_cast<sockaddr*>(&sock), &sl) == 0 ? fmt(sock, sl) : "error";
    return "accept=" + fmt(acc, acclen) + " peer=" + p + " sock=" + s + " fd=" + std::to_string(fd) + "\n";
}

// Blocking service of one connection.
static void serve(int fd, const sockaddr_storage& acc, socklen_t acclen, const char* mode) {
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    if (strcmp(mode, "dup") == 0) {
        int a = dup(fd);
        close(fd);
        int b = fcntl(a, F_DUPFD, 200);
        close(a);
        int c = dup2(b, 300);
        close(b);
        fd = c;
    }
    write_all(fd, describe(fd, acc, acclen));
    std::string data;
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) break;
        data.append(buf, static_cast<size_t>(n));
        if (data.find("STATS\n") != std::string::npos) {
            write_all(fd, stats());
            close(fd);
            return;
        }
    }
    if (strcmp(mode, "fclose") == 0 && data.size() > 1 && data[0] == 'C') {
        write_all(fd, "data=" + data + "\n");
        FILE* f = fdopen(fd, "r+");
        int old = fd;
        fclose(f);  // glibc closes without calling close(): the shim does not see it
        // Reuse the number for an outgoing connection that has nothing to do with PROXY.
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s != old) {
            dup2(s, old);
            close(s);
            s = old;
        }
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_port = htons(static_cast<uint16_t>(atoi(data.c_str() + 1)));
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(s, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0) {
            sockaddr_storage peer{};
            socklen_t pl = sizeof peer;
            std::string p = getpeername(s, reinterpret_cast<sockaddr*>(&peer), &pl) == 0 ? fmt(peer, pl) : "error";
            write_all(s, "reused fd=" + std::to_string(s) + " peer=" + p + "\n");
        }
        close(s);
        return;
    }
    write_all(fd, "data=" + data + "\n");
    close(fd);
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: preload_test_server MODE [v6]\n");
        return 2;
    }
    const char* mode = argv[1];
    bool v6 = argc > 2 && strcmp(argv[2], "v6") == 0;
    if (strcmp(mode, "highfd") == 0) {
        rlimit rl{4096, 4096};
        setrlimit(RLIMIT_NOFILE, &rl);
        for (int i = 0; i < 1100; ++i) open("/dev/null", O_RDONLY);
    }
    int lfd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    int one = 1, zero = 0;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_storage ss{};
    socklen_t len;
    if (v6) {
        setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        auto* s = reinterpret_cast<sockaddr_in6*>(&ss);
        s->sin6_family = AF_INET6;
        s->sin6_addr = in6addr_any;
        len = sizeof *s;
    } else {
        auto* s = reinterpret_cast<sockaddr_in*>(&ss);
        s->sin_family = AF_INET;
        s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *s;
    }
    if (bind(lfd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(lfd, 512) != 0) {
        perror("bind/listen");
        return 1;
    }
    len = sizeof ss;
    getsockname(lfd, reinterpret_cast<sockaddr*>(&ss), &len);
    unsigned port = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    printf("port=%u\n", port);
    fflush(stdout);

    bool event = strcmp(mode, "epoll") == 0 || strcmp(mode, "eagain") == 0;
    if (event) {
        fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
        if (strcmp(mode, "eagain") == 0) {
            int eagain = 0;
            for (int i = 0; i < 100000; ++i) {
                int fd = accept(lfd, nullptr, nullptr);
                if (fd < 0 && errno == EAGAIN) ++eagain;
                else if (fd >= 0) close(fd);
            }
            printf("eagain=%d\n", eagain);
            fflush(stdout);
            // Then serve three connections in this thread and exit normally, so that a
            // leak checker sees the whole life of the process.
            int ep = epoll_create1(EPOLL_CLOEXEC);
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.fd = lfd;
            epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
            int served = 0;
            while (served < 3) {
                epoll_event out[4];
                if (epoll_wait(ep, out, 4, 10000) <= 0) break;
                sockaddr_storage acc{};
                socklen_t al = sizeof acc;
                int fd = accept4(lfd, reinterpret_cast<sockaddr*>(&acc), &al, SOCK_NONBLOCK);
                if (fd < 0) continue;
                serve(fd, acc, al, mode);
                ++served;
            }
            close(ep);
            close(lfd);
            return 0;
        }
        int ep = epoll_create1(0);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = lfd;
        epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
        for (;;) {
            epoll_event out[16];
            int n = epoll_wait(ep, out, 16, -1);
            for (int i = 0; i < n; ++i) {
                for (;;) {  // edge-safe: accept until EAGAIN, as nginx does
                    sockaddr_storage acc{};
                    socklen_t al = sizeof acc;
                    int fd = accept4(lfd, reinterpret_cast<sockaddr*>(&acc), &al, SOCK_NONBLOCK);
                    if (fd < 0) break;
                    std::thread(serve, fd, acc, al, mode).detach();
                }
            }
        }
    }
    int workers = strcmp(mode, "threads") == 0 ? 4 : 1;
    std::vector<std::thread> pool;
    for (int w = 0; w < workers; ++w) {
        pool.emplace_back([lfd, mode, workers] {
            for (;;) {
                sockaddr_storage acc{};
                socklen_t al = sizeof acc;
                int fd = accept(lfd, reinterpret_cast<sockaddr*>(&acc), &al);
                if (fd < 0) continue;
                if (workers > 1) std::thread(serve, fd, acc, al, mode).detach();
                else serve(fd, acc, al, mode);
            }
        });
    }
    for (auto& t : pool) t.join();
}
