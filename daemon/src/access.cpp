// access.cpp: see access.hpp.
#include "xproxy/daemon/access.hpp"

#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace xproxy::daemon {

bool parse_socket_mode(std::string_view text, unsigned& mode) {
    if (text.empty() || text.size() > 4) return false;
    unsigned v = 0;
    for (char c : text) {
        if (c < '0' || c > '7') return false;
        v = v * 8 + static_cast<unsigned>(c - '0');
    }
    if (v > 0777) return false;
    mode = v;
    return true;
}

bool check_socket_group(const std::string& group, const std::string& path, std::string* error) {
    if (group.empty() || getgrnam(group.c_str())) return true;
    if (error)
        *error = "group '" + group + "' of the socket " + path +
                 " does not exist: set --socket-group to the group the MTA runs as (Postfix: postfix)";
    return false;
}

bool set_socket_access(const std::string& path, const std::string& owner_user, const std::string& group,
                       unsigned mode, std::string* error) {
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
    if (!owner_user.empty()) {
        struct passwd* pw = getpwnam(owner_user.c_str());
        if (!pw) {
            if (error) *error = "user '" + owner_user + "' does not exist (--user)";
            return false;
        }
        uid = pw->pw_uid;
    }
    if (!group.empty()) {
        if (!check_socket_group(group, path, error)) return false;
        gid = getgrnam(group.c_str())->gr_gid;
    }
    if ((uid != static_cast<uid_t>(-1) || gid != static_cast<gid_t>(-1)) && chown(path.c_str(), uid, gid) != 0) {
        if (error) *error = "cannot give " + path + " to " + owner_user + ":" + group + ": " + std::strerror(errno);
        return false;
    }
    if (chmod(path.c_str(), static_cast<mode_t>(mode)) != 0) {
        if (error) *error = "cannot chmod " + path + ": " + std::strerror(errno);
        return false;
    }
    return true;
}

bool is_inet_socket(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return false;
    return ss.ss_family == AF_INET || ss.ss_family == AF_INET6;
}

bool check_inet_allowed(const std::vector<int>& fds, const CidrSet& allow, std::string_view option,
                        std::string* error) {
    if (!allow.empty()) return true;
    for (int fd : fds) {
        if (!is_inet_socket(fd)) continue;
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
        auto ep = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
        if (error)
            *error = "TCP listener " + (ep ? ep->to_string() : std::string("?")) +
                     " would serve nobody: add " + std::string(option) +
                     " CIDR naming the MTA's address (an address of this host lets every local user in), "
                     "or listen on unix:PATH";
        return false;
    }
    return true;
}

bool peer_allowed(int fd, const CidrSet& allow, std::string* peer) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
        if (peer) *peer = "unknown";
        return false;
    }
    if (ss.ss_family == AF_UNIX) {
        if (peer) *peer = "unix";
        return true;
    }
    auto ep = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    if (!ep) {
        if (peer) *peer = "unknown";
        return false;
    }
    if (peer) *peer = ep->to_string();
    return allow.contains(ep->addr.normalized());
}

}  // namespace xproxy::daemon
