// callbacks.hpp: the libmilter adapter. Each xxfi_* callback gets the Session from the
// connection's private data, translates its arguments, calls one Session method and maps
// the Reply to an sfsistat. Exceptions never cross into libmilter (they become
// SMFIS_TEMPFAIL and a log line). Nothing from libmilter/mfapi.h leaks out of here.
#pragma once

#include <memory>

#include "session.hpp"

namespace xproxy::milter {

// Registers the filter with libmilter (smfi_register); false on failure. `config` must be
// set before the first connection and is shared read-only by every Session.
// no_reply_steps: ask the MTA not to wait for replies to connect, HELO, headers (and MAIL
// when no policy runs). Used for unix sockets only: over TCP the MTA then writes several
// small commands in a row, and since Postfix does not set TCP_NODELAY, Nagle's algorithm
// holds each one back until the previous is acknowledged; measured slower than waiting
// for the replies even with immediate ACKs (accept_hooks.cpp).
bool register_filter(std::shared_ptr<const Config> config, bool no_reply_steps);

}  // namespace xproxy::milter
