// xproxyd: the SMTP proxy that carries the original client downstream per transaction.
// Start-up in one readable function: options, configuration check, TLS contexts, spool
// directory, listeners, privileges, then the accept loops (xproxy/daemon/acceptor.hpp)
// on a thread pool. Their handler holds the session limits: a connection over one is
// answered 421 and closed. Tells systemd (Type=notify) READY=1 once it serves and
// STOPPING=1 when it stops.
#include <pwd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>

#include "config.hpp"
#include "conn.hpp"
#include "relay_metrics.hpp"
#include "session.hpp"
#include "session_limits.hpp"
#include "submission.hpp"
#include <xproxy/base/result.hpp>
#include <xproxy/base/unique_fd.hpp>
#include <xproxy/daemon/acceptor.hpp>
#include <xproxy/daemon/listen.hpp>
#include <xproxy/daemon/log.hpp>
#include <xproxy/daemon/metrics.hpp>
#include <xproxy/daemon/metrics_endpoint.hpp>
#include <xproxy/daemon/notify.hpp>
#include <xproxy/daemon/startup.hpp>
#include <xproxy/daemon/tls.hpp>

using namespace xproxy;
using namespace xproxy::xproxyd;

namespace {

// The kind of a listener, the label of its connection metrics.
const char* listener_kind(const Listener& li) {
    if (li.submission) return "submission";
    return li.splice ? "splice" : "relay";
}

const metrics::ListenerMetrics& connection_metrics(const Listener& li) {
    static const metrics::ListenerMetrics relay = metrics::listener_metrics("xproxyd", "relay");
    static const metrics::ListenerMetrics splice = metrics::listener_metrics("xproxyd", "splice");
    static const metrics::ListenerMetrics submission = metrics::listener_metrics("xproxyd", "submission");
    if (li.submission) return submission;
    return li.splice ? splice : relay;
}

metrics::Family<metrics::Counter>& refused_metrics() {
    return metrics::registry().counter("xproxyd_connections_refused_total",
                                       "Connections refused at once (421) over a session limit, by listener and limit.",
                                       {"listener", "limit"});
}

// A session and its place in the limits, given back when the session ends.
asio::awaitable<void> serve(std::shared_ptr<Conn> conn, const Listener& li, Shared& shared, SessionLimits::Slot slot) {
    const metrics::SessionCount counted(connection_metrics(li));
    co_await run_session(std::move(conn), li, shared);
    slot.reset();
}

// Over a limit: 421 and close at once, without a session. The reply fits the empty send
// buffer of a new socket, so a non-blocking write never waits for the client.
void refuse(asio::ip::tcp::socket& sock, const Config& cfg, const IpAddress& client, SessionLimits::Verdict v,
            const SessionLimits& limits) {
    const bool total = v == SessionLimits::Verdict::total;
    log::warning("event=limit client=%s limit=%s active=%u", client.to_string().c_str(),
                 total ? "max-sessions" : "max-sessions-per-client", total ? limits.active() : limits.active(client));
    const std::string line = "421 4.7.0 " + cfg.hostname + " Error: too many connections" +
                             (total ? std::string() : " from " + client.to_string()) + ", try again later\r\n";
    error_code ignored;
    sock.non_blocking(true, ignored);
    sock.write_some(asio::buffer(line), ignored);
    sock.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    sock.close(ignored);
}

// The accept loops' handler: a connection over a session limit is refused, any other
// one becomes a session of the listener's downstream.
daemon::ConnectionHandlers sessions_of(const Listener& ds, Shared& shared, SessionLimits& limits) {
    daemon::ConnectionHandlers h;
    h.tcp = [&ds, &shared, &limits](asio::ip::tcp::socket sock) {
        error_code ignored;
        auto peer = sock.remote_endpoint(ignored);
        IpAddress client;
        if (!ignored) {
            if (auto e = Endpoint::from_sockaddr(peer.data(), static_cast<unsigned>(peer.size()))) client = e->addr;
        }
        SessionLimits::Slot slot;
        const auto verdict = limits.acquire(client, &slot);
        if (verdict != SessionLimits::Verdict::ok) {
            refused_metrics()
                .with({listener_kind(ds),
                       verdict == SessionLimits::Verdict::total ? "max-sessions" : "max-sessions-per-client"})
                .inc();
            return refuse(sock, shared.cfg, client, verdict, limits);
        }
        auto ex = sock.get_executor();
        asio::co_spawn(ex, serve(std::make_shared<Conn>(std::move(sock)), ds, shared, std::move(slot)), asio::detached);
    };
    return h;
}

// Descriptors a full house needs: per session the client, a downstream and a spill file;
// the parked downstream connections; listeners and the rest. The soft limit is raised
// towards it (up to the hard limit); a warning says when that is not enough.
void check_descriptor_limit(const Config& cfg, std::size_t listeners) {
    const rlim_t need = static_cast<rlim_t>(cfg.max_sessions) * 3 +
                        static_cast<rlim_t>(cfg.pool_size * cfg.downstreams.size() + listeners + 64);
    struct rlimit rl {};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    if (rl.rlim_cur < need) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < need)
        log::warning("event=fd_limit need=%llu limit=%llu detail=\"raise LimitNOFILE or lower max-sessions\"",
                     static_cast<unsigned long long>(need), static_cast<unsigned long long>(rl.rlim_cur));
}

// Read now, before privileges are dropped; never logged.
Expected<void> load_hmac_keys(Config& cfg) {
    for (auto& d : cfg.downstreams) {
        if (d.hmac_key_file.empty()) continue;
        auto key = read_secret_file(d.hmac_key_file, kMinHmacKeySize);
        if (!key) return Failure{"downstream " + d.name + ": hmac-key-file: " + key.error()};
        d.hmac_key = std::make_shared<const SecretBytes>(std::move(*key));
    }
    return {};
}

// Every listener is TCP (fd: and systemd included).
Expected<std::vector<daemon::ListenSpec>> listen_specs(const Config& cfg) {
    std::vector<daemon::ListenSpec> specs;
    for (const auto& l : cfg.listeners) {
        auto spec = daemon::parse_listen(l.spec);
        if (!spec || spec->kind == daemon::ListenSpec::Kind::unix_)
            return Failure{(l.origin.empty() ? "" : l.origin + ": ") + "listen " + l.spec + ": " +
                           (spec ? "unix sockets are not supported" : spec.error())};
        specs.push_back(std::move(*spec));
    }
    return specs;
}

// The front side's STARTTLS context (none without tls-cert) and one per downstream (none
// with tls=none); with tls=verify the chain is checked against tls-ca=, else --tls-ca,
// else the system's store (the name is set per connection).
struct TlsContexts {
    std::unique_ptr<asio::ssl::context> front;
    std::vector<std::unique_ptr<asio::ssl::context>> client;
};

Expected<TlsContexts> tls_contexts(const Config& cfg) {
    TlsContexts tls;
    std::string what = "tls-cert/tls-key";
    try {
        if (!cfg.tls_cert.empty()) {
            if (auto key = daemon::check_private_key_file(cfg.tls_key); !key) return Failure{"tls-key: " + key.error()};
            tls.front = daemon::tls_server_context(cfg.tls_cert, cfg.tls_key);
        }
        for (const auto& d : cfg.downstreams) {
            what = "downstream " + d.name;
            const std::string& ca = d.tls_ca.empty() ? cfg.tls_ca : d.tls_ca;
            // An MX downstream verifies for REQUIRETLS whatever its tls= (per connection).
            const bool verify = d.tls == TlsMode::verify || d.mx;
            tls.client.push_back(d.tls == TlsMode::none && !d.mx ? nullptr : daemon::tls_client_context(verify, ca));
        }
    } catch (const std::exception& e) {
        return Failure{"TLS configuration (" + what + "): " + e.what()};
    }
    return tls;
}

// The resolver of the outbound mode, when a downstream has destinations=mx.
Expected<std::unique_ptr<MxLookup>> outbound_resolver(const Config& cfg, const asio::any_io_executor& ex) {
    bool any = false;
    for (const auto& d : cfg.downstreams) any = any || d.mx;
    if (!any) return std::unique_ptr<MxLookup>();
    MxLookupConfig mc;
    mc.forwarders = cfg.dns.servers;
    mc.trust_anchor_file = cfg.dns.trust_anchor;
    mc.unbound_options = cfg.dns.options;
    mc.refused_destinations = cfg.dns.refused;
    auto made = MxLookup::create(ex, std::move(mc));
    if (!made) return Failure{"DNS resolver: " + made.error()};
    return std::move(*made);
}

// --check-config: what was checked; the exit status 0.
int print_config_ok(const Config& cfg, SubmissionServices* submission) {
    std::printf("xproxyd: configuration ok (listeners: %zu, downstreams: %zu, trusted upstreams: %s)\n",
                cfg.listeners.size(), cfg.downstreams.size(),
                cfg.trusted.empty() ? "none" : cfg.trusted.to_string().c_str());
    for (const auto& p : cfg.pools) {
        std::printf("pool %s:", p.risk.c_str());
        for (const auto& m : p.members)
            std::printf(" %s=%s:%u", cfg.egresses[m.egress].name.c_str(),
                        cfg.egresses[m.egress].address.to_string().c_str(), m.weight);
        std::printf("\n");
    }
    if (submission) {
        auto checked = submission->directory_backend().check();
        if (!checked) {
            std::fprintf(stderr, "xproxyd: submission: %s\n", checked.error().c_str());
            return 1;
        }
        std::printf("submission: %s, dovecot-auth %s\n", checked->c_str(), cfg.submission.dovecot_auth.c_str());
    }
    for (const auto& d : cfg.downstreams)
        if (d.mx)
            std::printf("downstream %s: destinations=mx port=%u tls=%s\n", d.name.c_str(), d.mx_port, to_string(d.tls));
    for (const auto& d : cfg.downstreams)
        if (!d.mx)
            std::printf("downstream %s: encoding=%s%s tls=%s%s%s\n", d.name.c_str(), to_string(d.encoding),
                        d.hmac_key ? " signed" : "", to_string(d.tls), d.tls == TlsMode::verify ? " name=" : "",
                        d.tls != TlsMode::verify ? ""
                        : d.tls_name.empty()     ? "(destination address)"
                                                 : d.tls_name.c_str());
    return 0;
}

// Listening descriptor and the index of its listener.
using Listeners = std::vector<std::pair<UniqueFd, std::size_t>>;

// The spool directory (mode 0700, given to --user) and the listeners, then privileges
// dropped; a spool directory unusable afterwards is an error too.
Expected<Listeners> open_and_drop(const Config& cfg, const std::vector<daemon::ListenSpec>& specs) {
    if (mkdir(cfg.spool_dir.c_str(), 0700) != 0 && errno != EEXIST)
        return Failure{"spool-dir " + cfg.spool_dir + ": " + std::strerror(errno)};
    Listeners out;
    for (std::size_t i = 0; i < specs.size(); ++i) {
        auto opened = daemon::open_listeners(specs[i]);
        if (!opened) return Failure{opened.error()};
        for (auto& fd : *opened) out.emplace_back(std::move(fd), i);
    }
    if (!cfg.user.empty() && geteuid() == 0) {
        // The spool directory must stay usable after dropping privileges.
        if (struct passwd* pw = getpwnam(cfg.user.c_str())) {
            if (chown(cfg.spool_dir.c_str(), pw->pw_uid, pw->pw_gid) != 0)
                return Failure{"chown " + cfg.spool_dir + ": " + std::strerror(errno)};
        }
    }
    if (auto dropped = daemon::drop_privileges(cfg.user); !dropped) return Failure{dropped.error()};
    struct stat st {};
    if (stat(cfg.spool_dir.c_str(), &st) != 0 || (st.st_mode & 077))
        return Failure{"spool-dir " + cfg.spool_dir + " must exist with mode 0700"};
    return out;
}

// The outbound mode's figures (at SIGHUP and at exit): the MX cache's hit rate and the
// messages each egress relayed.
void log_outbound_stats(const Config& cfg, const Shared& sh) {
    if (!sh.mx) return;
    const auto hits = sh.mx->cache_hits(), misses = sh.mx->cache_misses();
    log::info("event=outbound_stats mx_cache_hits=%llu mx_cache_misses=%llu mx_cache_hit_rate=%.3f",
              static_cast<unsigned long long>(hits), static_cast<unsigned long long>(misses),
              hits + misses ? static_cast<double>(hits) / static_cast<double>(hits + misses) : 0.0);
    for (const auto& p : cfg.pools)
        for (const auto& m : p.members)
            log::info("event=egress_stats pool=%s egress=%s source=%s weight=%u relayed=%llu", p.risk.c_str(),
                      cfg.egresses[m.egress].name.c_str(), cfg.egresses[m.egress].address.to_string().c_str(), m.weight,
                      static_cast<unsigned long long>(sh.egress_relayed[m.egress].load()));
}

void log_start(const Config& cfg, std::size_t listeners) {
    log::info(
        "event=start listeners=%zu threads=%u trusted_upstreams=\"%s\" fast_path_threshold=%zu max_sessions=%u "
        "max_sessions_per_client=%u spill_quota=%llu",
        listeners, cfg.threads, cfg.trusted.to_string().c_str(), cfg.fast_path_threshold, cfg.max_sessions,
        cfg.max_sessions_per_client, static_cast<unsigned long long>(cfg.spill_quota));
    for (const auto& d : cfg.downstreams)
        log::info("event=downstream_config name=%s tls=%s tls_name=%s", d.name.c_str(), to_string(d.tls),
                  d.tls_name.empty() ? "(destination address)" : d.tls_name.c_str());
}

int run(int argc, char** argv) {
    int code = 0;
    auto cfg = parse_config(argc, argv, code);
    if (!cfg) return code;
    daemon::Startup start("xproxyd");
    if (!start.log_options(cfg->log_sink, cfg->log_level)) return 2;
    if (auto keys = load_hmac_keys(*cfg); !keys) return start.fail(keys.error());
    auto specs = listen_specs(*cfg);
    if (!specs) return start.fail(specs.error());
    auto tls = tls_contexts(*cfg);
    if (!tls) return start.fail(tls.error());
    // Declared before the io_context: session frames it destroys at exit give their spill
    // bytes and places back to these.
    SpillQuota spill(cfg->spill_quota);
    SessionLimits limits(cfg->max_sessions, cfg->max_sessions_per_client);
    // Before the io_context too: session frames destroyed with it release their failed-login
    // attempts into the throttle.
    std::unique_ptr<SubmissionServices> submission;
    asio::io_context io(static_cast<int>(cfg->threads));
    // After the io_context, so destroyed before it; made before privileges are dropped
    // (it reads resolv.conf and the trust anchor).
    auto mx = outbound_resolver(*cfg, io.get_executor());
    if (!mx) return start.fail(mx.error());
    // The directory is read before privileges are dropped too (and re-read at SIGHUP: it
    // must stay readable by --user).
    if (!cfg->submission.directory.empty()) {
        auto made = SubmissionServices::create(*cfg);
        if (!made) return start.fail(made.error());
        submission = std::move(*made);
    }
    if (auto m = metrics::check_endpoint_spec(cfg->metrics); !m) return start.fail(m.error());
    if (cfg->check_config) return print_config_ok(*cfg, submission.get());
    start.start_log();
    // Opened with the listeners, before privileges are dropped.
    auto endpoint = metrics::start_endpoint(cfg->metrics);
    if (!endpoint) return start.fail(endpoint.error());
    if (submission) submission->directory_backend().start();  // LDAP: state file, then the sync
    auto listeners = open_and_drop(*cfg, *specs);
    if (!listeners) return start.fail(listeners.error());
    // Only the submission directory is re-read at SIGHUP: the reload counters count that.
    const auto common = metrics::register_common("xproxyd", "xproxyd");
    for (const auto& l : cfg->listeners) (void)connection_metrics(l);
    register_relay_metrics();

    DownstreamPool parked(cfg->pool_size, cfg->pool_idle, cfg->threads == 1);
    Shared shared{*cfg, tls->front.get(), {}, parked, spill};
    shared.mx = mx->get();
    shared.submission = submission.get();
    shared.egress_relayed = std::make_unique<std::atomic<std::uint64_t>[]>(cfg->egresses.size());
    for (const auto& c : tls->client) shared.client_tls.push_back(c.get());
    check_descriptor_limit(*cfg, listeners->size());
    // With several threads, one strand per session: its coroutine, its downstream and
    // their deadlines never run concurrently. One thread needs no strand.
    const daemon::AcceptOptions accept{nullptr, cfg->threads > 1};
    std::vector<int> fds;
    for (const auto& l : *listeners) fds.push_back(l.first.get());
    const std::string status = daemon::listening_status(fds);
    for (auto& [fd, li] : *listeners)
        daemon::serve_listener(io, fd.release(), accept, sessions_of(cfg->listeners[li], shared, limits));
    std::signal(SIGPIPE, SIG_IGN);
    const int status_code = daemon::run_until_stopped(
        io, cfg->threads,
        [&] {
            log_outbound_stats(*cfg, shared);
            if (submission) (submission->reload() ? common.reload_ok : common.reload_failed).inc();
        },
        [&] {
            log_start(*cfg, listeners->size());
            daemon::notify_ready(status);
        });
    log_outbound_stats(*cfg, shared);
    endpoint->reset();
    return status_code;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {  // the io_context or a thread could not be set up
        std::fprintf(stderr, "xproxyd: %s\n", e.what());
        return 1;
    }
}
