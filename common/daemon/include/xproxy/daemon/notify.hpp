// notify.hpp: the service manager told how a daemon is doing (systemd's Type=notify,
// sd_notify(3)), and the STATUS= text that names its listeners.
//
// What it promises:
//   - without NOTIFY_SOCKET in the environment nothing is sent and nothing changes;
//   - a message that cannot be sent is logged once (event=notify_failed, a warning) and
//     otherwise ignored: a daemon never stops because its manager cannot be told;
//   - a status is one line: line breaks in it become spaces.
// The environment is left as it is, so a later reload or stop is announced too; messages
// come from the main process (any of its threads), never from a forked child.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace xproxy::daemon {

// "READY=1" with "STATUS=status": listeners open, privileges dropped, about to serve (also
// after a reload). True when the message was sent.
bool notify_ready(std::string_view status);

// "RELOADING=1" with "MONOTONIC_USEC=" (now) and "STATUS=status"; notify_ready() follows
// once the reload is over, whatever its outcome.
bool notify_reloading(std::string_view status);

// "STOPPING=1" with "STATUS=stopping": a stop signal was handled.
bool notify_stopping();

// "STATUS=status" alone.
bool notify_status(std::string_view status);

// "listening on inet:127.0.0.1:10040, unix:/run/xproxy/policyd.sock": the addresses the
// listening descriptors are bound to, as a listener spec writes them (inet:, inet6:,
// unix:, unix:@NAME for an abstract socket, fd:N when the address is unknown).
std::string listening_status(const std::vector<int>& fds);

}  // namespace xproxy::daemon
