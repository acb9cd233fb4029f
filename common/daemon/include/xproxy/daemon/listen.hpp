// listen.hpp: listener specifications shared by the daemons and the sockets they name.
//
// Accepted forms (Postfix and Sendmail spellings both work):
//   inet:HOST:PORT   inet:127.0.0.1:10040      inet:PORT@HOST (Sendmail/libmilter style)
//   inet6:[ADDR]:PORT  inet6:PORT@ADDR
//   unix:/path/to/socket (also local:/path)
//   fd:N             an already listening descriptor
//   systemd          every socket passed by systemd socket activation (LISTEN_FDS)
// open_listeners() returns listening, close-on-exec descriptors, owned by the caller.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xproxy/base/result.hpp>
#include <xproxy/base/unique_fd.hpp>

namespace xproxy::daemon {

struct ListenSpec {
    enum class Kind { inet, unix_, fd, systemd } kind = Kind::inet;
    std::string host;  // inet: numeric address ("127.0.0.1", "::1")
    std::uint16_t port = 0;
    std::string path;  // unix
    int fd = -1;       // fd
    std::string text;  // as written, for messages
};

// The failure quotes the spec ("invalid listener 'TEXT': why").
Expected<ListenSpec> parse_listen(std::string_view text);

// Descriptors passed by systemd (LISTEN_PID must be ours); clears the variables so
// children do not inherit them. Empty when not socket-activated.
std::vector<int> systemd_listen_fds();

// Opens the listener(s) a spec names: one descriptor, or all systemd ones (never none).
// unix: a stale socket file is removed; the socket is bound with `unix_mode` permissions
// (by umask: nothing follows its path afterwards).
Expected<std::vector<UniqueFd>> open_listeners(const ListenSpec& spec, unsigned unix_mode = 0660, int backlog = 256);

// The descriptors of opened listeners, still owned by `fds`.
std::vector<int> raw_fds(const std::vector<UniqueFd>& fds);

// Switches to user (and its primary group) if running as root and user is non-empty.
Expected<void> drop_privileges(const std::string& user);

}  // namespace xproxy::daemon
