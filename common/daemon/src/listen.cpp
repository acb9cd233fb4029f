// listen.cpp: parse listener specs and open the sockets they name.
#include <xproxy/daemon/listen.hpp>

#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <string>

#include <xproxy/base/ip.hpp>
#include <xproxy/base/text.hpp>

namespace xproxy::daemon {
namespace {

bool parse_port(std::string_view s, std::uint16_t& port) {
    const auto v = parse_decimal<std::uint16_t>(s);
    if (!v || *v == 0) return false;
    port = *v;
    return true;
}

std::string errno_text(const char* what, const std::string& spec) {
    return std::string(what) + " " + spec + ": " + std::strerror(errno);
}

// An inherited descriptor must be a listening stream socket: anything else would only
// fail later, at every accept(). nullptr when it is, else what it is not.
const char* not_listening_stream(int fd) {
    int type = 0, accepting = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) return "an open stream socket";
    len = sizeof accepting;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 || !accepting) return "listening";
    return nullptr;
}

}  // namespace

Expected<ListenSpec> parse_listen(std::string_view text) {
    ListenSpec s;
    s.text.assign(text);
    auto fail = [&](const char* why) -> Expected<ListenSpec> {
        return Failure{"invalid listener '" + s.text + "': " + why};
    };
    if (text == "systemd") {
        s.kind = ListenSpec::Kind::systemd;
        return s;
    }
    auto colon = text.find(':');
    if (colon == std::string_view::npos)
        return fail("expected inet:HOST:PORT, inet6:[ADDR]:PORT, unix:PATH, fd:N or systemd");
    auto scheme = text.substr(0, colon);
    auto rest = text.substr(colon + 1);
    if (scheme == "unix" || scheme == "local") {
        if (rest.empty() || rest.size() >= sizeof(sockaddr_un::sun_path)) return fail("bad socket path");
        s.kind = ListenSpec::Kind::unix_;
        s.path.assign(rest);
        return s;
    }
    if (scheme == "fd") {
        int fd = -1;
        auto [p, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), fd);
        if (ec != std::errc() || p != rest.data() + rest.size() || fd < 0) return fail("bad descriptor number");
        s.kind = ListenSpec::Kind::fd;
        s.fd = fd;
        return s;
    }
    if (scheme != "inet" && scheme != "inet6") return fail("unknown scheme");
    std::string_view host, port;
    if (auto at = rest.find('@'); at != std::string_view::npos) {  // PORT@HOST
        port = rest.substr(0, at);
        host = rest.substr(at + 1);
    } else {
        auto last = rest.rfind(':');
        if (last == std::string_view::npos) return fail("missing port");
        host = rest.substr(0, last);
        port = rest.substr(last + 1);
    }
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (host.empty()) host = scheme == "inet6" ? "::" : "0.0.0.0";
    if (host == "localhost") host = scheme == "inet6" ? "::1" : "127.0.0.1";
    auto addr = IpAddress::parse(host);
    if (!addr) return fail("host must be a numeric address");
    if (!parse_port(port, s.port)) return fail("bad port");
    s.host = addr->to_string();
    if (scheme == "inet6" && addr->is_v4()) s.host = addr->to_v4_mapped().to_string();
    return s;
}

std::vector<int> systemd_listen_fds() {
    std::vector<int> fds;
    const char* pid = std::getenv("LISTEN_PID");
    const char* n = std::getenv("LISTEN_FDS");
    if (!pid || !n) return fds;
    long want_pid = std::strtol(pid, nullptr, 10);
    long count = std::strtol(n, nullptr, 10);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (want_pid != getpid() || count <= 0 || count > 64) return fds;
    for (int fd = 3; fd < 3 + count; ++fd) {
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        fds.push_back(fd);
    }
    return fds;
}

Expected<std::vector<UniqueFd>> open_listeners(const ListenSpec& spec, unsigned unix_mode, int backlog) {
    std::vector<UniqueFd> out;
    switch (spec.kind) {
        case ListenSpec::Kind::systemd: {
            for (int fd : systemd_listen_fds()) out.emplace_back(fd);
            if (out.empty()) return Failure{"systemd listener requested but no LISTEN_FDS were passed"};
            for (const auto& fd : out) {
                if (const char* what = not_listening_stream(fd.get()))
                    return Failure{"systemd passed descriptor " + std::to_string(fd.get()) + ", which is not " + what};
            }
            return out;
        }
        case ListenSpec::Kind::fd: {
            // Not owned until it proved to be a listener: a wrong fd:N is left alone.
            if (const char* what = not_listening_stream(spec.fd))
                return Failure{"listener " + spec.text + " is not " + what};
            fcntl(spec.fd, F_SETFD, FD_CLOEXEC);
            out.emplace_back(spec.fd);
            return out;
        }
        case ListenSpec::Kind::unix_: {
            UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
            if (!fd) return Failure{errno_text("socket", spec.text)};
            sockaddr_un sun{};
            sun.sun_family = AF_UNIX;
            std::memcpy(sun.sun_path, spec.path.c_str(), spec.path.size() + 1);
            struct stat st {};
            if (lstat(spec.path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) unlink(spec.path.c_str());
            // The mode comes from the umask at bind(): a chmod by path afterwards would follow
            // a symlink put in the socket's place.
            mode_t old = umask(static_cast<mode_t>(~unix_mode & 0777u));
            int rc = bind(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun);
            umask(old);
            if (rc != 0 || listen(fd.get(), backlog) != 0) return Failure{errno_text("cannot listen on", spec.text)};
            out.push_back(std::move(fd));
            return out;
        }
        case ListenSpec::Kind::inet: {
            auto addr = IpAddress::parse(spec.host);
            bool v6 = spec.host.find(':') != std::string::npos;
            UniqueFd fd(socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
            if (!fd || !addr) return Failure{errno_text("socket", spec.text)};
            int one = 1;
            setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            sockaddr_storage ss;
            unsigned len = Endpoint{*addr, spec.port}.to_sockaddr(ss, v6);
            if (bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(fd.get(), backlog) != 0)
                return Failure{errno_text("cannot listen on", spec.text)};
            out.push_back(std::move(fd));
            return out;
        }
    }
    return out;
}

std::vector<int> raw_fds(const std::vector<UniqueFd>& fds) {
    std::vector<int> out;
    out.reserve(fds.size());
    for (const auto& fd : fds) out.push_back(fd.get());
    return out;
}

Expected<void> drop_privileges(const std::string& user) {
    if (user.empty() || geteuid() != 0) return {};
    struct passwd* pw = getpwnam(user.c_str());
    if (!pw) return Failure{"unknown user '" + user + "'"};
    if (setgroups(0, nullptr) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
        return Failure{"cannot switch to user '" + user + "': " + std::strerror(errno)};
    return {};
}

}  // namespace xproxy::daemon
