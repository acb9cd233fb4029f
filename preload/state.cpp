// state.cpp: libc lookups, the shared state, logging and the header reader.
#include "state.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>

#include "xproxy/proxy_protocol.hpp"

namespace xproxy::preload {

namespace {
template <class T>
T lookup(const char* name) {
    return reinterpret_cast<T>(dlsym(RTLD_NEXT, name));
}

int g_log_fd = -1;  // stderr duplicate or a file, opened at load time
}  // namespace

const Real& real() {
    static const Real r = {
        lookup<decltype(Real::accept)>("accept"),           lookup<decltype(Real::accept4)>("accept4"),
        lookup<decltype(Real::getpeername)>("getpeername"), lookup<decltype(Real::getsockname)>("getsockname"),
        lookup<decltype(Real::close)>("close"),             lookup<decltype(Real::dup)>("dup"),
        lookup<decltype(Real::dup2)>("dup2"),               lookup<decltype(Real::dup3)>("dup3"),
        lookup<decltype(Real::fcntl)>("fcntl"),
    };
    return r;
}

State& state() {
    static State* s = new State;  // never destroyed: entry points may run during exit
    return *s;
}

std::int64_t now_ms() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

void open_log(const Config& cfg) {
    if (cfg.log == Config::Log::stderr_) {
        g_log_fd = real().fcntl(2, F_DUPFD_CLOEXEC, 100);
    } else if (cfg.log == Config::Log::file) {
        // Opened now, while a daemon such as Postfix's smtpd is still root.
        g_log_fd = open(cfg.log_file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (g_log_fd >= 0) {
            int high = real().fcntl(g_log_fd, F_DUPFD_CLOEXEC, 100);  // out of the application's way
            if (high >= 0) {
                real().close(g_log_fd);
                g_log_fd = high;
            }
        }
    } else if (cfg.log == Config::Log::syslog) {
        openlog("xproxy-preload", LOG_PID | LOG_NDELAY, LOG_MAIL);
    }
}

void log_line(int level, const char* fmt, ...) {
    const Config& cfg = state().config;
    if (cfg.log == Config::Log::off || level > cfg.log_level) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    static const char* names[] = {"error", "warning", "info", "debug"};
    if (g_log_fd >= 0) {
        char line[1200];
        int n = std::snprintf(line, sizeof line, "xproxy-preload[%d]: %s: %s\n", static_cast<int>(getpid()),
                              names[level & 3], msg);
        if (n > 0) {
            ssize_t ignored = write(g_log_fd, line, static_cast<std::size_t>(n) < sizeof line ? static_cast<std::size_t>(n) : sizeof line - 1);
            (void)ignored;
        }
        return;
    }
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    syslog(LOG_MAIL | prio[level & 3], "xproxy-preload: %s", msg);
}

ReadResult read_header(int fd, const Config& cfg) {
    ReadResult out;
    // Most headers fit here; a v2 header with large TLVs is peeked again in full.
    std::uint8_t small[256];
    ssize_t n = recv(fd, small, sizeof small, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) {
        out.status = ReadStatus::drop;
        out.reason = "connection closed before a complete PROXY header";
        return out;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return out;  // need_more
        out.status = ReadStatus::drop;
        out.reason = "read error before a complete PROXY header";
        return out;
    }
    const std::uint8_t* data = small;
    std::size_t size = static_cast<std::size_t>(n);
    if (size >= kWakeMagicLength && std::memcmp(small, kWakeMagic, kWakeMagicLength) == 0) {
        out.status = ReadStatus::wake;
        return out;
    }
    std::unique_ptr<std::uint8_t[]> big;
    proxy::Header h;
    DecodeResult r = proxy::decode(data, size, h);
    if (r.need_more() && size >= proxy::kV2HeaderLength && small[0] == proxy::kV2Signature[0]) {
        std::size_t total = proxy::kV2HeaderLength + ((std::size_t{small[14]} << 8) | small[15]);
        if (total > size) {
            big.reset(new std::uint8_t[total]);
            ssize_t m = recv(fd, big.get(), total, MSG_PEEK | MSG_DONTWAIT);
            if (m <= 0) return out;  // need_more (or closed: seen on the next attempt)
            data = big.get();
            size = static_cast<std::size_t>(m);
            r = proxy::decode(data, size, h);
        }
    }
    if (r.need_more()) return out;
    if (r.invalid()) {
        out.status = ReadStatus::drop;
        out.reason = r.reason.data();  // static storage, NUL-terminated literal
        return out;
    }
    if (!cfg.hmac_key.empty() && !proxy::verify_hmac(data, r.consumed, h, cfg.hmac_key)) {
        out.status = ReadStatus::drop;
        out.reason = "PROXY header without a valid HMAC";
        return out;
    }
    // Consume exactly the header: what follows belongs to the application.
    std::uint8_t sink[256];
    std::size_t left = r.consumed;
    while (left > 0) {
        ssize_t m = recv(fd, sink, left < sizeof sink ? left : sizeof sink, MSG_DONTWAIT);
        if (m <= 0) {
            if (m < 0 && errno == EINTR) continue;
            out.status = ReadStatus::drop;
            out.reason = "read error while consuming the PROXY header";
            return out;
        }
        left -= static_cast<std::size_t>(m);
    }
    out.status = ReadStatus::complete;
    out.version = h.version;
    if (h.command == proxy::Command::proxy && h.has_addresses &&
        (h.family == proxy::Family::inet || h.family == proxy::Family::inet6)) {
        out.client = h.source;
        out.destination = h.destination;
    }
    return out;
}

}  // namespace xproxy::preload
