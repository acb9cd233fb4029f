// xproxy-policyd: the Postfix policy daemon. Start-up in one readable function: options,
// configuration check, listeners, privileges, run. SIGHUP (and a changed directory, key
// ring or risk file, checked every --watch-interval seconds) reloads everything
// atomically; a broken new configuration is rejected and the old one stays in force.
// Tells systemd (Type=notify) READY=1 once it serves, RELOADING=1 and READY=1 again around
// a reload, STOPPING=1 when it stops.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "auth_policy.hpp"
#include "handler.hpp"
#include "options.hpp"
#include "server.hpp"
#include "state.hpp"
#include <xproxy/base/escape.hpp>
#include <xproxy/daemon/listen.hpp>
#include <xproxy/daemon/log.hpp>
#include <xproxy/daemon/metrics.hpp>
#include <xproxy/daemon/metrics_endpoint.hpp>
#include <xproxy/daemon/notify.hpp>
#include <xproxy/daemon/startup.hpp>

using namespace xproxy;
using namespace xproxy::policyd;

namespace {

StateHolder g_states;
std::mutex g_reload_mu;
std::string g_ready_status;  // under g_reload_mu; empty until READY=1 was sent

std::map<std::string, std::int64_t> mtimes(const std::vector<std::string>& paths) {
    std::map<std::string, std::int64_t> out;
    for (const auto& p : paths) {
        struct stat st {};
        out[p] = stat(p.c_str(), &st) == 0
                     ? static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec
                     : -1;
    }
    return out;
}

const metrics::Common& common_metrics() {
    static const metrics::Common m = metrics::register_common("xproxy-policyd", "xproxy_policyd");
    return m;
}

void reload(const char* why) {
    std::lock_guard<std::mutex> lock(g_reload_mu);
    const bool ready = !g_ready_status.empty();  // not before READY=1
    if (ready) daemon::notify_reloading(std::string("reloading (") + why + ")");
    std::string err;
    auto opts = reparse_options(&err);
    std::shared_ptr<const State> fixed, cur;
    if (opts) {
        // Listeners (the auth policy's too), user and threads are fixed at start-up; keep the running values.
        cur = g_states.get();
        opts->listen = cur->options.listen;
        opts->user = cur->options.user;
        opts->threads = cur->options.threads;
        opts->auth_policy_listen = cur->options.auth_policy_listen;
        opts->auth_policy_socket_group = cur->options.auth_policy_socket_group;
        fixed = build_state(*opts, &err, cur.get());  // a new State: its key ring is never copied
    }
    if (!fixed) {
        common_metrics().reload_failed.inc();
        log::error("event=reload_failed trigger=%s error=\"%s\" (the previous configuration stays in force)", why,
                   escape_value(err, 0).c_str());
        if (ready) daemon::notify_ready(g_ready_status + "; reload failed, the previous configuration stays in force");
        return;
    }
    if (fixed->directory) fixed->directory->start();  // a new LDAP sync; nothing for a file or a kept one
    g_states.set(fixed);
    common_metrics().reload_ok.inc();
    if (ready) daemon::notify_ready(g_ready_status);
    const auto dir = fixed->current_directory();
    log::info("event=reload trigger=%s policies=%zu domains=%zu users=%zu keys=%zu", why,
              fixed->options.policies.size(), dir->domain_count(), dir->user_count(), fixed->keys.size());
}

void on_hup() {
    std::thread([] { reload("SIGHUP"); }).detach();
}

// Every --watch-interval seconds: reloads when a file the state was built from changed.
class FileWatcher {
public:
    FileWatcher() : thread_([this] { run(); }) {}
    ~FileWatcher() {
        {
            std::lock_guard<std::mutex> lock(mu_);
            stopping_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }

private:
    void run() {
        auto seen = mtimes(g_states.get()->file_paths);
        std::unique_lock<std::mutex> lock(mu_);
        for (;;) {
            unsigned every = g_states.get()->options.watch_interval;
            cv_.wait_for(lock, std::chrono::seconds(every ? every : 3600), [&] { return stopping_; });
            if (stopping_) return;
            if (!every) continue;
            auto now = mtimes(g_states.get()->file_paths);
            if (now != seen) {
                lock.unlock();
                reload("file_change");
                lock.lock();
                seen = mtimes(g_states.get()->file_paths);
            }
        }
    }
    std::mutex mu_;
    std::condition_variable cv_;
    bool stopping_ = false;
    std::thread thread_;  // last: starts once the rest is ready
};

// --check-config: what was checked; the exit status 0 (1 when an LDAP directory cannot
// be read).
int print_config_ok(const Options& o, const State& s) {
    if (s.directory && s.directory->is_ldap()) {
        auto checked = s.directory->check();
        if (!checked) {
            std::fprintf(stderr, "xproxy-policyd: %s\n", checked.error().c_str());
            return 1;
        }
        std::printf("xproxy-policyd: configuration ok (policies: %zu, keys: %zu); %s\n", o.policies.size(),
                    s.keys.size(), checked->c_str());
        return 0;
    }
    const auto dir = s.current_directory();
    std::printf("xproxy-policyd: configuration ok (policies: %zu, domains: %zu, users: %zu, keys: %zu)\n",
                o.policies.size(), dir->domain_count(), dir->user_count(), s.keys.size());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    int code = 0;
    auto opts = parse_options(argc, argv, code);
    if (!opts) return code;
    daemon::Startup start("xproxy-policyd");
    if (!start.log_options(opts->log_sink, opts->log_level)) return 2;
    std::string err;
    auto state = build_state(*opts, &err);
    if (!state) return start.fail(err);
    auto plan = daemon::plan_listeners(
        opts->listen, {opts->socket_mode, opts->socket_group, opts->allow_peers, opts->user}, opts->origins);
    if (!plan) return start.fail(plan.error());
    if (auto m = metrics::check_endpoint_spec(opts->metrics); !m) return start.fail(m.error());
    if (opts->check_config) return print_config_ok(*opts, *state);
    start.start_log();
    auto listeners = daemon::open_planned(*plan);
    if (!listeners) return start.fail(listeners.error());
    std::optional<Expected<UniqueFd>> auth_policy;
    std::optional<daemon::ListenSpec> auth_spec;
    if (!opts->auth_policy_listen.empty()) {
        auth_policy = open_auth_policy_listener(*opts, plan->socket_mode);
        if (!*auth_policy) return start.fail(auth_policy->error());
        auto spec = daemon::parse_listen(opts->auth_policy_listen);
        if (!spec) return start.fail(spec.error());
        auth_spec = std::move(*spec);
    }
    (void)common_metrics();
    register_decision_metrics();
    auto endpoint = metrics::start_endpoint(opts->metrics);
    if (!endpoint) return start.fail(endpoint.error());
    // An LDAP directory: the state file is served from here on, the sync connects in the
    // background (before then every lookup is a tempfail, never "user unknown").
    if (state->directory) state->directory->start();
    if (auto dropped = daemon::drop_privileges(opts->user); !dropped) return start.fail(dropped.error());
    g_states.set(state);

    ServerOptions so{
        {}, opts->threads ? opts->threads : 1, std::chrono::seconds(opts->idle_timeout), plan->allow_peers, {}};
    for (auto& fd : *listeners) so.listen_fds.push_back(fd.release());  // Asio's from now on
    const AuthPolicyService auth_policy_service(g_states);
    if (auth_policy)
        so.http_services.push_back(
            {(*auth_policy)->release(), opts->auth_policy_listen, auth_policy_limits(&*auth_spec, &plan->allow_peers),
             [&](const http::Request& r, std::string_view peer) { return auth_policy_service.handle(r, peer); }});
    int rc = 0;
    {
        FileWatcher watcher;
        Server server(so, std::make_shared<PolicyHandlerFactory>(g_states));
        rc = server.run(on_hup, [&] {
            // From here on requests are served: they must never wait for syslog or stderr.
            if (start.sink() != log::Sink::off) log::start_async();
            log::info(
                "event=start listeners=%zu threads=%u policies=%zu trusted_upstreams=\"%s\" allow_peers=\"%s\" "
                "auth_policy=%s",
                so.listen_fds.size(), so.threads, opts->policies.size(),
                state->config.trusted_upstreams.to_string().c_str(), so.allow_peers.to_string().c_str(),
                opts->auth_policy_listen.empty() ? "off" : opts->auth_policy_listen.c_str());
            std::lock_guard<std::mutex> lock(g_reload_mu);
            g_ready_status = daemon::listening_status(so.listen_fds);
            daemon::notify_ready(g_ready_status);
        });
    }
    endpoint->reset();
    log::stop_async();
    return rc;
}
