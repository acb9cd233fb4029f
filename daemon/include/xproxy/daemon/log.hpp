// log.hpp: the daemons' log. One line per event, "event=NAME key=value ...", to syslog
// (facility mail, like the MTAs it serves), stderr, or nowhere. Values that came from the
// network must go through xproxy::escape() before they reach a log line. Thread-safe.
#pragma once

#include <cstdarg>
#include <string>
#include <string_view>

namespace xproxy::log {

enum class Level { error = 0, warning = 1, info = 2, debug = 3 };
enum class Sink { stderr_, syslog, off };

// Configure once at start-up (before threads). ident names the program in each line.
void init(std::string_view ident, Sink sink, Level threshold = Level::info);
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
