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
bool register_filter(std::shared_ptr<const Config> config);

}  // namespace xproxy::milter
