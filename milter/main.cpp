// xproxy-milter: the libmilter filter of xproxy (inject and verify the signed
// X-Original-Source header). Start-up in one readable function: options, configuration
// check, listener, privileges, run. Stops on SIGTERM/SIGINT (libmilter's handling).
#include <libmilter/mfapi.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "accept_hooks.hpp"
#include "callbacks.hpp"
#include "milter_socket.hpp"
#include "options.hpp"
#include <xproxy/daemon/access.hpp>
#include <xproxy/daemon/listen.hpp>
#include <xproxy/daemon/log.hpp>
#include <xproxy/daemon/options.hpp>

using namespace xproxy;
using namespace xproxy::milter;

namespace {

int die(const std::string& msg, int code = 1) {
    std::fprintf(stderr, "xproxy-milter: %s\n", msg.c_str());
    return code;
}

}  // namespace

int main(int argc, char** argv) {
    int code = 0;
    auto opts = parse_options(argc, argv, code);
    if (!opts) return code;

    log::Sink sink;
    log::Level level;
    if (!daemon::parse_log_options(opts->log_sink, opts->log_level, sink, level, "xproxy-milter")) return 2;
    std::string err;
    auto config = build_config(*opts, &err);
    if (!config) return die(err);
    auto spec = daemon::parse_listen(opts->listen, &err);
    if (!spec) return die(err);
    unsigned socket_mode = 0;
    if (!daemon::parse_socket_mode(opts->socket_mode, socket_mode)) return die("--socket-mode must be octal, e.g. 0660");
    if (!daemon::check_socket_mode(socket_mode, &err)) return die(err);
    // Whoever reaches an inject milter gets a signature for the source it claims: a TCP
    // listener serves only the MTAs named in --allow-peers, and none without it.
    auto allow_peers = CidrSet::parse(opts->allow_peers);
    if (!allow_peers) return die("--allow-peers: " + allow_peers.error());
    using K = daemon::ListenSpec::Kind;
    if (spec->kind == K::inet && allow_peers->empty())
        return die("TCP listener " + opts->listen +
                   " would serve nobody: add --allow-peers CIDR naming the MTA's address (an address of this "
                   "host lets every local user in), or listen on unix:PATH");
    if (spec->kind == K::unix_ && !daemon::check_socket_group(opts->socket_group, spec->path, &err)) return die(err);
    if (opts->check_config) {
        std::printf("xproxy-milter: configuration ok (mode: %s, keys: %zu, trusted upstreams: %zu, block list: %zu, "
                    "policies: %zu, domains: %zu)\n",
                    to_string(config->mode), config->keys.size(), config->trusted_upstreams.entries().size(),
                    config->block_list.entries().size(), opts->policies.size(), config->directory->domain_count());
        return 0;
    }
    log::init("xproxy-milter", sink, level);
    // Not in --check-config: the directory may not exist before the service starts.
    if (spec->kind == K::unix_ && !daemon::check_socket_directory(spec->path, &err)) return die(err);

    // fd:/systemd: take the activated descriptor before libmilter opens anything.
    int activated = -1;
    if (spec->kind == K::fd || spec->kind == K::systemd) {
        auto fds = daemon::open_listeners(*spec, &err);
        if (fds.empty()) return die(err);
        for (std::size_t i = 1; i < fds.size(); ++i) close(fds[i]);  // libmilter serves one socket
        activated = fds[0];
    }
    // libmilter's placeholder for an activated unix socket lives in a directory of its own
    // (mode 0700): a fixed name in /tmp would let any local user block the start by
    // creating that name first.
    std::string placeholder_dir, placeholder;
    if (activated >= 0) {
        char dir[] = "/tmp/xproxy-milter.XXXXXX";
        if (!mkdtemp(dir)) return die(std::string("cannot create a directory in /tmp: ") + std::strerror(errno));
        placeholder_dir = dir;
        placeholder = placeholder_dir + "/placeholder";
    }
    std::string conn = libmilter_conn(*spec, placeholder, activated);
    if (!register_filter(config, spec->kind == K::unix_)) return die("smfi_register failed");
    if (smfi_setconn(const_cast<char*>(conn.c_str())) != MI_SUCCESS) return die("bad listener " + opts->listen);
    smfi_settimeout(static_cast<int>(opts->timeout));
    smfi_setbacklog(opts->backlog);
    auto before = listening_fds();
    // The socket's mode comes from the umask at bind(): nothing follows its path later.
    mode_t old_umask = umask(static_cast<mode_t>(~socket_mode & 0777u));
    int opened = smfi_opensocket(true);
    umask(old_umask);
    if (opened != MI_SUCCESS) return die("cannot open listener " + opts->listen);
    int lfd = -1;
    for (int fd : listening_fds())
        if (!before.count(fd)) lfd = fd;
    if (lfd < 0) return die("cannot find libmilter's listening socket");
    if (activated >= 0) {
        if (dup2(activated, lfd) < 0) return die("cannot take over fd " + std::to_string(activated));
        close(activated);
        unlink(placeholder.c_str());
        rmdir(placeholder_dir.c_str());
    }
    if (!daemon::check_inet_allowed({lfd}, *allow_peers, "--allow-peers", &err)) return die(err);
    set_peer_allow_list(&*allow_peers);
    if (!set_nodelay_if_tcp(lfd)) return die("cannot set TCP_NODELAY on " + opts->listen);
    // The socket goes to the user we drop to and to the MTA's group, without following a
    // link; nobody else may connect. Root removes a stale socket at the next start.
    if (spec->kind == K::unix_ &&
        !daemon::set_socket_access(spec->path, opts->user, opts->socket_group, socket_mode, &err))
        return die(err);
    // An inherited unix socket must not be open to every local user (abstract, or a mode
    // such as systemd's default 0666).
    if (!daemon::check_unix_listeners({lfd}, &err)) return die(err);
    if (!daemon::drop_privileges(opts->user, &err)) return die(err);
    log::info("event=start mode=%s listen=%s allow_peers=\"%s\" keys=%zu trusted_upstreams=\"%s\" "
              "block_list=\"%s\" on_invalid=%s on_missing=%s on_missing_bounce=%s keep_header=%d policies=%zu",
              to_string(config->mode), opts->listen.c_str(), allow_peers->to_string().c_str(), config->keys.size(),
              config->trusted_upstreams.to_string().c_str(), config->block_list.to_string().c_str(),
              to_string(config->on_invalid), to_string(config->on_missing),
              to_string(config->on_missing_bounce), config->keep_header ? 1 : 0,
              opts->policies.size());
    int rc = smfi_main();
    log::info("event=stop rc=%d", rc);
    return rc == MI_SUCCESS ? 0 : 1;
}
