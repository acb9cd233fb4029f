// metrics_endpoint.cpp: --metrics: the request handler and its listener thread.
// Promises: what metrics_endpoint.hpp says.
#include <xproxy/daemon/metrics_endpoint.hpp>

#include <pthread.h>
#include <signal.h>

#include <xproxy/daemon/listen.hpp>
#include <xproxy/daemon/metrics.hpp>

namespace xproxy::metrics {

namespace bhttp = boost::beast::http;

http::Response answer(const http::Request& req) {
    if (req.method() != bhttp::verb::get) {
        auto res = http::text_response(http::Status::method_not_allowed, "only GET\n");
        res.set(bhttp::field::allow, "GET");
        return res;
    }
    if (req.target() != "/metrics")
        return http::text_response(http::Status::not_found, "the metrics are at /metrics\n");
    return http::text_response(http::Status::ok, registry().render(), content_type);
}

Expected<void> check_endpoint_spec(std::string_view spec) {
    if (spec.empty()) return {};
    auto parsed = daemon::parse_listen(spec);
    if (!parsed) return Failure{"--metrics: " + parsed.error()};
    if (parsed->kind == daemon::ListenSpec::Kind::systemd)
        return Failure{"--metrics: invalid listener '" + std::string(spec) +
                       "': systemd sockets are the daemon's main listeners"};
    return {};
}

Expected<std::unique_ptr<http::ListenerThread>> start_endpoint(std::string_view spec) {
    if (spec.empty()) return std::unique_ptr<http::ListenerThread>();
    if (auto ok = check_endpoint_spec(spec); !ok) return Failure{ok.error()};
    // The thread inherits this mask: every signal blocked, so it never takes one meant for
    // the daemon (libmilter's sigwait() thread, Asio's signal_set).
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    auto t = http::ListenerThread::open(spec, http::Limits{},
                                        [](const http::Request& r, std::string_view) { return answer(r); });
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (!t) return Failure{"--metrics: " + t.error()};
    return std::move(*t);
}

}  // namespace xproxy::metrics
