// access.hpp: who may reach a daemon's listeners.
//
// A daemon that signs (xproxy-milter --mode inject, xproxy-policyd --policy inject) is a
// signing oracle for whoever can connect to it, so its listeners are closed by default:
//   - a unix socket belongs to a group (default postfix) and has mode 0660, so only the
//     MTA's processes and root can connect; the group must exist (start-up error);
//   - a TCP listener serves only peers in an explicit CIDR allow-list, and a TCP listener
//     without one is a start-up error (check_inet_allowed), never "everyone". An address
//     of this machine in the list (127.0.0.1, or any other) lets every local user in,
//     since any local process can connect from it.
//   - the directory of a unix socket may be written by root (or the starting user) only:
//     the socket is created and given away there by root, and whoever may rename entries
//     in it could swap the socket for a symlink (check_socket_directory); the socket's
//     mode is set at bind() time and its owner without following a link;
//   - a unix socket inherited from systemd (or fd:N) must have a path that grants "other"
//     nothing: an abstract socket (ListenStream=@name) or a mode such as systemd's default
//     0666 lets every local user in (check_unix_listeners).
// peer_allowed() is the per-connection check; unix peers were already checked by the
// file system.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <xproxy/base/ip.hpp>
#include <xproxy/base/result.hpp>

namespace xproxy::daemon {

// Parses octal permissions such as "0660"; false unless all digits are octal and <= 0777.
bool parse_socket_mode(std::string_view text, unsigned& mode);

// A failure when mode grants "other" anything (--socket-mode 0666 would let every local
// user connect).
Expected<void> check_socket_mode(unsigned mode);

// Start-up check of the directory a unix socket is created in (root creates the socket
// and gives it away by path, so whoever may rename entries there could swap it for a
// symlink to any file): the directory must be owned by root or the current effective
// user and writable by nobody else (group/other write refused, even with the sticky
// bit), and every directory above it likewise, or sticky. The failure names the directory
// and the command that fixes it.
Expected<void> check_socket_directory(const std::string& socket_path);

// Gives the unix socket at path, just bound with its final mode (umask), to owner_user
// (its uid; unchanged when empty) and group (unchanged when empty) without following a
// symlink, then checks that path is still a socket with that owner, group and mode. The
// failure names the option to change when the group or the user does not exist.
Expected<void> set_socket_access(const std::string& path, const std::string& owner_user, const std::string& group,
                                 unsigned mode);

// Start-up check that the group of a unix socket exists (also for --check-config); the
// failure names --socket-group. An empty group is fine (left unchanged).
Expected<void> check_socket_group(const std::string& group, const std::string& path);

// Whether fd is an IPv4 or IPv6 socket.
bool is_inet_socket(int fd);

// Start-up check of the listening descriptors: a failure when one is a TCP listener and
// allow is empty. The message names the listener and says to add `option` (e.g.
// "--allow-peers") or to use a unix socket.
Expected<void> check_inet_allowed(const std::vector<int>& fds, const CidrSet& allow, std::string_view option);

// Start-up check of the listening descriptors (systemd, fd:N, or opened here): a failure
// when one is a unix socket that is abstract or unnamed (no file permissions: every local
// user may connect), whose path cannot be checked, or whose file grants "other" any
// permission.
Expected<void> check_unix_listeners(const std::vector<int>& fds);

// Whether the peer of an accepted connection may be served: a unix peer always (the
// socket's permissions decided), an IP peer only when allow contains its address. *peer
// receives the peer's address for the log ("unix" for a unix peer).
bool peer_allowed(int fd, const CidrSet& allow, std::string* peer = nullptr);

// The peer of a connected socket for a log line: "ADDR:PORT" ("[ADDR]:PORT" for IPv6),
// "unix", or "unknown".
std::string peer_name(int fd);

}  // namespace xproxy::daemon
