// log.hpp: the shim's log (syslog, stderr, file:PATH or off, chosen by XPROXY_LOG).
// The destination is opened in the library constructor, while a daemon is still root.
// Lines read "event=NAME key=value ..."; values are addresses, numbers and static reasons,
// and the only peer bytes ever logged go through xproxy::escape().
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

}  // namespace xproxy::preload
