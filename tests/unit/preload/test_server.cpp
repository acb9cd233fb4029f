// test_server: a small "legacy" TCP server the shim tests run with LD_PRELOAD set. It
// knows nothing of PROXY headers: it reports what libc tells it.
//
// usage: preload_test_server MODE [v6|v6only] ; prints "port=N\n" on stdout once listening.
// MODE: blocking  - one thread, blocking accept()
//       threads   - four threads calling accept() on the same blocking listener
//       epoll     - accept4(SOCK_NONBLOCK) on a non-blocking listener driven by epoll
//       dup       - like blocking, but serves each connection through dup()/dup2()/fcntl(F_DUPFD)
//       fclose    - like blocking, but closes each connection with fclose() (not hooked); when
//                   the payload is "C<port>", first opens an outgoing connection on the
//                   same descriptor number to that port and reports its getpeername()
//       highfd    - like blocking, with 1100 descriptors opened first (accepted fds > 1024)
//       eagain    - non-blocking listener; calls accept() 100000 times with nothing
//                   pending, prints "eagain=N", serves 3 connections and exits normally
//                   (for leak checkers)
//       prefork   - three forked worker processes, each an epoll loop on the shared
//                   non-blocking listener (as nginx runs); each accept is also reported
//                   on stdout as "conn pid=P accept=A"
//       addrlen   - like blocking, but gives accept() and getpeername() an 8-byte address
//                   buffer and reports the lengths and the bytes they returned
//       preforkb  - two forked worker processes, each one thread in a blocking accept() on
//                   the shared listener (as pre-forking servers run)
//       closerange - like fclose, closing with close_range() instead
//       closeloop - like blocking, after closing every descriptor from 3 to 1023 but the
//                   listener and stdout (as daemons do at start), one by one
//       closefrom - the same with close_range() around the listener
//       eintr     - like blocking, with a SIGUSR1 handler installed without SA_RESTART;
//                   an accept() failing with EINTR prints "eintr" on stdout
//       restart   - the same with SA_RESTART
//       clobber   - like blocking; a connection sending "CLOBBER" makes the server dup2() a
//                   socket of its own over every pipe and eventfd it did not open (the
//                   shim's) and answer "clobbered=N"; one sending "CHECK" gets
//                   "leaked=N", the bytes anyone wrote into that socket since
//       sigclose  - like blocking, with a timer signal every 50 us whose handler calls
//                   close(dup(C)), C being the connection being served (or the listener)
//       unix      - blocking accept() on an AF_UNIX listener; prints "unix=PATH" instead
//                   of "port=N" and answers "family=F acclen=L peerrc=R peerfamily=F data=D"
// v6: listen on [::] (dual stack) instead of 127.0.0.1; v6only: on [::1], IPv6 only.
// Per connection it writes "accept=A peer=P sock=S fd=N fl=F\n" (F: the flags accept gave
// the fd: "nb" O_NONBLOCK, "ce" FD_CLOEXEC, "-" none), reads until EOF or a line
// "STATS", and answers "data=<bytes received>\n" or "fds=N rss=KB\n".
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

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
            if (strncmp(line, "VmRSS:", 6) == 0) rss = strtol(line + 6, nullptr, 10);
        fclose(f);
    }
    return "fds=" + std::to_string(fds) + " rss=" + std::to_string(rss) + "\n";
}

static std::string describe(int fd, const sockaddr_storage& acc, socklen_t acclen, const std::string& fl) {
    sockaddr_storage peer{}, sock{};
    socklen_t pl = sizeof peer, sl = sizeof sock;
    std::string p = getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) == 0 ? fmt(peer, pl) : "error";
    std::string s = getsockname(fd, reinterpret_cast<sockaddr*>(&sock), &sl) == 0 ? fmt(sock, sl) : "error";
    return "accept=" + fmt(acc, acclen) + " peer=" + p + " sock=" + s + " fd=" + std::to_string(fd) + " fl=" + fl +
           "\n";
}

static std::string hex(const void* p, size_t n) {
    std::string out;
    char b[3];
    for (size_t i = 0; i < n; ++i) {
        snprintf(b, sizeof b, "%02x", static_cast<const unsigned char*>(p)[i]);
        out += b;
    }
    return out;
}

// "clobber" mode: the server's socket pair; what is written into [0] arrives at [1].
static int g_clobber[2] = {-1, -1};

static std::string clobber() {
    if (g_clobber[0] < 0 && socketpair(AF_UNIX, SOCK_STREAM, 0, g_clobber) != 0) return "clobbered=error\n";
    int n = 0;
    if (DIR* d = opendir("/proc/self/fd")) {
        std::vector<int> fds;
        while (dirent* e = readdir(d)) {
            int fd = static_cast<int>(strtol(e->d_name, nullptr, 10));
            char link[64] = {};
            std::string path = "/proc/self/fd/" + std::string(e->d_name);
            if (e->d_name[0] == '.' || fd <= 2 || fd == dirfd(d) || fd == g_clobber[0] || fd == g_clobber[1] ||
                readlink(path.c_str(), link, sizeof link - 1) <= 0)
                continue;
            if (strncmp(link, "pipe:", 5) == 0 || strcmp(link, "anon_inode:[eventfd]") == 0) fds.push_back(fd);
        }
        closedir(d);
        for (int fd : fds)
            if (dup2(g_clobber[0], fd) == fd) ++n;
    }
    return "clobbered=" + std::to_string(n) + "\n";
}

static std::string leaked() {
    char buf[256];
    ssize_t n, total = 0;
    while (g_clobber[1] >= 0 && (n = recv(g_clobber[1], buf, sizeof buf, MSG_DONTWAIT)) > 0) total += n;
    return "leaked=" + std::to_string(total) + "\n";
}

// "sigclose" mode: the descriptor the signal handler duplicates and closes.
static volatile sig_atomic_t g_sigfd = -1;

// Blocking service of one connection.
static void serve(int fd, const sockaddr_storage& acc, socklen_t acclen, const char* mode) {
    g_sigfd = fd;
    int flags = fcntl(fd, F_GETFL);
    // The flags accept() gave the connection: "nb" O_NONBLOCK, "ce" FD_CLOEXEC, "-" neither.
    std::string fl = std::string(flags & O_NONBLOCK ? "nb" : "") + (fcntl(fd, F_GETFD) & FD_CLOEXEC ? "ce" : "");
    if (fl.empty()) fl = "-";
    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    if (strncmp(mode, "prefork", 7) == 0)
        write_all(1, "conn pid=" + std::to_string(getpid()) + " accept=" + fmt(acc, acclen) + "\n");
    if (strcmp(mode, "dup") == 0) {
        int a = dup(fd);
        close(fd);
        int b = fcntl(a, F_DUPFD, 200);
        close(a);
        int c = dup2(b, 300);
        close(b);
        fd = c;
    }
    write_all(fd, describe(fd, acc, acclen, fl));
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
    bool closerange = strcmp(mode, "closerange") == 0;
    if ((strcmp(mode, "fclose") == 0 || closerange) && data.size() > 1 && data[0] == 'C') {
        write_all(fd, "data=" + data + "\n");
        int old = fd;
        if (closerange) {
            close_range(static_cast<unsigned>(fd), static_cast<unsigned>(fd), 0);
        } else {
            FILE* f = fdopen(fd, "r+");
            fclose(f);  // glibc closes without calling close(): the shim does not see it
        }
        // Reuse the number for an outgoing connection that has nothing to do with PROXY.
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s != old) {
            dup2(s, old);
            close(s);
            s = old;
        }
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_port = htons(static_cast<uint16_t>(strtol(data.c_str() + 1, nullptr, 10)));
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
    if (strcmp(mode, "clobber") == 0 && (data == "CLOBBER" || data == "CHECK")) {
        write_all(fd, data == "CLOBBER" ? clobber() : leaked());
        close(fd);
        return;
    }
    write_all(fd, "data=" + data + "\n");
    if (strcmp(mode, "fclose") == 0) {
        fclose(fdopen(fd, "r+"));  // not hooked: the shim never hears of this close
        return;
    }
    close(fd);
}

static int serve_unix() {
    std::string path = "/tmp/xproxy-preload-test-" + std::to_string(getpid()) + ".sock";
    unlink(path.c_str());
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    if (bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(lfd, 16) != 0) return 1;
    printf("unix=%s\n", path.c_str());
    fflush(stdout);
    for (;;) {
        sockaddr_storage acc{};
        socklen_t al = sizeof acc;
        int fd = accept(lfd, reinterpret_cast<sockaddr*>(&acc), &al);
        if (fd < 0) continue;
        sockaddr_storage peer{};
        socklen_t pl = sizeof peer;
        int rc = getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl);
        std::string out = "family=" + std::to_string(acc.ss_family) + " acclen=" + std::to_string(al) +
                          " peerrc=" + std::to_string(rc) + " peerfamily=" + std::to_string(peer.ss_family) + " data=";
        char buf[256];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) out.append(buf, static_cast<size_t>(n));
        write_all(fd, out + "\n");
        close(fd);
    }
}

// accept()/getpeername() with an 8-byte buffer: the caller's length must be honoured and
// the true length reported.
static void serve_addrlen(int lfd) {
    for (;;) {
        unsigned char acc[32], peer[32];
        memset(acc, 0xEE, sizeof acc);
        memset(peer, 0xEE, sizeof peer);
        socklen_t al = 8, pl = 8;
        int fd = accept(lfd, reinterpret_cast<sockaddr*>(acc), &al);
        if (fd < 0) continue;
        getpeername(fd, reinterpret_cast<sockaddr*>(peer), &pl);
        write_all(fd, "acclen=" + std::to_string(al) + " accbytes=" + hex(acc, 10) + " peerlen=" + std::to_string(pl) +
                          " peerbytes=" + hex(peer, 10) + "\n");
        close(fd);
    }
}

// An epoll loop on a non-blocking listener; one thread per connection.
static void epoll_loop(int lfd, const char* mode) {
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

int main(int argc, char** argv) {
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 2 && strcmp(argv[1], "unix") == 0) return serve_unix();
    if (argc < 2) {
        fprintf(stderr, "usage: preload_test_server MODE [v6]\n");
        return 2;
    }
    const char* mode = argv[1];
    bool v6only = argc > 2 && strcmp(argv[2], "v6only") == 0;
    bool v6 = v6only || (argc > 2 && strcmp(argv[2], "v6") == 0);
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
        setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, v6only ? &one : &zero, sizeof zero);
        auto* s = reinterpret_cast<sockaddr_in6*>(&ss);
        s->sin6_family = AF_INET6;
        s->sin6_addr = v6only ? in6addr_loopback : in6addr_any;
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
    unsigned port = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                             : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    printf("port=%u\n", port);
    fflush(stdout);

    bool event = strcmp(mode, "epoll") == 0 || strcmp(mode, "eagain") == 0;  // prefork: below
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
        epoll_loop(lfd, mode);
    }
    if (strcmp(mode, "addrlen") == 0) serve_addrlen(lfd);
    if (strcmp(mode, "closeloop") == 0) {
        for (int fd = 3; fd < 1024; ++fd)
            if (fd != lfd) close(fd);
    }
    if (strcmp(mode, "closefrom") == 0) {
        close_range(3, static_cast<unsigned>(lfd) - 1, 0);
        close_range(static_cast<unsigned>(lfd) + 1, ~0U, 0);
    }
    if (strcmp(mode, "sigclose") == 0) {
        g_sigfd = lfd;
        struct sigaction sa {};
        sa.sa_handler = [](int) {
            int saved = errno;
            int n = dup(g_sigfd);  // async-signal-safe, as are close() and dup()
            if (n >= 0) close(n);
            errno = saved;
        };
        sa.sa_flags = SA_RESTART;
        sigaction(SIGALRM, &sa, nullptr);
        itimerval it{{0, 50}, {0, 50}};
        setitimer(ITIMER_REAL, &it, nullptr);
    }
    if (strcmp(mode, "eintr") == 0 || strcmp(mode, "restart") == 0) {
        struct sigaction sa {};
        sa.sa_handler = [](int) {};
        sa.sa_flags = strcmp(mode, "restart") == 0 ? SA_RESTART : 0;
        sigaction(SIGUSR1, &sa, nullptr);  // without SA_RESTART accept() fails with EINTR
    }
    if (strcmp(mode, "preforkb") == 0) {
        for (int w = 0; w < 2; ++w) {
            if (fork() == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                for (;;) {
                    sockaddr_storage acc{};
                    socklen_t al = sizeof acc;
                    int fd = accept(lfd, reinterpret_cast<sockaddr*>(&acc), &al);
                    if (fd >= 0) serve(fd, acc, al, mode);
                }
            }
        }
        for (;;) pause();
    }
    if (strcmp(mode, "prefork") == 0) {
        fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
        for (int w = 0; w < 3; ++w) {
            if (fork() == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);  // the test stops the parent by PID
                epoll_loop(lfd, mode);
            }
        }
        for (;;) pause();
    }
    int workers = strcmp(mode, "threads") == 0 ? 4 : 1;
    std::vector<std::thread> pool;
    auto loop = [lfd, mode, workers] {
        for (;;) {
            sockaddr_storage acc{};
            socklen_t al = sizeof acc;
            int fd = accept(lfd, reinterpret_cast<sockaddr*>(&acc), &al);
            if (fd < 0 && errno == EINTR) write_all(1, "eintr\n");
            if (fd < 0) continue;
            if (workers > 1) std::thread(serve, fd, acc, al, mode).detach();
            else serve(fd, acc, al, mode);
        }
    };
    // One worker runs in the main thread, where a process-directed signal lands.
    for (int w = 1; w < workers; ++w) pool.emplace_back(loop);
    loop();
}
