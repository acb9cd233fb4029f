// milter_socket.hpp: the listening socket libmilter serves, as xproxy needs it.
//
// libmilter opens its socket itself from a connection string and offers no way to set
// socket options or to serve a descriptor it did not open. So: the listener spec
// (xproxy/daemon/listen.hpp) becomes libmilter's string; after smfi_opensocket() the new
// listening descriptor is found among the process's descriptors; on TCP it gets
// TCP_NODELAY (Linux copies it to every accepted connection, so replies are not held
// back by Nagle's algorithm), and for fd:/systemd specs the activated descriptor is
// dup2()ed over libmilter's placeholder socket before libmilter starts accepting.
#pragma once

#include <set>
#include <string>

#include <xproxy/daemon/listen.hpp>

namespace xproxy::milter {

// libmilter's connection string for an inet or unix spec ("inet:10025@127.0.0.1",
// "inet6:10025@::1", "unix:/path"). For fd/systemd, `activated` is the descriptor: the
// string names a placeholder of the same family (libmilter drops accepted connections
// whose family differs from its listener's): an ephemeral loopback port, or the unix
// path `placeholder` (main() puts it in a fresh mkdtemp directory).
std::string libmilter_conn(const daemon::ListenSpec& spec, const std::string& placeholder, int activated = -1);

// Open descriptors of this process that are listening sockets.
std::set<int> listening_fds();

// Sets TCP_NODELAY when fd is a TCP socket; true if set or not TCP.
bool set_nodelay_if_tcp(int fd);
// Whether TCP_NODELAY is set (tests).
bool has_nodelay(int fd);

}  // namespace xproxy::milter
