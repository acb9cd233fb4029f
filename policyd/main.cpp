// xproxy-policyd: the Postfix policy daemon. Start-up in one readable function: options,
// configuration check, listeners, privileges, run. SIGHUP (and a changed directory, key
// ring or risk file, checked every --watch-interval seconds) reloads everything
// atomically; a broken new configuration is rejected and the old one stays in force.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>

#include "handler.hpp"
#include "options.hpp"
#include "server.hpp"
#include "state.hpp"
#include <xproxy/daemon/access.hpp>
#include <xproxy/daemon/listen.hpp>
#include <xproxy/daemon/log.hpp>
#include <xproxy/daemon/options.hpp>

using namespace xproxy;
using namespace xproxy::policyd;

namespace {

StateHolder g_states;
std::mutex g_reload_mu;

std::map<std::string, std::int64_t> mtimes(const std::vector<std::string>& paths) {
    std::map<std::string, std::int64_t> out;
    for (const auto& p : paths) {
        struct stat st {};
        out[p] = stat(p.c_str(), &st) == 0 ? static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec : -1;
    }
    return out;
}

void reload(const char* why) {
    std::lock_guard<std::mutex> lock(g_reload_mu);
    std::string err;
    auto opts = reparse_options(&err);
    std::shared_ptr<const State> fixed;
    if (opts) {
        // Listeners, user and threads are fixed at start-up; keep the running values.
        auto cur = g_states.get();
        opts->listen = cur->options.listen;
        opts->user = cur->options.user;
        opts->threads = cur->options.threads;
        fixed = build_state(*opts, &err);  // a new State: its key ring is never copied
    }
    if (!fixed) {
        log::error("event=reload_failed trigger=%s error=\"%s\" (the previous configuration stays in force)", why,
                   err.c_str());
        return;
    }
    g_states.set(fixed);
    log::info("event=reload trigger=%s policies=%zu domains=%zu users=%zu keys=%zu", why, fixed->options.policies.size(),
              fixed->directory->domain_count(), fixed->directory->user_count(), fixed->keys.size());
}

void on_hup() {
    std::thread([] { reload("SIGHUP"); }).detach();
}

}  // namespace

int main(int argc, char** argv) {
    int code = 0;
    auto opts = parse_options(argc, argv, code);
    if (!opts) return code;

    log::Sink sink;
    log::Level level;
    if (!daemon::parse_log_options(opts->log_sink, opts->log_level, sink, level, "xproxy-policyd")) return 2;
    std::string err;
    auto state = build_state(*opts, &err);
    if (!state) {
        std::fprintf(stderr, "xproxy-policyd: %s\n", err.c_str());
        return 1;
    }
    std::vector<daemon::ListenSpec> specs;
    for (const auto& l : opts->listen) {
        auto spec = daemon::parse_listen(l, &err);
        if (!spec) {
            std::fprintf(stderr, "xproxy-policyd: %s\n", err.c_str());
            return 1;
        }
        if (spec->kind == daemon::ListenSpec::Kind::unix_ &&
            !daemon::check_socket_group(opts->socket_group, spec->path, &err)) {
            std::fprintf(stderr, "xproxy-policyd: %s\n", err.c_str());
            return 1;
        }
        specs.push_back(*spec);
    }
    unsigned socket_mode = 0;
    if (!daemon::parse_socket_mode(opts->socket_mode, socket_mode)) {
        std::fprintf(stderr, "xproxy-policyd: --socket-mode must be octal, e.g. 0660\n");
        return 1;
    }
    if (!daemon::check_socket_mode(socket_mode, &err)) {
        std::fprintf(stderr, "xproxy-policyd: %s\n", err.c_str());
        return 1;
    }
    // The inject policy signs whatever client a request names: a TCP listener serves only
    // the MTAs in --allow-peers, and none without it (checked again on the opened sockets,
    // which covers fd: and systemd).
    auto allow_peers = CidrSet::parse(opts->allow_peers);
    if (!allow_peers) {
        std::fprintf(stderr, "xproxy-policyd: --allow-peers: %s\n", allow_peers.error().c_str());
        return 1;
    }
    for (const auto& spec : specs) {
        if (spec.kind == daemon::ListenSpec::Kind::inet && allow_peers->empty()) {
            std::fprintf(stderr,
                         "xproxy-policyd: TCP listener %s would serve nobody: add --allow-peers CIDR naming the "
                         "MTA's address (an address of this host lets every local user in), or listen on unix:PATH\n",
                         spec.text.c_str());
            return 1;
        }
    }
    if (opts->check_config) {
        std::printf("xproxy-policyd: configuration ok (policies: %zu, domains: %zu, users: %zu, keys: %zu)\n",
                    opts->policies.size(), state->directory->domain_count(), state->directory->user_count(),
                    state->keys.size());
        return 0;
    }
    log::init("xproxy-policyd", sink, level);

    ServerOptions so;
    so.threads = opts->threads ? opts->threads : 1;
    so.idle_timeout = std::chrono::seconds(opts->idle_timeout);
    so.allow_peers = *allow_peers;
    for (const auto& spec : specs) {
        // Not in --check-config: the directory may not exist before the service starts.
        if (spec.kind == daemon::ListenSpec::Kind::unix_ && !daemon::check_socket_directory(spec.path, &err)) {
            std::fprintf(stderr, "xproxy-policyd: %s\n", err.c_str());
            return 1;
        }
    }
    for (const auto& spec : specs) {
        auto fds = daemon::open_listeners(spec, &err, socket_mode);
        if (fds.empty() || (spec.kind == daemon::ListenSpec::Kind::unix_ &&
                            !daemon::set_socket_access(spec.path, opts->user, opts->socket_group, socket_mode, &err))) {
            std::fprintf(stderr, "xproxy-policyd: %s\n", err.c_str());
            return 1;
        }
        so.listen_fds.insert(so.listen_fds.end(), fds.begin(), fds.end());
    }
    if (!daemon::check_inet_allowed(so.listen_fds, so.allow_peers, "--allow-peers", &err) ||
        !daemon::check_unix_listeners(so.listen_fds, &err)) {
        std::fprintf(stderr, "xproxy-policyd: %s\n", err.c_str());
        return 1;
    }
    if (!daemon::drop_privileges(opts->user, &err)) {
        std::fprintf(stderr, "xproxy-policyd: %s\n", err.c_str());
        return 1;
    }
    g_states.set(state);

    std::atomic<bool> stopping{false};
    std::mutex wmu;
    std::condition_variable wcv;
    std::thread watcher([&] {
        auto seen = mtimes(g_states.get()->file_paths);
        std::unique_lock<std::mutex> lock(wmu);
        for (;;) {
            unsigned every = g_states.get()->options.watch_interval;
            wcv.wait_for(lock, std::chrono::seconds(every ? every : 3600), [&] { return stopping.load(); });
            if (stopping) return;
            if (!every) continue;
            auto now = mtimes(g_states.get()->file_paths);
            if (now != seen) {
                lock.unlock();
                reload("file_change");
                lock.lock();
                seen = mtimes(g_states.get()->file_paths);
            }
        }
    });

    // From here on requests are served: they must never wait for syslog or stderr.
    if (sink != log::Sink::off) log::start_async();
    log::info("event=start listeners=%zu threads=%u policies=%zu trusted_upstreams=\"%s\" allow_peers=\"%s\"",
              so.listen_fds.size(), so.threads, opts->policies.size(),
              state->config.trusted_upstreams.to_string().c_str(), so.allow_peers.to_string().c_str());
    Server server(so, std::make_shared<PolicyHandlerFactory>(g_states));
    int rc = server.run(true, on_hup);
    {
        std::lock_guard<std::mutex> lock(wmu);
        stopping = true;
    }
    wcv.notify_all();
    watcher.join();
    log::stop_async();
    return rc;
}
