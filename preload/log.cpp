// log.cpp: see log.hpp. A file or stderr destination is a descriptor moved above 100 and
// remembered by device and inode: if the application closes it behind our back (a
// raw close_range system call) and the number is reused, the shim stops writing to it rather
// than write into someone else's file or socket.
// The panic line of a failed XPROXY_INVARIANT goes to this log as well: the application's
// stderr is often /dev/null. The sink is not async-signal-safe (it formats, and syslog()
// locks), and need not be: invariants are checked on the accept path, in the completer
// thread and under the shim's mutex, never in the lock-free hooks (close, dup*, fcntl) a
// signal handler may run.
#include "log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "state.hpp"
#include <xproxy/base/invariant.hpp>
#include <xproxy/base/unique_fd.hpp>

namespace xproxy::preload {

namespace {
int g_fd = -1;
dev_t g_dev = 0;
ino_t g_ino = 0;
int g_level = kInfo;
Config::Log g_kind = Config::Log::syslog;

bool still_ours() {
    struct stat st {};
    return g_fd >= 0 && fstat(g_fd, &st) == 0 && st.st_dev == g_dev && st.st_ino == g_ino;
}

void panic_to_log(const char* line) {
    if (g_kind == Config::Log::syslog || still_ours()) {
        log_line(kError, "event=panic reason=\"%s\"", line);
        return;
    }
    // The log's descriptor is gone: stderr, as without this sink.
    ssize_t ignored = write(STDERR_FILENO, line, std::strlen(line));
    ignored = write(STDERR_FILENO, "\n", 1);
    (void)ignored;
}
}  // namespace

void open_log(const Config& cfg) {
    g_kind = cfg.log;
    g_level = cfg.log_level;
    UniqueFd fd;
    if (cfg.log == Config::Log::stderr_) {
        fd.reset(real().fcntl(2, F_DUPFD_CLOEXEC, 100));
    } else if (cfg.log == Config::Log::file) {
        UniqueFd f(open(cfg.log_file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640));
        if (f) fd.reset(real().fcntl(f.get(), F_DUPFD_CLOEXEC, 100));  // out of the application's way
    } else if (cfg.log == Config::Log::syslog) {
        openlog("xproxy-preload", LOG_PID | LOG_NDELAY, LOG_MAIL);
    }
    struct stat st {};
    if (fd && fstat(fd.get(), &st) == 0) {
        g_fd = fd.release();
        g_dev = st.st_dev;
        g_ino = st.st_ino;
    }
    if (g_kind != Config::Log::off) set_panic_sink(panic_to_log);
}

bool log_enabled(int level) { return g_kind != Config::Log::off && level <= g_level; }

int log_fd_number() { return still_ours() ? g_fd : -1; }

bool is_log_fd(int fd) { return fd >= 0 && fd == g_fd && still_ours(); }

void log_line(int level, const char* fmt, ...) {
    if (g_kind == Config::Log::off || level > g_level) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    static const char* const names[] = {"error", "warning", "info", "debug"};
    if (g_kind == Config::Log::syslog) {
        static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
        syslog(LOG_MAIL | prio[level & 3], "%s: %s", names[level & 3], msg);
        return;
    }
    if (!still_ours()) return;
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    tm t{};
    gmtime_r(&ts.tv_sec, &t);
    char line[1200];
    int n = std::snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ xproxy-preload[%d]: %s: %s\n",
                          t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                          ts.tv_nsec / 1000000, static_cast<int>(getpid()), names[level & 3], msg);
    if (n <= 0) return;
    std::size_t len = static_cast<std::size_t>(n) < sizeof line ? static_cast<std::size_t>(n) : sizeof line - 1;
    ssize_t ignored = write(g_fd, line, len);
    (void)ignored;
}

}  // namespace xproxy::preload
