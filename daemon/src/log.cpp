// log.cpp: syslog/stderr sinks for the daemons' log.
#include "xproxy/daemon/log.hpp"

#include <syslog.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <string>

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

void write(Level level, std::string_view line) {
    if (!enabled(level)) return;
    if (g_sink == Sink::syslog) {
        syslog(syslog_priority(level), "%.*s", static_cast<int>(line.size()), line.data());
        return;
    }
    char stamp[32];
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    std::lock_guard<std::mutex> lock(g_mutex);
    std::fprintf(stderr, "%s %s[%d]: %s: %.*s\n", stamp, g_ident.c_str(), static_cast<int>(getpid()), level_name(level),
                 static_cast<int>(line.size()), line.data());
    std::fflush(stderr);
}

#define XPROXY_LOG_FN(name, lvl)          \
    void name(const char* fmt, ...) {     \
        va_list ap;                       \
        va_start(ap, fmt);                \
        vlog(lvl, fmt, ap);               \
        va_end(ap);                       \
    }
XPROXY_LOG_FN(error, Level::error)
XPROXY_LOG_FN(warning, Level::warning)
XPROXY_LOG_FN(info, Level::info)
XPROXY_LOG_FN(debug, Level::debug)
#undef XPROXY_LOG_FN

}  // namespace xproxy::log
