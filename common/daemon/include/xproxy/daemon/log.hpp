// log.hpp: the daemons' log. One line per event, "event=NAME key=value ...", to syslog
// (facility mail, like the MTAs it serves), stderr, or nowhere. Values that came from the
// network must go through xproxy::escape() before they reach a log line. Thread-safe.
#pragma once

#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace xproxy::log {

enum class Level { error = 0, warning = 1, info = 2, debug = 3 };
enum class Sink { stderr_, syslog, off };

// Configure once at start-up (before threads). ident names the program in each line.
// From then on the panic line of XPROXY_INVARIANT (xproxy/base/invariant.hpp) goes to
// this sink too, directly (never through the queue of start_async()), before abort();
// with Sink::off it stays on stderr.
void init(std::string_view ident, Sink sink, Level threshold = Level::info);

// Optional, after init(): from now on write() only copies the line into a bounded queue
// and a background thread writes it, so a thread serving requests never waits for
// syslog (a busy or missing /dev/log) or a full stderr pipe. A line that finds
// `max_lines` lines queued is dropped and counted; the count is logged as
// "event=log_dropped lines=N" once there is room again. stop_async() writes what is
// queued and returns to direct writing; call it before exit (it is idempotent).
void start_async(std::size_t max_lines = 65536);
void stop_async();
// Lines dropped by the queue of start_async() since the process started.
std::uint64_t dropped_total();
// Parse "syslog", "stderr" or "off"; false if unknown.
bool parse_sink(std::string_view text, Sink& out);
bool parse_level(std::string_view text, Level& out);

bool enabled(Level level);
void write(Level level, std::string_view line);

[[gnu::format(printf, 1, 2)]] void error(const char* fmt, ...);
[[gnu::format(printf, 1, 2)]] void warning(const char* fmt, ...);
[[gnu::format(printf, 1, 2)]] void info(const char* fmt, ...);
[[gnu::format(printf, 1, 2)]] void debug(const char* fmt, ...);

}  // namespace xproxy::log
