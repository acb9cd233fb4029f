// listen.hpp: listener specifications shared by the daemons and the sockets they name.
//
// Accepted forms (Postfix and Sendmail spellings both work):
//   inet:HOST:PORT   inet:127.0.0.1:10040      inet:PORT@HOST (Sendmail/libmilter style)
//   inet6:[ADDR]:PORT  inet6:PORT@ADDR
//   unix:/path/to/socket (also local:/path)
//   fd:N             an already listening descriptor
//   systemd          every socket passed by systemd socket activation (LISTEN_FDS)
// open_listener() returns a listening, close-on-exec descriptor or -1 with *error set.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xproxy::daemon {

struct ListenSpec {
    enum class Kind { inet, unix_, fd, systemd } kind = Kind::inet;
    std::string host;       // inet: numeric address ("127.0.0.1", "::1")
    std::uint16_t port = 0;
    std::string path;       // unix
    int fd = -1;            // fd
    std::string text;       // as written, for messages
};

std::optional<ListenSpec> parse_listen(std::string_view text, std::string* error);

// Descriptors passed by systemd (LISTEN_PID must be ours); clears the variables so
// children do not inherit them. Empty when not socket-activated.
std::vector<int> systemd_listen_fds();

// Opens the listener(s) a spec names: one descriptor, or all systemd ones.
// unix: a stale socket file is removed; the socket is bound with `unix_mode` permissions
// (by umask: nothing follows its path afterwards).
std::vector<int> open_listeners(const ListenSpec& spec, std::string* error, unsigned unix_mode = 0660,
                                int backlog = 256);

// Switches to user (and its primary group) if running as root and user is non-empty.
// Returns false with *error set on failure.
bool drop_privileges(const std::string& user, std::string* error);

}  // namespace xproxy::daemon
