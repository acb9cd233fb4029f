// metrics.hpp: the daemons' Prometheus metrics. One process-wide registry of counter,
// gauge and histogram families; render() writes them in the Prometheus text exposition
// format 0.0.4, the one format every daemon serves on --metrics.
//
// Promises:
//  - Counting is cheap and lock-free: a series (one label combination) is an atomic
//    updated with relaxed ordering. Take a reference to a series once (at start-up, or
//    once per request for labels known only then) and update that; references stay
//    valid for the life of the process, since series are never removed.
//  - Counters only go up; nothing resets them but a restart (a reload keeps them).
//  - Label values are the caller's choice of a small fixed set (a listener, a policy
//    name from the configuration, an outcome): never a user, an address or a domain.
//    They are escaped on output (\\, \", \n), so no value can break the format.
//  - Histograms have fixed buckets in seconds; _bucket is cumulative and ends at
//    le="+Inf", followed by _sum and _count.
//  - A family registered twice under one name is the same family (a second daemon part
//    asking for it gets the first); a different type or label set is a broken
//    invariant.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace xproxy::metrics {

enum class Type { counter, gauge, histogram };

class Counter {
public:
    void inc(std::uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
    std::uint64_t value() const { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> v_{0};
};

class Gauge {
public:
    void inc(std::int64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
    void dec(std::int64_t n = 1) { v_.fetch_sub(n, std::memory_order_relaxed); }
    void set(std::int64_t n) { v_.store(n, std::memory_order_relaxed); }
    std::int64_t value() const { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::int64_t> v_{0};
};

// Upper bounds in seconds, ascending; +Inf is implicit.
using Buckets = std::vector<double>;
// 0.5 ms .. 30 s: a policy decision, a relayed reply, a whole relayed transaction.
const Buckets& latency_buckets();

class Histogram {
public:
    explicit Histogram(const Buckets& bounds);
    void observe(std::chrono::nanoseconds d);
    void observe_seconds(double s);
    // Cumulative counts per bound, then +Inf; the sum in seconds.
    std::vector<std::uint64_t> cumulative() const;
    double sum_seconds() const;
    std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }
    const Buckets& bounds() const { return bounds_; }

private:
    Buckets bounds_;
    std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // bounds_.size() + 1
    std::atomic<std::uint64_t> sum_ns_{0};
    std::atomic<std::uint64_t> count_{0};
};

// Measures from construction to observe() (or destruction, if not observed before).
class Timer {
public:
    explicit Timer(Histogram& h) : h_(&h), start_(std::chrono::steady_clock::now()) {}
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;
    ~Timer() { observe(); }
    void observe() {
        if (h_) h_->observe(std::chrono::steady_clock::now() - start_);
        h_ = nullptr;
    }

private:
    Histogram* h_;
    std::chrono::steady_clock::time_point start_;
};

// A metric name and its series, one per combination of label values.
template <class Series>
class Family {
public:
    Family(std::vector<std::string> labels, Buckets buckets)
        : labels_(std::move(labels)), buckets_(std::move(buckets)) {}
    // The series for these label values (as many as the family has labels, in order).
    Series& with(std::initializer_list<std::string_view> values);
    Series& with(const std::vector<std::string>& values);
    // Without labels.
    Series& get() { return with(std::vector<std::string>{}); }
    const std::vector<std::string>& labels() const { return labels_; }
    // Each series with its label values, in label order (sorted), for render().
    void each(const std::function<void(const std::vector<std::string>&, const Series&)>& fn) const;

private:
    std::vector<std::string> labels_;
    Buckets buckets_;
    mutable std::mutex mu_;
    std::map<std::vector<std::string>, std::unique_ptr<Series>> series_;
};

class Registry {
public:
    Family<Counter>& counter(std::string name, std::string help, std::vector<std::string> labels = {});
    Family<Gauge>& gauge(std::string name, std::string help, std::vector<std::string> labels = {});
    Family<Histogram>& histogram(std::string name, std::string help, std::vector<std::string> labels = {},
                                 const Buckets& buckets = latency_buckets());
    // A value read at render() time (a queue length, a count kept elsewhere), no labels.
    void callback(std::string name, std::string help, Type type, std::function<double()> read);

    // The text exposition format 0.0.4, families sorted by name.
    std::string render() const;

private:
    struct Entry {
        std::string help;
        Type type = Type::counter;
        std::vector<std::string> labels;
        std::unique_ptr<Family<Counter>> counters;
        std::unique_ptr<Family<Gauge>> gauges;
        std::unique_ptr<Family<Histogram>> histograms;
        std::function<double()> read;
    };
    Entry& entry(std::string name, std::string help, Type type, std::vector<std::string> labels);
    mutable std::mutex mu_;
    std::map<std::string, Entry> entries_;
};

// A counter for each pair of values of two labels, all created up front (a dashboard
// sees 0, not "no data") and indexed by position, so counting takes no lock: for two
// small enumerations, e.g. policy x action.
class CounterGrid {
public:
    CounterGrid(Family<Counter>& family, const std::vector<std::string>& rows, const std::vector<std::string>& cols);
    // Adds n to the cell; a position outside the grid (an enumeration grew and the
    // daemon's list of its values did not) is counted in the overflow series instead.
    void inc(std::size_t row, std::size_t col, std::uint64_t n = 1) const;

    // Positions outside the grid.
    std::uint64_t overflow() const { return overflow_->value(); }

private:
    std::size_t cols_;
    std::vector<Counter*> cells_;
    Counter* overflow_;  // the series {row="other", col="other"}
};

// The label values of an enumeration: to_string() (found by ADL) of each value from the
// first to `last`, in enum order, for a CounterGrid indexed by the enum's value.
template <class E>
std::vector<std::string> enum_names(E last) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i <= static_cast<std::size_t>(last); ++i) out.emplace_back(to_string(static_cast<E>(i)));
    return out;
}

// PREFIX_connections_total{listener} and PREFIX_active_sessions{listener} of one kind of
// listener ("policy", "milter", "smtp", "submission", ...), registered on first use.
struct ListenerMetrics {
    Counter& connections;
    Gauge& active;
};
ListenerMetrics listener_metrics(std::string_view prefix, std::string_view listener);

// One session of a listener, counted from construction to destruction.
class SessionCount {
public:
    explicit SessionCount(const ListenerMetrics& m) : active_(m.active) {
        m.connections.inc();
        active_.inc();
    }
    ~SessionCount() { active_.dec(); }
    SessionCount(const SessionCount&) = delete;
    SessionCount& operator=(const SessionCount&) = delete;

private:
    Gauge& active_;
};

// The process's registry.
Registry& registry();

// The content type of render()'s output.
inline constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

// Label value escaping of the exposition format: \ -> \\, " -> \", newline -> \n.
std::string escape_label_value(std::string_view v);

// xproxy_build_info{program,version} 1 (the version of this build),
// xproxy_log_dropped_lines_total and PREFIX_config_reloads_total{result}: registered in
// one call by each daemon.
struct Common {
    Counter& reload_ok;
    Counter& reload_failed;
};
Common register_common(std::string_view program, std::string_view prefix);

}  // namespace xproxy::metrics
