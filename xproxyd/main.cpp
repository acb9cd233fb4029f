// xproxyd: the SMTP proxy that carries the original client downstream per transaction.
// Start-up in one readable function: options, configuration check, TLS contexts, spool
// directory, listeners, privileges, then the accept loops on a thread pool. The accept
// loops hold the session limits: a connection over one is answered 421 and closed.
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include <cstdio>
#include <thread>

#include "config.hpp"
#include "conn.hpp"
#include "session.hpp"
#include "session_limits.hpp"
#include <xproxy/daemon/listen.hpp>
#include <xproxy/daemon/log.hpp>
#include <xproxy/daemon/options.hpp>

using namespace xproxy;
using namespace xproxy::xproxyd;

namespace {

// A session and its place in the limits, given back when the session ends.
asio::awaitable<void> serve(std::shared_ptr<Conn> conn, const DownstreamConfig& ds, Shared& shared,
                            SessionLimits::Slot slot) {
    co_await run_session(std::move(conn), ds, shared);
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

asio::awaitable<void> accept_loop(asio::ip::tcp::acceptor acc, const DownstreamConfig& ds, Shared& shared,
                                  SessionLimits& limits) {
    for (;;) {
        error_code ec;
        // With several threads, one strand per session: its coroutine, its downstream and
        // their deadlines never run concurrently. One thread needs no strand.
        auto ex = shared.cfg.threads > 1 ? asio::any_io_executor(asio::make_strand(acc.get_executor()))
                                         : asio::any_io_executor(acc.get_executor());
        auto sock = co_await acc.async_accept(ex, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::operation_aborted) co_return;
            log::warning("event=accept_error error=\"%s\"", ec.message().c_str());
            asio::steady_timer t(acc.get_executor(), std::chrono::milliseconds(100));
            co_await t.async_wait(asio::use_awaitable);
            continue;
        }
        error_code ignored;
        auto peer = sock.remote_endpoint(ignored);
        IpAddress client;
        if (!ignored) {
            if (auto e = Endpoint::from_sockaddr(peer.data(), static_cast<unsigned>(peer.size()))) client = e->addr;
        }
        SessionLimits::Slot slot;
        const auto verdict = limits.acquire(client, &slot);
        if (verdict != SessionLimits::Verdict::ok) {
            refuse(sock, shared.cfg, client, verdict, limits);
            continue;
        }
        sock.set_option(asio::ip::tcp::no_delay(true), ignored);
        asio::co_spawn(ex, serve(std::make_shared<Conn>(std::move(sock)), ds, shared, std::move(slot)),
                       asio::detached);
    }
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

// Both sides: TLS 1.2 at least, set in code so that a lax system OpenSSL configuration
// cannot lower it, and no renegotiation in either direction (TLS 1.2 renegotiation only
// gives a peer a way to make us redo handshakes; OpenSSL 3 already refuses a client's by
// default, this also refuses a downstream's request and holds whatever the defaults).
std::unique_ptr<asio::ssl::context> hardened_context(asio::ssl::context::method method) {
    auto ctx = std::make_unique<asio::ssl::context>(method);
    ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                     asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
    SSL_CTX_set_options(ctx->native_handle(), SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION) != 1)
        throw std::runtime_error("cannot set TLS 1.2 as the minimum");
    return ctx;
}

// Towards one downstream: TLS 1.2 at least; with tls=verify the chain is checked against
// tls-ca=, else --tls-ca, else the system's store (the name is set per connection).
std::unique_ptr<asio::ssl::context> client_context(const DownstreamConfig& d, const Config& cfg) {
    if (d.tls == TlsMode::none) return nullptr;
    auto ctx = hardened_context(asio::ssl::context::tls_client);
    if (d.tls == TlsMode::verify) {
        const std::string& ca = d.tls_ca.empty() ? cfg.tls_ca : d.tls_ca;
        if (ca.empty()) ctx->set_default_verify_paths();
        else ctx->load_verify_file(ca);
        ctx->set_verify_mode(asio::ssl::verify_peer);
    } else {
        ctx->set_verify_mode(asio::ssl::verify_none);
    }
    return ctx;
}

bool key_file_private(const std::string& path, std::string* err) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
        *err = "cannot stat " + path;
        return false;
    }
    if (st.st_mode & 077) {
        *err = path + " must not be readable by group or others (mode 0600 or tighter)";
        return false;
    }
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    int code = 0;
    auto cfg = parse_config(argc, argv, code);
    if (!cfg) return code;
    log::Sink sink;
    log::Level level;
    if (!daemon::parse_log_options(cfg->log_sink, cfg->log_level, sink, level, "xproxyd")) return 2;
    std::string err;
    // Read now, before privileges are dropped; never logged.
    for (auto& d : cfg->downstreams) {
        if (d.hmac_key_file.empty()) continue;
        auto key = read_secret_file(d.hmac_key_file, kMinHmacKeySize);
        if (!key) {
            std::fprintf(stderr, "xproxyd: downstream %s: hmac-key-file: %s\n", d.name.c_str(), key.error().c_str());
            return 1;
        }
        d.hmac_key = std::make_shared<const SecretBytes>(std::move(*key));
    }
    std::vector<daemon::ListenSpec> specs;
    for (const auto& l : cfg->listeners) {
        auto spec = daemon::parse_listen(l.spec, &err);
        if (!spec || spec->kind == daemon::ListenSpec::Kind::unix_) {
            std::fprintf(stderr, "xproxyd: listen %s: %s\n", l.spec.c_str(), spec ? "unix sockets are not supported" : err.c_str());
            return 1;
        }
        specs.push_back(*spec);
    }
    std::unique_ptr<asio::ssl::context> front_tls;
    std::vector<std::unique_ptr<asio::ssl::context>> client_tls;
    std::string what = "tls-cert/tls-key";
    try {
        if (!cfg->tls_cert.empty()) {
            if (!key_file_private(cfg->tls_key, &err)) {
                std::fprintf(stderr, "xproxyd: tls-key: %s\n", err.c_str());
                return 1;
            }
            front_tls = hardened_context(asio::ssl::context::tls_server);
            front_tls->use_certificate_chain_file(cfg->tls_cert);
            front_tls->use_private_key_file(cfg->tls_key, asio::ssl::context::pem);
        }
        for (const auto& d : cfg->downstreams) {
            what = "downstream " + d.name;
            client_tls.push_back(client_context(d, *cfg));
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "xproxyd: TLS configuration (%s): %s\n", what.c_str(), e.what());
        return 1;
    }
    if (cfg->check_config) {
        std::printf("xproxyd: configuration ok (listeners: %zu, downstreams: %zu, trusted upstreams: %s)\n",
                    cfg->listeners.size(), cfg->downstreams.size(),
                    cfg->trusted.empty() ? "none" : cfg->trusted.to_string().c_str());
        for (const auto& d : cfg->downstreams)
            std::printf("downstream %s: encoding=%s%s tls=%s%s%s\n", d.name.c_str(), to_string(d.encoding),
                        d.hmac_key ? " signed" : "", to_string(d.tls),
                        d.tls == TlsMode::verify ? " name=" : "",
                        d.tls != TlsMode::verify ? ""
                        : d.tls_name.empty()     ? "(destination address)"
                                                 : d.tls_name.c_str());
        return 0;
    }
    log::init("xproxyd", sink, level);
    if (mkdir(cfg->spool_dir.c_str(), 0700) != 0 && errno != EEXIST) {
        std::fprintf(stderr, "xproxyd: spool-dir %s: %s\n", cfg->spool_dir.c_str(), std::strerror(errno));
        return 1;
    }
    std::vector<std::pair<int, std::size_t>> fds;  // listening fd, downstream index
    for (std::size_t i = 0; i < specs.size(); ++i) {
        auto opened = daemon::open_listeners(specs[i], &err);
        if (opened.empty()) {
            std::fprintf(stderr, "xproxyd: %s\n", err.c_str());
            return 1;
        }
        for (int fd : opened) fds.emplace_back(fd, cfg->listeners[i].downstream);
    }
    if (!cfg->user.empty() && geteuid() == 0) {
        // The spool directory must stay usable after dropping privileges.
        if (struct passwd* pw = getpwnam(cfg->user.c_str())) {
            if (chown(cfg->spool_dir.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
                std::fprintf(stderr, "xproxyd: chown %s: %s\n", cfg->spool_dir.c_str(), std::strerror(errno));
                return 1;
            }
        }
    }
    if (!daemon::drop_privileges(cfg->user, &err)) {
        std::fprintf(stderr, "xproxyd: %s\n", err.c_str());
        return 1;
    }
    struct stat st {};
    if (stat(cfg->spool_dir.c_str(), &st) != 0 || (st.st_mode & 077)) {
        std::fprintf(stderr, "xproxyd: spool-dir %s must exist with mode 0700\n", cfg->spool_dir.c_str());
        return 1;
    }

    // Declared before the io_context: session frames it destroys at exit give their spill
    // bytes and places back to these.
    SpillQuota spill(cfg->spill_quota);
    SessionLimits limits(cfg->max_sessions, cfg->max_sessions_per_client);
    asio::io_context io(static_cast<int>(cfg->threads));
    DownstreamPool parked(cfg->pool_size, cfg->pool_idle, cfg->threads == 1);
    Shared shared{*cfg, front_tls.get(), {}, parked, spill};
    for (const auto& c : client_tls) shared.client_tls.push_back(c.get());
    check_descriptor_limit(*cfg, fds.size());
    for (auto [fd, ds] : fds) {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
        asio::ip::tcp::acceptor acc(io, ss.ss_family == AF_INET6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4(), fd);
        asio::co_spawn(io, accept_loop(std::move(acc), cfg->downstreams[ds], shared, limits), asio::detached);
    }
    asio::signal_set signals(io, SIGTERM, SIGINT);
    signals.async_wait([&](error_code ec, int sig) {
        if (ec) return;
        log::info("event=stop signal=%d", sig);
        io.stop();
    });
    std::signal(SIGPIPE, SIG_IGN);
    log::info("event=start listeners=%zu threads=%u trusted_upstreams=\"%s\" fast_path_threshold=%zu max_sessions=%u "
              "max_sessions_per_client=%u spill_quota=%llu",
              fds.size(), cfg->threads, cfg->trusted.to_string().c_str(), cfg->fast_path_threshold, cfg->max_sessions,
              cfg->max_sessions_per_client, static_cast<unsigned long long>(cfg->spill_quota));
    for (const auto& d : cfg->downstreams)
        log::info("event=downstream_config name=%s tls=%s tls_name=%s", d.name.c_str(), to_string(d.tls),
                  d.tls_name.empty() ? "(destination address)" : d.tls_name.c_str());
    std::vector<std::thread> pool;
    for (unsigned i = 1; i < cfg->threads; ++i) pool.emplace_back([&io] { io.run(); });
    io.run();
    for (auto& t : pool) t.join();
    return 0;
}
