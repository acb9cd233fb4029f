// conn_rate: a load client for bench/preload_bench.sh. Opens N connections one after the
// other to 127.0.0.1:PORT, each sending a PROXY v2 header and "x", half-closing and reading
// the server's answer to the end; prints "connections=N seconds=S rate=R".
// usage: preload_conn_rate PORT N
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "xproxy/proxy_protocol.hpp"

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: preload_conn_rate PORT N\n");
        return 2;
    }
    int port = std::atoi(argv[1]);
    long n = std::atol(argv[2]);
    xproxy::SourceInfo si;
    si.client = xproxy::Endpoint{*xproxy::IpAddress::parse("192.0.2.66"), 40000};
    si.server = xproxy::Endpoint{*xproxy::IpAddress::parse("127.0.0.1"), static_cast<std::uint16_t>(port)};
    std::string msg = xproxy::proxy::encode_v2(si) + "x";
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(port));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    auto t0 = std::chrono::steady_clock::now();
    long ok = 0;
    char buf[512];
    for (long i = 0; i < n; ++i) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0 &&
            send(fd, msg.data(), msg.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(msg.size())) {
            shutdown(fd, SHUT_WR);
            ssize_t got = 0, r;
            while ((r = read(fd, buf, sizeof buf)) > 0) got += r;
            if (got > 0) ++ok;
        }
        close(fd);
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("connections=%ld seconds=%.3f rate=%.1f\n", ok, s, static_cast<double>(ok) / s);
    return ok == n ? 0 : 1;
}
