// invariant.hpp: the third error level of CODING.md: a condition that can only be false
// if xproxy itself is wrong (a counter below zero, an enum value no switch knows, a relay
// state that cannot follow the one before). Going on would relay mail in a state nobody
// reasoned about, so the process logs what failed and where, and aborts (a core dump for
// the developer, a restart by systemd or the MTA for the user): Postfix's msg_panic(),
// HAProxy's BUG_ON().
//
//   XPROXY_INVARIANT(open_sessions_ > 0);
//   switch (mode) { case ...: return ...; }  XPROXY_UNREACHABLE();
//
// Bad input, refused peers, full disks and failed downstreams are never invariants: they
// are handled and logged (levels one and two). Checks stay on in release builds.
#pragma once

namespace xproxy {

// Where the panic line goes before abort(). The default writes one line to stderr; a
// daemon installs its log (xproxy/daemon/log.hpp does so when it is configured).
using PanicSink = void (*)(const char* line);
void set_panic_sink(PanicSink sink);

[[noreturn]] void invariant_failed(const char* condition, const char* file, int line, const char* function);

}  // namespace xproxy

#define XPROXY_INVARIANT(cond) \
    (static_cast<bool>(cond) ? static_cast<void>(0) : ::xproxy::invariant_failed(#cond, __FILE__, __LINE__, __func__))
#define XPROXY_UNREACHABLE() ::xproxy::invariant_failed("unreachable", __FILE__, __LINE__, __func__)
