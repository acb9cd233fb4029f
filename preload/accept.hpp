// accept.hpp: accept()/accept4() on a listener the shim manages.
#pragma once

#include <sys/socket.h>

namespace xproxy::preload {

// accept4() semantics: returns the connection fd (its peer address in addr/len, truncated
// to *len with the true length reported) or -1 with errno. Unmanaged listeners, AF_UNIX
// and an inactive configuration go straight to libc.
int do_accept(int lfd, sockaddr* addr, socklen_t* len, int flags);

}  // namespace xproxy::preload
