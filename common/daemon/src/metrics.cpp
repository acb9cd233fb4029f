// metrics.cpp: the registry, the series and the text exposition writer (format 0.0.4).
// Promises: what metrics.hpp says; render() never holds a lock while a series is
// updated (updates are lock-free), and its output parses for Prometheus whatever the
// label values are.
#include <xproxy/daemon/metrics.hpp>

#include <cmath>
#include <cstdio>

#include <xproxy/base/invariant.hpp>
#include <xproxy/daemon/log.hpp>

namespace xproxy::metrics {

const Buckets& latency_buckets() {
    static const Buckets b{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
    return b;
}

Histogram::Histogram(const Buckets& bounds)
    : bounds_(bounds), counts_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds.size() + 1)) {
    for (std::size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(std::chrono::nanoseconds d) {
    auto ns = d.count() < 0 ? std::uint64_t{0} : static_cast<std::uint64_t>(d.count());
    double s = static_cast<double>(ns) / 1e9;
    std::size_t i = 0;
    while (i < bounds_.size() && s > bounds_[i]) ++i;
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(ns, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
}

void Histogram::observe_seconds(double s) {
    if (!(s >= 0)) s = 0;  // also NaN
    observe(std::chrono::nanoseconds(static_cast<std::int64_t>(std::min(s, 1e9) * 1e9)));
}

std::vector<std::uint64_t> Histogram::cumulative() const {
    std::vector<std::uint64_t> out(bounds_.size() + 1);
    std::uint64_t acc = 0;
    for (std::size_t i = 0; i <= bounds_.size(); ++i) {
        acc += counts_[i].load(std::memory_order_relaxed);
        out[i] = acc;
    }
    return out;
}

double Histogram::sum_seconds() const { return static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9; }

namespace {

template <class Series>
std::unique_ptr<Series> make_series(const Buckets& b) {
    if constexpr (std::is_same_v<Series, Histogram>) {
        return std::make_unique<Histogram>(b);
    } else {
        (void)b;
        return std::make_unique<Series>();
    }
}

}  // namespace

template <class Series>
Series& Family<Series>::with(const std::vector<std::string>& values) {
    XPROXY_INVARIANT(values.size() == labels_.size());
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = series_[values];
    if (!slot) slot = make_series<Series>(buckets_);
    return *slot;
}

template <class Series>
Series& Family<Series>::with(std::initializer_list<std::string_view> values) {
    std::vector<std::string> v;
    v.reserve(values.size());
    for (auto x : values) v.emplace_back(x);
    return with(v);
}

template <class Series>
void Family<Series>::each(const std::function<void(const std::vector<std::string>&, const Series&)>& fn) const {
    std::vector<std::pair<const std::vector<std::string>*, const Series*>> snapshot;
    {
        std::lock_guard<std::mutex> lock(mu_);
        for (const auto& [k, v] : series_) snapshot.emplace_back(&k, v.get());  // nodes are never erased
    }
    for (const auto& [k, v] : snapshot) fn(*k, *v);
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

Registry::Entry& Registry::entry(std::string name, std::string help, Type type, std::vector<std::string> labels) {
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, fresh] = entries_.try_emplace(std::move(name));
    Entry& e = it->second;
    if (fresh) {
        e.help = std::move(help);
        e.type = type;
        e.labels = std::move(labels);
    } else {
        XPROXY_INVARIANT(e.type == type && e.labels == labels);
    }
    return e;
}

Family<Counter>& Registry::counter(std::string name, std::string help, std::vector<std::string> labels) {
    Entry& e = entry(std::move(name), std::move(help), Type::counter, labels);
    std::lock_guard<std::mutex> lock(mu_);
    XPROXY_INVARIANT(!e.read);
    if (!e.counters) e.counters = std::make_unique<Family<Counter>>(std::move(labels), Buckets{});
    return *e.counters;
}

Family<Gauge>& Registry::gauge(std::string name, std::string help, std::vector<std::string> labels) {
    Entry& e = entry(std::move(name), std::move(help), Type::gauge, labels);
    std::lock_guard<std::mutex> lock(mu_);
    XPROXY_INVARIANT(!e.read);
    if (!e.gauges) e.gauges = std::make_unique<Family<Gauge>>(std::move(labels), Buckets{});
    return *e.gauges;
}

Family<Histogram>& Registry::histogram(std::string name, std::string help, std::vector<std::string> labels,
                                       const Buckets& buckets) {
    Entry& e = entry(std::move(name), std::move(help), Type::histogram, labels);
    std::lock_guard<std::mutex> lock(mu_);
    if (!e.histograms) e.histograms = std::make_unique<Family<Histogram>>(std::move(labels), buckets);
    return *e.histograms;
}

void Registry::callback(std::string name, std::string help, Type type, std::function<double()> read) {
    XPROXY_INVARIANT(type != Type::histogram);
    Entry& e = entry(std::move(name), std::move(help), type, {});
    std::lock_guard<std::mutex> lock(mu_);
    XPROXY_INVARIANT(!e.counters && !e.gauges);
    e.read = std::move(read);
}

std::string escape_label_value(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

namespace {

// HELP text: \ and newline escaped.
std::string escape_help(std::string_view v) {
    std::string out;
    for (char c : v) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

std::string number(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

// {a="x",b="y"} plus an optional extra pair (le); empty without labels.
std::string label_set(const std::vector<std::string>& names, const std::vector<std::string>& values,
                      std::string_view extra_name = {}, std::string_view extra_value = {}) {
    if (names.empty() && extra_name.empty()) return {};
    std::string out = "{";
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (i) out += ',';
        out += names[i];
        out += "=\"";
        out += escape_label_value(values[i]);
        out += '"';
    }
    if (!extra_name.empty()) {
        if (!names.empty()) out += ',';
        out += extra_name;
        out += "=\"";
        out += extra_value;
        out += '"';
    }
    out += '}';
    return out;
}

const char* type_name(Type t) {
    switch (t) {
        case Type::counter: return "counter";
        case Type::gauge: return "gauge";
        case Type::histogram: return "histogram";
    }
    XPROXY_UNREACHABLE();
}

}  // namespace

std::string Registry::render() const {
    std::lock_guard<std::mutex> lock(mu_);  // registration only; updates never take it
    std::string out;
    for (const auto& entry : entries_) {
        const std::string& name = entry.first;  // not a structured binding: lambdas capture it
        const Entry& e = entry.second;
        out += "# HELP " + name + ' ' + escape_help(e.help) + '\n';
        out += "# TYPE " + name + ' ' + type_name(e.type) + '\n';
        if (e.read) {
            out += name + ' ' + number(e.read()) + '\n';
        } else if (e.counters) {
            e.counters->each([&](const auto& values, const Counter& c) {
                out += name + label_set(e.labels, values) + ' ' + std::to_string(c.value()) + '\n';
            });
        } else if (e.gauges) {
            e.gauges->each([&](const auto& values, const Gauge& g) {
                out += name + label_set(e.labels, values) + ' ' + std::to_string(g.value()) + '\n';
            });
        } else if (e.histograms) {
            e.histograms->each([&](const auto& values, const Histogram& h) {
                auto cum = h.cumulative();
                const auto& b = h.bounds();
                for (std::size_t i = 0; i < b.size(); ++i)
                    out += name + "_bucket" + label_set(e.labels, values, "le", number(b[i])) + ' ' +
                           std::to_string(cum[i]) + '\n';
                // _count is read after the buckets: a concurrent observe() may make it larger
                // than +Inf for a moment; +Inf is written as the bucket total so they agree.
                out += name + "_bucket" + label_set(e.labels, values, "le", "+Inf") + ' ' + std::to_string(cum.back()) +
                       '\n';
                out += name + "_sum" + label_set(e.labels, values) + ' ' + number(h.sum_seconds()) + '\n';
                out += name + "_count" + label_set(e.labels, values) + ' ' + std::to_string(cum.back()) + '\n';
            });
        }
    }
    return out;
}

Registry& registry() {
    static Registry r;
    return r;
}

CounterGrid::CounterGrid(Family<Counter>& family, const std::vector<std::string>& rows,
                         const std::vector<std::string>& cols)
    : cols_(cols.size()), overflow_(&family.with({"other", "other"})) {
    XPROXY_INVARIANT(family.labels().size() == 2);
    for (const auto& r : rows)
        for (const auto& c : cols) cells_.push_back(&family.with({r, c}));
}

void CounterGrid::inc(std::size_t row, std::size_t col, std::uint64_t n) const {
    if (col < cols_ && row * cols_ + col < cells_.size()) {
        cells_[row * cols_ + col]->inc(n);
    } else {
        overflow_->inc(n);
    }
}

ListenerMetrics listener_metrics(std::string_view prefix, std::string_view listener) {
    auto& r = registry();
    std::string p(prefix);
    return ListenerMetrics{
        r.counter(p + "_connections_total", "Connections accepted (after the peer check), by listener.", {"listener"})
            .with({listener}),
        r.gauge(p + "_active_sessions", "Sessions open now, by listener.", {"listener"}).with({listener})};
}

Common register_common(std::string_view program, std::string_view prefix) {
    const std::string_view version = XPROXY_VERSION;
    auto& r = registry();
    r.gauge("xproxy_build_info", "Always 1; the labels name the program and its version.", {"program", "version"})
        .with({program, version})
        .set(1);
    r.callback("xproxy_log_dropped_lines_total", "Log lines dropped because the log queue was full.", Type::counter,
               [] { return static_cast<double>(log::dropped_total()); });
    auto& reloads = r.counter(std::string(prefix) + "_config_reloads_total",
                              "Configuration reloads (SIGHUP or a changed file) by result.", {"result"});
    return Common{reloads.with({"ok"}), reloads.with({"failed"})};
}

}  // namespace xproxy::metrics
