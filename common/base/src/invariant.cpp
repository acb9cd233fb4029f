// invariant.cpp: the panic of XPROXY_INVARIANT; see invariant.hpp.
#include <xproxy/base/invariant.hpp>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace xproxy {

namespace {

void write_stderr(const char* line) {
    std::size_t n = std::strlen(line);
    while (n > 0) {
        ssize_t w = ::write(STDERR_FILENO, line, n);
        if (w <= 0) return;
        line += w;
        n -= static_cast<std::size_t>(w);
    }
    (void)!::write(STDERR_FILENO, "\n", 1);
}

std::atomic<PanicSink> g_sink{write_stderr};

}  // namespace

void set_panic_sink(PanicSink sink) { g_sink.store(sink ? sink : write_stderr); }

void invariant_failed(const char* condition, const char* file, int line, const char* function) {
    // Our own text only (a source location and an expression), never input bytes.
    char text[512];
    std::snprintf(text, sizeof text, "panic: invariant failed: %s in %s (%s:%d)", condition, function, file, line);
    g_sink.load()(text);
    std::abort();
}

}  // namespace xproxy
