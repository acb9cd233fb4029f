// access.cpp: see access.hpp.
#include <xproxy/daemon/access.hpp>

#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <xproxy/base/escape.hpp>

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

namespace {

std::string octal(unsigned mode) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", mode & 07777u);
    return buf;
}

// Who besides root and us may change the entries of directory st; empty when nobody.
std::string other_writers(const struct stat& st, bool sticky_ok) {
    if (st.st_uid != 0 && st.st_uid != geteuid()) return "its owner (uid " + std::to_string(st.st_uid) + ")";
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) == 0) return "";
    if (sticky_ok && (st.st_mode & S_ISVTX)) return "";
    return (st.st_mode & S_IWOTH) ? "every local user" : "its group (gid " + std::to_string(st.st_gid) + ")";
}

}  // namespace

Expected<void> check_socket_mode(unsigned mode) {
    if ((mode & 07u) == 0) return {};
    return Failure{"--socket-mode " + octal(mode) +
                   " gives other users access to the socket, so every local user could connect: use 0660 and "
                   "--socket-group naming the MTA's group"};
}

Expected<void> check_socket_directory(const std::string& socket_path) {
    auto slash = socket_path.rfind('/');
    std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : socket_path.substr(0, slash);
    char resolved[PATH_MAX];
    if (!realpath(dir.c_str(), resolved))
        return Failure{"directory " + escape(dir) + " of the socket " + escape(socket_path) + ": " +
                       std::strerror(errno)};
    const std::string fix =
        " could replace the socket with a symlink before root gives it away (making the "
        "link's target the daemon's): make the directory root's, e.g. install -d -o root "
        "-g postfix -m 0750 ";
    std::string d = resolved;
    for (bool first = true;; first = false) {
        struct stat st {};
        if (stat(d.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
            return Failure{"directory " + escape(d) + " of the socket " + escape(socket_path) + ": cannot check it"};
        // The socket's own directory: nobody else may write it, sticky or not (a sticky
        // directory still lets others take names). Above it: nobody else, or sticky.
        std::string who = other_writers(st, !first);
        if (!who.empty())
            return Failure{"directory " + escape(d) + (first ? "" : " above") + " the socket " + escape(socket_path) +
                           " may be written by " + who + ", who" + fix + escape(resolved)};
        if (d == "/") return {};
        auto s2 = d.rfind('/');
        d = s2 == 0 ? "/" : d.substr(0, s2);
    }
}

Expected<void> check_unix_listeners(const std::vector<int>& fds) {
    for (int fd : fds) {
        sockaddr_un sun{};
        socklen_t len = sizeof sun;
        if (getsockname(fd, reinterpret_cast<sockaddr*>(&sun), &len) != 0 || sun.sun_family != AF_UNIX) continue;
        const std::size_t off = offsetof(sockaddr_un, sun_path);
        const std::string advice =
            ": use a socket path in a directory of root's, with the MTA's group and mode 0660 "
            "(systemd: ListenStream=/run/xproxy/NAME.sock, SocketGroup=postfix, SocketMode=0660)";
        if (len <= off || sun.sun_path[0] == '\0') {
            std::string name = len <= off ? "(unnamed)"
                                          : "@" + escape(std::string_view(sun.sun_path + 1, len - off - 1));
            return Failure{"unix listener " + name +
                           " is an abstract socket, which has no permissions: every local user could connect" + advice};
        }
        std::string path(sun.sun_path, strnlen(sun.sun_path, len - off));
        struct stat st {};
        if (stat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode))
            return Failure{"cannot check who may connect to the unix listener " + escape(path) +
                           " (its file is missing or no socket here)" + advice};
        if (st.st_mode & 07u)
            return Failure{"unix listener " + escape(path) + " has mode " + octal(st.st_mode) +
                           ", so every local user could connect" + advice};
    }
    return {};
}

Expected<void> check_socket_group(const std::string& group, const std::string& path) {
    if (group.empty() || getgrnam(group.c_str())) return {};
    return Failure{"group '" + group + "' of the socket " + path +
                   " does not exist: set --socket-group to the group the MTA runs as (Postfix: postfix)"};
}

Expected<void> set_socket_access(const std::string& path, const std::string& owner_user, const std::string& group,
                                 unsigned mode) {
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
    if (!owner_user.empty()) {
        struct passwd* pw = getpwnam(owner_user.c_str());
        if (!pw) return Failure{"user '" + owner_user + "' does not exist (--user)"};
        uid = pw->pw_uid;
    }
    if (!group.empty()) {
        if (auto ok = check_socket_group(group, path); !ok) return ok;
        gid = getgrnam(group.c_str())->gr_gid;
    }
    // Never by a path that may lead elsewhere: a symlink put in the socket's place is not
    // followed (its own owner changes, which the check below refuses).
    if ((uid != static_cast<uid_t>(-1) || gid != static_cast<gid_t>(-1)) &&
        fchownat(AT_FDCWD, path.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0)
        return Failure{"cannot give " + path + " to " + owner_user + ":" + group + ": " + std::strerror(errno)};
    struct stat st {};
    if (lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode) || (uid != static_cast<uid_t>(-1) && st.st_uid != uid) ||
        (gid != static_cast<gid_t>(-1) && st.st_gid != gid) || (st.st_mode & 07777u) != mode)
        return Failure{path + " is not the socket just created with mode " + octal(mode) +
                       " (replaced, or a default ACL of its directory changed its mode): refusing to start"};
    return {};
}

bool is_inet_socket(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return false;
    return ss.ss_family == AF_INET || ss.ss_family == AF_INET6;
}

Expected<void> check_inet_allowed(const std::vector<int>& fds, const CidrSet& allow, std::string_view option) {
    if (!allow.empty()) return {};
    for (int fd : fds) {
        if (!is_inet_socket(fd)) continue;
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
        auto ep = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
        return Failure{"TCP listener " + (ep ? ep->to_string() : std::string("?")) + " would serve nobody: add " +
                       std::string(option) +
                       " CIDR naming the MTA's address (an address of this host lets every local user in), "
                       "or listen on unix:PATH"};
    }
    return {};
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

std::string peer_name(int fd) {
    std::string out;
    peer_allowed(fd, CidrSet{}, &out);
    return out;
}

}  // namespace xproxy::daemon
