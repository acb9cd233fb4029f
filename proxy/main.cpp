// xproxyd: the SMTP proxy that carries the original client downstream per transaction.
// Start-up in one readable function: options, configuration check, TLS contexts, spool
// directory, listeners, privileges, then the accept loops on a thread pool.
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
#include "xproxy/daemon/listen.hpp"
#include "xproxy/daemon/log.hpp"
#include "xproxy/daemon/options.hpp"

using namespace xproxy;
using namespace xproxy::proxyd;

namespace {

asio::awaitable<void> accept_loop(asio::ip::tcp::acceptor acc, const DownstreamConfig& ds, Shared& shared) {
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
        sock.set_option(asio::ip::tcp::no_delay(true), ignored);
        asio::co_spawn(ex, run_session(std::make_shared<Conn>(std::move(sock)), ds, shared), asio::detached);
    }
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
    std::vector<daemon::ListenSpec> specs;
    for (const auto& l : cfg->listeners) {
        auto spec = daemon::parse_listen(l.spec, &err);
        if (!spec || spec->kind == daemon::ListenSpec::Kind::unix_) {
            std::fprintf(stderr, "xproxyd: listen %s: %s\n", l.spec.c_str(), spec ? "unix sockets are not supported" : err.c_str());
            return 1;
        }
        specs.push_back(*spec);
    }
    std::unique_ptr<asio::ssl::context> front_tls, client_tls;
    try {
        if (!cfg->tls_cert.empty()) {
            if (!key_file_private(cfg->tls_key, &err)) {
                std::fprintf(stderr, "xproxyd: tls-key: %s\n", err.c_str());
                return 1;
            }
            front_tls = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
            front_tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                                   asio::ssl::context::no_tlsv1_1);
            front_tls->use_certificate_chain_file(cfg->tls_cert);
            front_tls->use_private_key_file(cfg->tls_key, asio::ssl::context::pem);
        }
        client_tls = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
        client_tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                                asio::ssl::context::no_sslv3);
        if (!cfg->tls_ca.empty()) {
            client_tls->load_verify_file(cfg->tls_ca);
            client_tls->set_verify_mode(asio::ssl::verify_peer);
        } else {
            client_tls->set_verify_mode(asio::ssl::verify_none);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "xproxyd: TLS configuration: %s\n", e.what());
        return 1;
    }
    if (cfg->check_config) {
        std::printf("xproxyd: configuration ok (listeners: %zu, downstreams: %zu, trusted upstreams: %s)\n",
                    cfg->listeners.size(), cfg->downstreams.size(),
                    cfg->trusted.empty() ? "none" : cfg->trusted.to_string().c_str());
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

    asio::io_context io(static_cast<int>(cfg->threads));
    DownstreamPool parked(cfg->pool_size, cfg->pool_idle, cfg->threads == 1);
    Shared shared{*cfg, front_tls.get(), client_tls.get(), parked};
    for (auto [fd, ds] : fds) {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
        asio::ip::tcp::acceptor acc(io, ss.ss_family == AF_INET6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4(), fd);
        asio::co_spawn(io, accept_loop(std::move(acc), cfg->downstreams[ds], shared), asio::detached);
    }
    asio::signal_set signals(io, SIGTERM, SIGINT);
    signals.async_wait([&](error_code ec, int sig) {
        if (ec) return;
        log::info("event=stop signal=%d", sig);
        io.stop();
    });
    std::signal(SIGPIPE, SIG_IGN);
    log::info("event=start listeners=%zu threads=%u trusted_upstreams=\"%s\" fast_path_threshold=%zu", fds.size(),
              cfg->threads, cfg->trusted.to_string().c_str(), cfg->fast_path_threshold);
    std::vector<std::thread> pool;
    for (unsigned i = 1; i < cfg->threads; ++i) pool.emplace_back([&io] { io.run(); });
    io.run();
    for (auto& t : pool) t.join();
    return 0;
}
