// metrics_endpoint.hpp: --metrics, the HTTP listener that serves the process's metrics
// registry (metrics.hpp) at GET /metrics, in Prometheus text format.
//
// Promises:
//  - Runs on a thread and an io_context of its own (http_listener_thread.hpp) with every
//    signal blocked, so it works the same in a daemon on Asio and in one on libmilter's
//    threads, a slow scraper never holds a mail session (nor the other way round), and
//    SIGTERM and SIGHUP still reach the daemon's own handling.
//  - Off unless asked for; the spec is a listen.hpp spec (inet:127.0.0.1:9150, unix:...,
//    not systemd). It has no access list of its own: bind it to loopback or a unix socket
//    (the metrics hold counts, never an address, a user or a domain).
//  - GET /metrics answers 200 with the exposition; another path 404, another method 405.
#pragma once

#include <memory>
#include <string_view>

#include <xproxy/base/result.hpp>
#include <xproxy/daemon/http_listener_thread.hpp>

namespace xproxy::metrics {

// --check-config's check of --metrics: empty (off) or a listener spec other than
// systemd; the failure names the option.
Expected<void> check_endpoint_spec(std::string_view spec);

// Opens the listener and starts serving; nullptr (and nothing started) for an empty
// spec. The failure names the option.
Expected<std::unique_ptr<http::ListenerThread>> start_endpoint(std::string_view spec);

// The answer to one request (public for tests).
http::Response answer(const http::Request& request);

}  // namespace xproxy::metrics
