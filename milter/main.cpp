// xproxy-milter: the libmilter filter of xproxy (inject and verify the signed
// X-Original-Source header). Start-up in one readable function: options, configuration
// check, listener, privileges, run. Stops on SIGTERM/SIGINT (libmilter's handling).
// Tells systemd (Type=notify) READY=1 once it serves and STOPPING=1 when it stops.
#include <libmilter/mfapi.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "accept_hooks.hpp"
#include "callbacks.hpp"
#include "milter_socket.hpp"
#include "options.hpp"
#include <xproxy/base/result.hpp>
#include <xproxy/base/unique_fd.hpp>
#include <xproxy/daemon/access.hpp>
#include <xproxy/daemon/listen.hpp>
#include <xproxy/daemon/log.hpp>
#include <xproxy/daemon/metrics.hpp>
#include <xproxy/daemon/metrics_endpoint.hpp>
#include <xproxy/daemon/notify.hpp>
#include <xproxy/daemon/startup.hpp>

using namespace xproxy;
using namespace xproxy::milter;

namespace {

// fd:/systemd: the activated descriptor, taken before libmilter opens anything (libmilter
// serves one socket: the others are closed). None for the other specs.
Expected<UniqueFd> take_activated(const daemon::ListenSpec& spec) {
    using K = daemon::ListenSpec::Kind;
    if (spec.kind != K::fd && spec.kind != K::systemd) return UniqueFd();
    auto fds = daemon::open_listeners(spec);
    if (!fds) return Failure{fds.error()};
    return std::move(fds->front());
}

// libmilter opens its listener itself (the socket's mode from the umask at bind():
// nothing follows its path later); an activated descriptor then takes its place. Returns
// the listening descriptor, checked and given away as the plan says.
Expected<int> open_milter_socket(const daemon::ListenPlan& plan, const Options& opts,
                                 std::shared_ptr<const Config> config) {
    const auto& spec = plan.specs.front();
    const bool unix_ = spec.kind == daemon::ListenSpec::Kind::unix_;
    if (auto dirs = daemon::check_socket_directories(plan); !dirs) return Failure{dirs.error()};
    auto activated = take_activated(spec);
    if (!activated) return Failure{activated.error()};
    // libmilter's placeholder for an activated unix socket lives in a directory of its own
    // (mode 0700): a fixed name in /tmp would let any local user block the start by
    // creating that name first.
    std::string placeholder_dir, placeholder;
    if (*activated) {
        char dir[] = "/tmp/xproxy-milter.XXXXXX";
        if (!mkdtemp(dir)) return Failure{std::string("cannot create a directory in /tmp: ") + std::strerror(errno)};
        placeholder_dir = dir;
        placeholder = placeholder_dir + "/placeholder";
    }
    std::string conn = libmilter_conn(spec, placeholder, activated->get());
    if (!register_filter(std::move(config), unix_)) return Failure{"smfi_register failed"};
    if (smfi_setconn(const_cast<char*>(conn.c_str())) != MI_SUCCESS) return Failure{"bad listener " + opts.listen};
    smfi_settimeout(static_cast<int>(opts.timeout));
    smfi_setbacklog(opts.backlog);
    auto before = listening_fds();
    mode_t old_umask = umask(static_cast<mode_t>(~plan.socket_mode & 0777u));
    int opened = smfi_opensocket(true);
    umask(old_umask);
    if (opened != MI_SUCCESS) return Failure{"cannot open listener " + opts.listen};
    int lfd = -1;
    for (int fd : listening_fds())
        if (!before.count(fd)) lfd = fd;
    if (lfd < 0) return Failure{"cannot find libmilter's listening socket"};
    if (*activated) {
        if (dup2(activated->get(), lfd) < 0) return Failure{"cannot take over fd " + std::to_string(activated->get())};
        activated->reset();
        unlink(placeholder.c_str());
        rmdir(placeholder_dir.c_str());
    }
    if (auto inet = daemon::check_inet_allowed({lfd}, plan.allow_peers, "--allow-peers"); !inet)
        return Failure{inet.error()};
    set_peer_allow_list(&plan.allow_peers);
    if (!set_nodelay_if_tcp(lfd)) return Failure{"cannot set TCP_NODELAY on " + opts.listen};
    // The socket goes to the user we drop to and to the MTA's group, without following a
    // link; nobody else may connect. Root removes a stale socket at the next start.
    if (unix_) {
        auto given = daemon::set_socket_access(spec.path, opts.user, opts.socket_group, plan.socket_mode);
        if (!given) return Failure{given.error()};
    }
    // An inherited unix socket must not be open to every local user (abstract, or a mode
    // such as systemd's default 0666).
    if (auto inherited = daemon::check_unix_listeners({lfd}); !inherited) return Failure{inherited.error()};
    return lfd;
}

// SIGTERM, SIGINT and SIGHUP wait for libmilter's signal thread from now on (smfi_main()
// blocks them too, later): a stop right after READY=1 is handled like any other.
void hold_signals_for_libmilter() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGHUP, SIGTERM, SIGINT}) sigaddset(&set, sig);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

// --check-config: what was checked; the exit status 0.
int print_config_ok(const Options& o, const Config& c) {
    std::string ldap;
    if (c.directory_backend && c.directory_backend->is_ldap()) {
        auto checked = c.directory_backend->check();
        if (!checked) {
            std::fprintf(stderr, "xproxy-milter: %s\n", checked.error().c_str());
            return 1;
        }
        ldap = "; " + *checked;
    }
    std::printf(
        "xproxy-milter: configuration ok (mode: %s, keys: %zu, trusted upstreams: %zu, block list: %zu, "
        "policies: %zu, domains: %zu)%s\n",
        to_string(c.mode), c.keys.size(), c.trusted_upstreams.entries().size(), c.block_list.entries().size(),
        o.policies.size(), c.current_directory()->domain_count(), ldap.c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    int code = 0;
    auto opts = parse_options(argc, argv, code);
    if (!opts) return code;
    daemon::Startup start("xproxy-milter");
    if (!start.log_options(opts->log_sink, opts->log_level)) return 2;
    std::string err;
    auto config = build_config(*opts, &err);
    if (!config) return start.fail(err);
    // Whoever reaches an inject milter gets a signature for the source it claims: a TCP
    // listener serves only the MTAs named in --allow-peers, and none without it.
    auto plan = daemon::plan_listeners(
        {opts->listen}, {opts->socket_mode, opts->socket_group, opts->allow_peers, opts->user}, opts->origins);
    if (!plan) return start.fail(plan.error());
    if (auto m = metrics::check_endpoint_spec(opts->metrics); !m) return start.fail(m.error());
    if (opts->check_config) return print_config_ok(*opts, *config);
    start.start_log();
    auto listener = open_milter_socket(*plan, *opts, config);
    if (!listener) return start.fail(listener.error());
    // The configuration is read once, at start: the reload counter stays 0.
    (void)metrics::register_common("xproxy-milter", "xproxy_milter");
    (void)metrics::listener_metrics("xproxy_milter", "milter");
    register_metrics();
    auto endpoint = metrics::start_endpoint(opts->metrics);
    if (!endpoint) return start.fail(endpoint.error());
    if (config->directory_backend) config->directory_backend->start();  // LDAP: state file, then the sync
    if (auto dropped = daemon::drop_privileges(opts->user); !dropped) return start.fail(dropped.error());
    log::info(
        "event=start mode=%s listen=%s allow_peers=\"%s\" keys=%zu trusted_upstreams=\"%s\" "
        "block_list=\"%s\" on_invalid=%s on_missing=%s on_missing_bounce=%s keep_header=%d policies=%zu",
        to_string(config->mode), opts->listen.c_str(), plan->allow_peers.to_string().c_str(), config->keys.size(),
        config->trusted_upstreams.to_string().c_str(), config->block_list.to_string().c_str(),
        to_string(config->on_invalid), to_string(config->on_missing), to_string(config->on_missing_bounce),
        config->keep_header ? 1 : 0, opts->policies.size());
    // The socket listens already (smfi_opensocket): a connection made from now on waits
    // in its backlog for smfi_main().
    hold_signals_for_libmilter();
    daemon::notify_ready(daemon::listening_status({*listener}) + " (mode " + to_string(config->mode) + ")");
    int rc = smfi_main();
    daemon::notify_stopping();  // libmilter handled SIGTERM or SIGINT (or failed)
    log::info("event=stop rc=%d", rc);
    endpoint->reset();
    return rc == MI_SUCCESS ? 0 : 1;
}
