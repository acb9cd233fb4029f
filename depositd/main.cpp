// main.cpp: xproxy-depositd (doc/man/xproxy-depositd.8, doc/deposit.md): options,
// --check-config, TLS context, key ring, receipt key, directory, the identity provider's
// keys, listeners, privileges, then the HTTPS server on one thread (the token verifier
// and the tables of DepositService live on it). SIGHUP reloads the TLS certificate, the
// key ring, the receipt key, the directory and the identity provider's keys; a part that
// fails to load keeps the one in force. Tells systemd (Type=notify) READY=1 once it
// serves and STOPPING=1 when it stops.
#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <csignal>
#include <cstdio>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <xproxy/base/escape.hpp>
#include <xproxy/daemon/acceptor.hpp>
#include <xproxy/daemon/listen.hpp>
#include <xproxy/daemon/log.hpp>
#include <xproxy/daemon/metrics.hpp>
#include <xproxy/daemon/metrics_endpoint.hpp>
#include <xproxy/daemon/notify.hpp>
#include <xproxy/daemon/startup.hpp>

#include "config.hpp"
#include "deposit_service.hpp"
#include "receipt_keys.hpp"
#include "server.hpp"

using namespace xproxy;
using namespace xproxy::depositd;
namespace asio = boost::asio;

namespace {

// The key ring and the receipt key, read now (before privileges are dropped) and at
// SIGHUP, each on its own.
Expected<std::shared_ptr<const KeyRing>> load_keyring(const Config& cfg) {
    auto ring = KeyRing::load_file(cfg.keyring);
    if (!ring) return Failure{"--keyring: " + ring.error()};
    return std::make_shared<const KeyRing>(std::move(*ring));
}

Expected<std::shared_ptr<const jose::SigningKey>> load_receipt_key(const Config& cfg) {
    auto key = jose::SigningKey::load(cfg.receipt_key, cfg.receipt_kid);
    if (!key) return Failure{"--receipt-key: " + key.error()};
    if (auto jwks = receipt_jwk_set(*key); !jwks) return Failure{"--receipt-key: " + jwks.error()};
    return std::make_shared<const jose::SigningKey>(std::move(*key));
}

Expected<Keys> load_keys(const Config& cfg) {
    auto ring = load_keyring(cfg);
    if (!ring) return Failure{ring.error()};
    auto key = load_receipt_key(cfg);
    if (!key) return Failure{key.error()};
    return Keys{std::move(*ring), std::move(*key)};
}

TokenConfig token_config(const Config& cfg) {
    TokenConfig t;
    t.policy.issuer = cfg.issuer;
    t.policy.audience = cfg.audience;
    t.policy.skew_seconds = cfg.clock_skew;
    t.policy.identity_claim = cfg.identity_claim;
    t.jwks_file = cfg.jwks_file;
    t.use_discovery = cfg.jwks_discovery;
    t.discovery_url = cfg.discovery_url;
    t.ca_file = cfg.jwks_ca_file;
    t.refresh_period = cfg.jwks_refresh;
    t.refresh_min_interval = cfg.jwks_refresh_min_interval;
    return t;
}

// Runs `task` on io (not yet serving) until it completes.
Expected<void> run_now(asio::io_context& io, asio::awaitable<Expected<void>> task) {
    std::optional<Expected<void>> result;
    asio::co_spawn(io, std::move(task), [&](const std::exception_ptr& e, const Expected<void>& r) {
        result = e ? Expected<void>(Failure{"the key load failed"}) : r;
    });
    while (!result && io.run_one()) {
    }
    io.restart();
    return result ? std::move(*result) : Expected<void>(Failure{"the key load did not finish"});
}

Expected<std::vector<UniqueFd>> open_all(const Config& cfg) {
    std::vector<UniqueFd> fds;
    for (const auto& l : cfg.listen) {
        auto spec = daemon::parse_listen(l);
        if (!spec) return Failure{"--listen: " + spec.error()};
        auto opened = daemon::open_listeners(*spec);
        if (!opened) return Failure{"--listen: " + opened.error()};
        for (auto& fd : *opened) fds.push_back(std::move(fd));
    }
    return fds;
}

// SIGHUP: each part reloaded on its own; a failure keeps the part in force.
void reload(const Config& cfg, Server& server, DepositService& service, DirectoryBackend& dir, TokenVerifier& tokens,
            const metrics::Common& common, asio::io_context& io) {
    daemon::notify_reloading("reloading");
    bool ok = true;
    auto fail = [&](const std::string& what) {
        ok = false;
        log::error("event=reload_failed detail=%s (the previous one stays in force)", escape_value(what, 512).c_str());
    };
    if (auto tls = server_tls_context(cfg)) server.set_tls(std::move(*tls));
    else fail(tls.error());
    Keys keys = service.keys();
    if (auto ring = load_keyring(cfg)) keys.keyring = std::move(*ring);
    else fail(ring.error());
    if (auto key = load_receipt_key(cfg)) keys.receipt_key = std::move(*key);
    else fail(key.error());
    service.set_keys(std::move(keys));
    if (auto d = dir.reload(); !d) fail("--directory: " + d.error());
    asio::co_spawn(io, tokens.reload(), [](const std::exception_ptr&, const Expected<void>& r) {
        if (!r)
            log::error("event=reload_failed detail=%s",
                       escape_value("identity provider keys: " + r.error(), 512).c_str());
    });
    (ok ? common.reload_ok : common.reload_failed).inc();
    log::info("event=reload result=%s", ok ? "ok" : "failed");
    daemon::notify_ready("serving");
}

int run(int argc, char** argv) {
    int code = 0;
    auto cfg = parse_config(argc, argv, code);
    if (!cfg) return code;
    daemon::Startup start("xproxy-depositd");
    if (!start.log_options(cfg->log_sink, cfg->log_level)) return 2;
    auto tls = server_tls_context(*cfg);
    if (!tls) return start.fail(tls.error());
    auto keys = load_keys(*cfg);
    if (!keys) return start.fail(keys.error());
    auto dir = DirectoryBackend::open(
        cfg->directory, cfg->ldap_config, [](LdapLogLevel level, const std::string& line) {
            log::write(static_cast<log::Level>(level), "event=ldap message=\"" + escape_value(line, 0) + "\"");
        });
    if (!dir) return start.fail("--directory: " + dir.error());
    if (auto m = metrics::check_endpoint_spec(cfg->metrics); !m) return start.fail(m.error());
    asio::io_context io(1);
    auto tokens = TokenVerifier::create(io, token_config(*cfg));
    if (!tokens) return start.fail(tokens.error());
    if (cfg->check_config) {
        auto checked = (*dir)->check();
        if (!checked) return start.fail("--directory: " + checked.error());
        if (auto warning = audience_warning(*cfg); !warning.empty())
            std::fprintf(stderr, "xproxy-depositd: warning: %s\n", warning.c_str());
        std::printf("xproxy-depositd: configuration ok (listeners: %zu, directory: %s, keys: %s)\n", cfg->listen.size(),
                    checked->c_str(), cfg->jwks_discovery ? "discovery" : cfg->jwks_file.c_str());
        return 0;
    }
    start.start_log();
    auto endpoint = metrics::start_endpoint(cfg->metrics);
    if (!endpoint) return start.fail(endpoint.error());
    (*dir)->start();
    // The identity provider's keys before privileges are dropped (a file may be root's).
    if (auto loaded = run_now(io, (*tokens)->start()); !loaded) {
        if (!cfg->jwks_discovery) return start.fail("--jwks-file: " + loaded.error());
        log::warning("event=keys_unavailable detail=%s (retried in the background)",
                     escape_value(loaded.error(), 512).c_str());
    }
    auto listeners = open_all(*cfg);
    if (!listeners) return start.fail(listeners.error());
    if (auto dropped = daemon::drop_privileges(cfg->user); !dropped) return start.fail(dropped.error());

    const auto common = metrics::register_common("xproxy-depositd", "xproxy_depositd");
    TokenVerifier& verifier = **tokens;
    metrics::registry().callback("xproxy_depositd_jwks_loads_total",
                                 "Identity-provider key set loads that gave a usable set.", metrics::Type::counter,
                                 [&verifier] { return static_cast<double>(verifier.key_loads()); });
    metrics::registry().callback("xproxy_depositd_jwks_load_failures_total",
                                 "Identity-provider key set loads that failed (the set in hand was kept).",
                                 metrics::Type::counter,
                                 [&verifier] { return static_cast<double>(verifier.key_load_failures()); });
    InjectorConfig ic;
    ic.mta = cfg->mta;
    ic.helo_name = cfg->helo_name;
    const SmtpInjector injector(ic);
    DepositService service(*cfg, verifier, injector, **dir, std::move(*keys));
    Server server(*cfg, std::move(*tls), service);
    std::vector<int> fds;
    for (const auto& fd : *listeners) fds.push_back(fd.get());
    const std::string status = daemon::listening_status(fds);
    daemon::ConnectionHandlers handlers;
    handlers.tcp = [&server](asio::ip::tcp::socket sock) { server.accept(std::move(sock)); };
    for (auto& fd : *listeners)
        daemon::serve_listener(io, fd.release(), daemon::AcceptOptions{nullptr, false}, handlers);
    std::signal(SIGPIPE, SIG_IGN);
    const int rc = daemon::run_until_stopped(
        io, 1, [&] { reload(*cfg, server, service, **dir, verifier, common, io); },
        [&] {
            log::info("event=start listeners=%zu mta=%s server_name=%s max_connections=%u rate_limit=%u", fds.size(),
                      cfg->mta.c_str(), escape_value(cfg->server_name, 255).c_str(), cfg->max_connections,
                      cfg->rate_limit);
            daemon::notify_ready(status);
        });
    verifier.stop();
    (*dir)->stop();
    endpoint->reset();
    return rc;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {  // the io_context could not be set up
        std::fprintf(stderr, "xproxy-depositd: %s\n", e.what());
        return 1;
    }
}
