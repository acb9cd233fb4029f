// log.hpp: the shim's log (syslog, stderr, file:PATH or off, chosen by XPROXY_LOG).
// The destination is opened in the library constructor, while a daemon is still root.
// Lines read "event=NAME key=value ..."; values are addresses, numbers and static reasons,
// and the only peer bytes ever logged go through xproxy::escape().
// Levels: warning and error lines are written one per event (warnings at most
// kWarningsPerSecond a second; the rest are counted and reported in the summary); info
// adds a summary line with the counts of connections (tally()) at most once every
// XPROXY_LOG_SUMMARY seconds and at exit; debug adds one line per connection. Counting
// costs no system call: the summary is written by the connection that finds it due.
#pragma once

#include "config.hpp"

namespace xproxy::preload {

enum LogLevel { kError = 0, kWarning = 1, kInfo = 2, kDebug = 3 };

// Opens the configured destination and makes it XPROXY_INVARIANT's panic sink (unless
// XPROXY_LOG=off: then stderr, the default). Call once, from the constructor.
void open_log(const Config& cfg);
// Writes one line if level is enabled. Safe from any thread; never throws.
void log_line(int level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
// True when a line of this level would be written (saves formatting on hot paths).
bool log_enabled(int level);
// True when fd is the shim's own log descriptor (the application must not close it).
bool is_log_fd(int fd);
// The log descriptor's number, or -1 (syslog, off).
int log_fd_number();

inline constexpr int kWarningsPerSecond = 50;

// What became of a connection accepted on a managed listener.
enum class Tally {
    proxied,    // trusted peer, header with the client's address
    local,      // trusted peer, LOCAL or UNKNOWN header: its real endpoints
    untrusted,  // returned as libc returned it
    passed,     // trusted peer without a valid header, XPROXY_REQUIRE=0
    dropped,    // trusted peer without a valid header (or unrecordable), closed
    count_
};
// Counts one connection (lock-free, no system call); at level info and above, writes the
// summary line when it is due (then one line, at most every XPROXY_LOG_SUMMARY seconds).
void tally(Tally t);
// The child of fork() counts from zero: what the parent counted is the parent's to report.
void reset_tally();

}  // namespace xproxy::preload
