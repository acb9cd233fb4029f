// log.cpp: syslog/stderr sinks for the daemons' log, written directly or, after
// start_async(), by one background thread from a bounded queue.
#include <xproxy/daemon/log.hpp>

#include <syslog.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <xproxy/base/invariant.hpp>

namespace xproxy::log {
namespace {
std::string g_ident = "xproxy";
Sink g_sink = Sink::stderr_;
std::atomic<int> g_threshold{static_cast<int>(Level::info)};
std::mutex g_mutex;

const char* level_name(Level l) {
    switch (l) {
        case Level::error: return "error";
        case Level::warning: return "warning";
        case Level::info: return "info";
        case Level::debug: return "debug";
    }
    return "info";
}

int syslog_priority(Level l) {
    switch (l) {
        case Level::error: return LOG_ERR;
        case Level::warning: return LOG_WARNING;
        case Level::info: return LOG_INFO;
        case Level::debug: return LOG_DEBUG;
    }
    return LOG_INFO;
}

struct Entry {
    Level level;
    std::time_t time;
    std::string line;
};

// The asynchronous writer: producers append under `mu`; the thread swaps the whole queue
// out and writes it without holding the lock.
struct Async {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<Entry> queue;
    std::size_t max_lines = 0;
    std::size_t dropped = 0;
    bool stopping = false;
    bool idle = false;  // the thread waits on cv: producers must notify
    std::thread thread;
};
Async g_async;
std::atomic<bool> g_async_on{false};
std::atomic<std::uint64_t> g_dropped_total{0};  // since start, for the metrics

void write_now(Level level, std::time_t now, std::string_view line) {
    if (g_sink == Sink::syslog) {
        syslog(syslog_priority(level), "%.*s", static_cast<int>(line.size()), line.data());
        return;
    }
    char stamp[32];
    std::tm tm{};
    localtime_r(&now, &tm);
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    std::lock_guard<std::mutex> lock(g_mutex);
    std::fprintf(stderr, "%s %s[%d]: %s: %.*s\n", stamp, g_ident.c_str(), static_cast<int>(getpid()), level_name(level),
                 static_cast<int>(line.size()), line.data());
    std::fflush(stderr);
}

void async_main() {
    std::vector<Entry> batch;
    std::unique_lock<std::mutex> lock(g_async.mu);
    for (;;) {
        g_async.idle = true;
        g_async.cv.wait(lock, [] { return !g_async.queue.empty() || g_async.dropped || g_async.stopping; });
        g_async.idle = false;
        if (g_async.queue.empty() && !g_async.dropped && g_async.stopping) {
            // Everything queued is written; later lines are written directly, in order.
            g_async_on.store(false, std::memory_order_release);
            return;
        }
        batch.swap(g_async.queue);
        std::size_t dropped = g_async.dropped;
        g_async.dropped = 0;
        lock.unlock();
        for (const auto& e : batch) write_now(e.level, e.time, e.line);
        batch.clear();
        if (dropped) {
            char buf[64];
            int n = std::snprintf(buf, sizeof buf, "event=log_dropped lines=%zu", dropped);
            write_now(Level::warning, std::time(nullptr), std::string_view(buf, static_cast<std::size_t>(n)));
        }
        lock.lock();
    }
}

// XPROXY_INVARIANT's panic line, written at once (never queued: abort() follows).
void write_panic(const char* line) { write_now(Level::error, std::time(nullptr), line); }

void vlog(Level level, const char* fmt, va_list ap) {
    if (!enabled(level)) return;
    char buf[4096];
    int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
    if (n < 0) return;
    std::size_t len = static_cast<std::size_t>(n) < sizeof buf ? static_cast<std::size_t>(n) : sizeof buf - 1;
    write(level, std::string_view(buf, len));
}
}  // namespace

void init(std::string_view ident, Sink sink, Level threshold) {
    g_ident.assign(ident);
    g_sink = sink;
    g_threshold = static_cast<int>(threshold);
    if (sink == Sink::syslog) openlog(g_ident.c_str(), LOG_PID | LOG_NDELAY, LOG_MAIL);
    // With the log off, a panic still reaches stderr (the default sink).
    set_panic_sink(sink == Sink::off ? nullptr : write_panic);
}

bool parse_sink(std::string_view text, Sink& out) {
    if (text == "syslog") out = Sink::syslog;
    else if (text == "stderr") out = Sink::stderr_;
    else if (text == "off") out = Sink::off;
    else return false;
    return true;
}

bool parse_level(std::string_view text, Level& out) {
    if (text == "error") out = Level::error;
    else if (text == "warning") out = Level::warning;
    else if (text == "info") out = Level::info;
    else if (text == "debug") out = Level::debug;
    else return false;
    return true;
}

bool enabled(Level level) {
    return g_sink != Sink::off && static_cast<int>(level) <= g_threshold.load(std::memory_order_relaxed);
}

std::uint64_t dropped_total() { return g_dropped_total.load(std::memory_order_relaxed); }

void write(Level level, std::string_view line) {
    if (!enabled(level)) return;
    std::time_t now = std::time(nullptr);
    if (g_async_on.load(std::memory_order_acquire)) {
        std::lock_guard<std::mutex> lock(g_async.mu);
        if (g_async_on.load(std::memory_order_relaxed)) {
            if (g_async.queue.size() >= g_async.max_lines) {
                ++g_async.dropped;
                g_dropped_total.fetch_add(1, std::memory_order_relaxed);
                return;
            }
            g_async.queue.push_back(Entry{level, now, std::string(line)});
            if (g_async.idle) {
                g_async.idle = false;  // one wake-up is enough for everything queued meanwhile
                g_async.cv.notify_one();
            }
            return;
        }
    }
    write_now(level, now, line);
}

void start_async(std::size_t max_lines) {
    std::lock_guard<std::mutex> lock(g_async.mu);
    if (g_async_on.load() || g_async.stopping) return;
    g_async.max_lines = max_lines ? max_lines : 1;
    g_async.stopping = false;
    g_async.dropped = 0;
    g_async.thread = std::thread(async_main);
    g_async_on.store(true, std::memory_order_release);
}

void stop_async() {
    {
        std::lock_guard<std::mutex> lock(g_async.mu);
        if (!g_async_on.load() || g_async.stopping) return;
        g_async.stopping = true;
        g_async.cv.notify_one();
    }
    g_async.thread.join();  // after it wrote everything queued
    std::lock_guard<std::mutex> lock(g_async.mu);
    g_async.stopping = false;
}

#define XPROXY_LOG_FN(name, lvl)      \
    void name(const char* fmt, ...) { \
        va_list ap;                   \
        va_start(ap, fmt);            \
        vlog(lvl, fmt, ap);           \
        va_end(ap);                   \
    }
XPROXY_LOG_FN(error, Level::error)
XPROXY_LOG_FN(warning, Level::warning)
XPROXY_LOG_FN(info, Level::info)
XPROXY_LOG_FN(debug, Level::debug)
#undef XPROXY_LOG_FN

}  // namespace xproxy::log
