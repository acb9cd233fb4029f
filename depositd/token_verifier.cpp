// token_verifier.cpp: see token_verifier.hpp.
//
// One Core (shared, so that a coroutine suspended in a fetch keeps it alive after the
// verifier is gone) holds the key set in hand as a shared_ptr to an immutable Jwks: a
// load replaces the pointer, a verify() in progress keeps the set it started with. A load
// is a Flight: one coroutine that loads and then wakes every waiter (a timer that never
// expires, cancelled when the flight lands), so any number of verify() and reload()
// calls share one fetch.
#include "token_verifier.hpp"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <vector>

#include <xproxy/base/escape.hpp>
#include <xproxy/base/file_loader.hpp>
#include <xproxy/daemon/https_client.hpp>
#include <xproxy/daemon/log.hpp>

#include "jwks_source.hpp"

namespace xproxy::depositd {

namespace asio = boost::asio;
using asio::use_awaitable;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::chrono::seconds kFirstRetry{1};
constexpr std::size_t kMaxDetail = 512;
// A CA bundle is read once to check it is there; OpenSSL reads it for each fetch.
constexpr FileRules kCaFileRules{std::size_t{16} << 20, 0, true, false};

// Messages of this layer and of jose quote untrusted bytes escaped already; this keeps a
// line that would still hold a control or 8-bit byte (or is very long) safe all the same.
std::string log_safe(std::string_view text) {
    bool printable = text.size() <= kMaxDetail &&
                     std::all_of(text.begin(), text.end(), [](char c) { return c >= 0x20 && c <= 0x7e && c != '"'; });
    return printable ? std::string(text) : escape_value(text, kMaxDetail);
}

struct Flight {
    explicit Flight(const asio::any_io_executor& ex) : done(ex, Clock::time_point::max()) {}
    asio::steady_timer done;
    bool finished = false;
    Expected<void> result;
};

class Core : public std::enable_shared_from_this<Core> {
public:
    Core(asio::io_context& io, TokenConfig config, std::string discovery_url)
        : io_(io), config_(std::move(config)), discovery_url_(std::move(discovery_url)), timer_(io) {
        source_ = log_safe(config_.use_discovery ? discovery_url_ : config_.jwks_file);
    }

    asio::awaitable<Expected<void>> start() {
        auto self = shared_from_this();
        if (started_) co_return Expected<void>{};
        started_ = true;
        auto loaded = co_await refresh();
        if (!config_.use_discovery) {
            if (!loaded) co_return Failure{"JWK set file: " + loaded.error()};
            co_return Expected<void>{};
        }
        if (!loaded)
            log::warning(
                "event=jwks_unavailable source=\"%s\" detail=\"tokens are answered unavailable until a key "
                "set is fetched; retrying in the background\"",
                source_.c_str());
        asio::co_spawn(io_, refresh_loop(self, loaded.has_value()), asio::detached);
        co_return Expected<void>{};
    }

    asio::awaitable<TokenOutcome> verify(std::string token, std::int64_t now) {
        auto self = shared_from_this();
        TokenOutcome out;
        auto keys = keys_;
        if (!keys) {
            out.unavailable = true;
            out.detail = "no key set loaded yet from " + source_;
            co_return out;
        }
        jose::Refusal why = jose::Refusal::malformed;
        auto checked = jose::validate_jwt(token, *keys, config_.policy, now, &why);
        if (!checked && why == jose::Refusal::unknown_kid) {
            // The one refusal a newer key set may cure: join the load in flight, or start
            // one unless the last one for an unknown kid is too recent.
            auto since = last_forced_ ? Clock::now() - *last_forced_ : Clock::duration::max();
            if (flight_ || since >= config_.refresh_min_interval) {
                if (!flight_) last_forced_ = Clock::now();
                (void)co_await refresh();
                if (keys_ != keys) {
                    keys = keys_;
                    checked = jose::validate_jwt(token, *keys, config_.policy, now, &why);
                }
            } else {
                auto wait = std::chrono::duration_cast<std::chrono::seconds>(config_.refresh_min_interval - since);
                out.refusal = why;
                out.detail = log_safe(checked.error() + " (keys not refreshed again for " +
                                      std::to_string(wait.count() + 1) + " s)");
                co_return out;
            }
        }
        if (checked) {
            out.detail = "kid " + escape_value(checked->kid, 64) + " alg " + std::string(jose::alg_name(checked->alg));
            out.identity = std::move(*checked);
        } else {
            out.refusal = why;
            out.detail = log_safe(checked.error());
        }
        co_return out;
    }

    asio::awaitable<Expected<void>> reload() {
        auto self = shared_from_this();
        if (flight_) (void)co_await refresh();  // one begun before the signal may not see the change
        auto loaded = co_await refresh();
        if (!loaded) {
            std::size_t kept = keys_ ? keys_->keys().size() : 0;
            co_return Failure{loaded.error() + " (keeping the " + std::to_string(kept) + " keys in hand)"};
        }
        co_return Expected<void>{};
    }

    void stop() noexcept {
        stopped_ = true;
        try {
            timer_.cancel();
        } catch (...) {  // a timer that cannot be cancelled has nothing to stop
        }
    }

    std::uint64_t loads() const { return loads_; }
    std::uint64_t failures() const { return failures_; }

private:
    // The load in flight, or a new one; returns its result.
    asio::awaitable<Expected<void>> refresh() {
        auto self = shared_from_this();
        if (!flight_) {
            flight_ = std::make_shared<Flight>(io_.get_executor());
            asio::co_spawn(io_, run_flight(self, flight_), asio::detached);
        }
        auto flight = flight_;
        boost::system::error_code ec;
        if (!flight->finished) co_await flight->done.async_wait(asio::redirect_error(use_awaitable, ec));
        co_return flight->result;
    }

    asio::awaitable<Expected<jose::Jwks>> load_once() {
        if (!config_.use_discovery) {
            auto keys = load_jwks_file(config_.jwks_file);
            co_return keys;
        }
        DiscoverySettings settings;
        settings.discovery_url = discovery_url_;
        settings.issuer = config_.policy.issuer;
        settings.ca_file = config_.ca_file;
        settings.timeout = config_.fetch_timeout;
        co_return co_await fetch_jwks(io_.get_executor(), std::move(settings));
    }

    static asio::awaitable<void> run_flight(std::shared_ptr<Core> self, std::shared_ptr<Flight> flight) {
        auto loaded = co_await self->load_once();
        if (loaded) {
            self->install(std::move(*loaded));
        } else {
            ++self->failures_;
            std::string error = log_safe(loaded.error());
            if (self->keys_)
                log::warning("event=jwks_load_failed source=\"%s\" error=\"%s\" kept_keys=%zu", self->source_.c_str(),
                             error.c_str(), self->keys_->keys().size());
            else
                log::warning("event=jwks_load_failed source=\"%s\" error=\"%s\" kept_keys=0", self->source_.c_str(),
                             error.c_str());
            flight->result = Failure{loaded.error()};
        }
        flight->finished = true;
        if (self->flight_ == flight) self->flight_.reset();
        flight->done.cancel();
    }

    void install(jose::Jwks keys) {
        ++loads_;
        std::string kids;
        for (const auto& k : keys.keys()) {
            if (!kids.empty()) kids += ',';
            kids += k.kid.empty() ? std::string("(none)") : k.kid;
        }
        log::info("event=jwks_loaded source=\"%s\" keys=%zu skipped=%zu kids=\"%s\"", source_.c_str(),
                  keys.keys().size(), keys.skipped().size(), escape_value(kids, 256).c_str());
        // The skipped keys once per change of the list, not at every periodic refresh.
        if (keys.skipped() != skipped_) {
            for (const auto& why : keys.skipped())
                log::warning("event=jwks_key_skipped source=\"%s\" detail=\"%s\"", source_.c_str(),
                             log_safe(why).c_str());
            skipped_ = keys.skipped();
        }
        keys_ = std::make_shared<const jose::Jwks>(std::move(keys));
    }

    // Discovery only: a refresh every refresh_period; after a failure, retries after 1 s,
    // then twice as long each time up to refresh_min_interval (at most refresh_period).
    static asio::awaitable<void> refresh_loop(std::shared_ptr<Core> self, bool ok) {
        const auto cap = std::max<std::chrono::seconds>(
            kFirstRetry, std::min(self->config_.refresh_min_interval, self->config_.refresh_period));
        std::chrono::seconds retry = kFirstRetry;
        std::chrono::seconds wait = self->config_.refresh_period;
        if (!ok) {
            wait = retry;
            retry = std::min(retry * 2, cap);
        }
        while (!self->stopped_) {
            self->timer_.expires_after(wait);
            boost::system::error_code ec;
            co_await self->timer_.async_wait(asio::redirect_error(use_awaitable, ec));
            if (self->stopped_) break;
            auto loaded = co_await self->refresh();
            if (loaded) {
                retry = kFirstRetry;
                wait = self->config_.refresh_period;
            } else {
                wait = retry;
                retry = std::min(retry * 2, cap);
                log::info("event=jwks_retry source=\"%s\" in_seconds=%lld", self->source_.c_str(),
                          static_cast<long long>(wait.count()));
            }
        }
    }

    asio::io_context& io_;
    TokenConfig config_;
    std::string discovery_url_;
    std::string source_;  // for log lines
    asio::steady_timer timer_;
    std::shared_ptr<const jose::Jwks> keys_;
    std::vector<std::string> skipped_;
    std::shared_ptr<Flight> flight_;
    std::optional<Clock::time_point> last_forced_;
    bool started_ = false;
    bool stopped_ = false;
    std::uint64_t loads_ = 0;
    std::uint64_t failures_ = 0;
};

class Verifier final : public TokenVerifier {
public:
    explicit Verifier(std::shared_ptr<Core> core) : core_(std::move(core)) {}
    ~Verifier() override { core_->stop(); }
    Verifier(const Verifier&) = delete;
    Verifier& operator=(const Verifier&) = delete;

    asio::awaitable<Expected<void>> start() override { return core_->start(); }
    asio::awaitable<TokenOutcome> verify(std::string token, std::int64_t now) override {
        return core_->verify(std::move(token), now);
    }
    asio::awaitable<Expected<void>> reload() override { return core_->reload(); }
    void stop() override { core_->stop(); }
    std::uint64_t key_loads() const override { return core_->loads(); }
    std::uint64_t key_load_failures() const override { return core_->failures(); }

private:
    std::shared_ptr<Core> core_;
};

}  // namespace

Expected<std::unique_ptr<TokenVerifier>> TokenVerifier::create(asio::io_context& io, TokenConfig config) {
    if (config.policy.issuer.empty()) return Failure{"--issuer is required"};
    if (config.policy.audience.empty()) return Failure{"--audience is required"};
    if (config.policy.identity_claim.empty()) return Failure{"--identity-claim must not be empty"};
    if (config.policy.skew_seconds < 0) return Failure{"--clock-skew must not be negative"};
    if (config.use_discovery == !config.jwks_file.empty())
        return Failure{"exactly one of --jwks-file and --jwks-discovery is required"};
    if (config.refresh_period < std::chrono::seconds{1}) return Failure{"--jwks-refresh must be at least 1 second"};
    if (config.refresh_min_interval < std::chrono::seconds{1})
        return Failure{"--jwks-refresh-min-interval must be at least 1 second"};
    if (config.refresh_min_interval > config.refresh_period)
        return Failure{"--jwks-refresh-min-interval must not exceed --jwks-refresh"};
    if (config.fetch_timeout < std::chrono::seconds{1}) return Failure{"the fetch timeout must be at least 1 second"};

    std::string discovery_url;
    if (config.use_discovery) {
        if (config.discovery_url.empty()) {
            auto url = default_discovery_url(config.policy.issuer);
            if (!url) return Failure{"--jwks-discovery: " + url.error()};
            discovery_url = std::move(*url);
        } else {
            discovery_url = config.discovery_url;
        }
        auto parsed = http::parse_https_url(discovery_url);
        if (!parsed) return Failure{"--discovery-url: " + parsed.error()};
        if (!config.ca_file.empty()) {
            auto ca = load_text_file(config.ca_file, kCaFileRules);
            if (!ca) return Failure{"--jwks-ca-file: " + ca.error()};
        }
    } else {
        if (!config.discovery_url.empty()) return Failure{"--discovery-url needs --jwks-discovery"};
        auto text = load_text_file(config.jwks_file, kJwksFileRules);
        if (!text) return Failure{"--jwks-file: " + text.error()};
    }
    auto core = std::make_shared<Core>(io, std::move(config), std::move(discovery_url));
    return std::unique_ptr<TokenVerifier>(std::make_unique<Verifier>(std::move(core)));
}

}  // namespace xproxy::depositd
