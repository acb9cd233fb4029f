// log.cpp: see log.hpp. A file or stderr destination is a descriptor moved above 100 and
// remembered by device and inode: if the application closes it behind our back (a
// raw close_range system call) and the number is reused, the shim stops writing to it rather
// than write into someone else's file or socket.
// Counts (tally) are relaxed atomics; the connection that finds the summary due (coarse
// monotonic clock, read in the vDSO) wins a compare-and-swap and writes it; the counts
// not yet reported are written by a destructor at exit.
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

#include <atomic>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "shim_mutex.hpp"
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
int g_summary_s = 60;

constexpr int kTallies = static_cast<int>(Tally::count_);
std::atomic<std::uint64_t> g_tally[kTallies];
std::atomic<std::uint64_t> g_suppressed{0};   // warnings over kWarningsPerSecond, for the summary
std::atomic<std::uint64_t> g_unreported{0};   // the same, not yet said in a warning line
std::atomic<std::int64_t> g_next_summary{0};  // coarse monotonic seconds
std::atomic<std::int64_t> g_last_summary{0};  // when the counts were last reported (or started)
std::atomic<std::int64_t> g_warn_second{0};   // the second g_warn_count counts in
std::atomic<int> g_warn_count{0};

// This thread is writing a line: a signal handler that logs on the same thread (or exit()
// called from one) must not enter syslog()'s lock, or the file write, a second time.
thread_local __attribute__((tls_model("initial-exec"))) bool t_in_log = false;

std::int64_t coarse_seconds() {
    timespec ts{};
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) == 0) return ts.tv_sec;  // vDSO: no system call
    // Not available (a sandbox without the vDSO's coarse clock): the precise one, then
    // wall time; never a clock stuck at 0, which would end summaries and the warning budget.
    if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0) return ts.tv_sec;
    return static_cast<std::int64_t>(time(nullptr));
}

// False when this warning is over the second's budget (it is then counted).
bool warning_allowed() {
    std::int64_t now = coarse_seconds();
    std::int64_t second = g_warn_second.load(std::memory_order_relaxed);
    if (second != now && g_warn_second.compare_exchange_strong(second, now, std::memory_order_relaxed))
        g_warn_count.store(0, std::memory_order_relaxed);
    if (g_warn_count.fetch_add(1, std::memory_order_relaxed) < kWarningsPerSecond) return true;
    g_suppressed.fetch_add(1, std::memory_order_relaxed);
    g_unreported.fetch_add(1, std::memory_order_relaxed);
    return false;
}

void write_line(int level, const char* msg);
void write_line_once(int level, const char* msg);

// Writes the counts since the last summary, if there are any.
void write_summary(std::int64_t now) {
    std::uint64_t n[kTallies];
    std::uint64_t any = 0;
    for (int i = 0; i < kTallies; ++i) any |= n[i] = g_tally[i].exchange(0, std::memory_order_relaxed);
    std::uint64_t suppressed = g_suppressed.exchange(0, std::memory_order_relaxed);
    std::int64_t since = g_last_summary.exchange(now, std::memory_order_relaxed);
    if (!any && !suppressed) return;
    char msg[256];
    std::snprintf(msg, sizeof msg,
                  "event=summary seconds=%" PRId64 " proxied=%" PRIu64 " local=%" PRIu64 " untrusted=%" PRIu64
                  " passed=%" PRIu64 " dropped=%" PRIu64 " warnings_suppressed=%" PRIu64,
                  now - since, n[0], n[1], n[2], n[3], n[4], suppressed);
    write_line(kInfo, msg);
}

__attribute__((destructor)) void summary_at_exit() {
    if (log_enabled(kInfo) && !t_in_log) write_summary(coarse_seconds());
}

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
    g_summary_s = cfg.log_summary_s;
    reset_tally();
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

void tally(Tally t) {
    g_tally[static_cast<int>(t)].fetch_add(1, std::memory_order_relaxed);
    if (g_kind == Config::Log::off || g_level < kInfo) return;
    // Never write under the shim's mutex (the completer counts there): a stalled syslog
    // daemon or slow disk would hold up every accept. The next count outside it writes.
    if (ShimMutex::held_by_this_thread()) return;
    std::int64_t now = coarse_seconds();
    std::int64_t due = g_next_summary.load(std::memory_order_relaxed);
    if (now < due || !g_next_summary.compare_exchange_strong(due, now + g_summary_s, std::memory_order_relaxed)) return;
    write_summary(now);
}

void reset_tally() {
    for (auto& n : g_tally) n.store(0, std::memory_order_relaxed);
    g_suppressed.store(0, std::memory_order_relaxed);
    g_unreported.store(0, std::memory_order_relaxed);
    std::int64_t now = coarse_seconds();
    g_last_summary.store(now, std::memory_order_relaxed);
    g_next_summary.store(now + g_summary_s, std::memory_order_relaxed);
}

void log_line(int level, const char* fmt, ...) {
    if (g_kind == Config::Log::off || level > g_level) return;
    if (level == kWarning && !warning_allowed()) return;
    if (level == kWarning) {
        // Whatever the level, a flood that was cut is said once the budget allows a line
        // again: at level warning no summary would report it.
        if (std::uint64_t n = g_unreported.exchange(0, std::memory_order_relaxed)) {
            char note[96];
            std::snprintf(note, sizeof note, "event=warnings_suppressed count=%" PRIu64 " limit=%d/s", n,
                          kWarningsPerSecond);
            write_line(kWarning, note);
        }
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    write_line(level, msg);
}

namespace {
void write_line(int level, const char* msg) {
    if (t_in_log) return;  // re-entered from a signal handler on this thread
    t_in_log = true;
    write_line_once(level, msg);
    t_in_log = false;
}

void write_line_once(int level, const char* msg) {
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
}  // namespace

}  // namespace xproxy::preload
