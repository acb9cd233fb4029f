// daemon_metrics_test: the registry and the text exposition format (xproxy/daemon/
// metrics.hpp): HELP and TYPE lines per family, label values escaped, histogram buckets
// cumulative with le="+Inf", _sum and _count; counters shared across threads lose no
// increment; registering a family twice gives the same series.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <xproxy/daemon/metrics.hpp>

namespace {

using namespace xproxy::metrics;

bool contains(const std::string& text, const std::string& line) { return text.find(line) != std::string::npos; }

TEST(Metrics, CounterFamilyHasHelpTypeAndSortedSeries) {
    Registry r;
    auto& f = r.counter("xproxy_test_decisions_total", "Decisions by action.", {"policy", "action"});
    f.with({"default", "reject"}).inc(2);
    f.with({"default", "dunno"}).inc();
    std::string want =
        "# HELP xproxy_test_decisions_total Decisions by action.\n"
        "# TYPE xproxy_test_decisions_total counter\n"
        "xproxy_test_decisions_total{policy=\"default\",action=\"dunno\"} 1\n"
        "xproxy_test_decisions_total{policy=\"default\",action=\"reject\"} 2\n";
    EXPECT_EQ(r.render(), want);
}

TEST(Metrics, LabelValuesAndHelpAreEscaped) {
    Registry r;
    r.gauge("xproxy_test_gauge", "a \\ back\nslash", {"l"}).with({"q\"uote\\back\nline"}).set(-3);
    std::string out = r.render();
    EXPECT_TRUE(contains(out, "# HELP xproxy_test_gauge a \\\\ back\\nslash\n")) << out;
    EXPECT_TRUE(contains(out, "xproxy_test_gauge{l=\"q\\\"uote\\\\back\\nline\"} -3\n")) << out;
    EXPECT_EQ(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

TEST(Metrics, HistogramBucketsAreCumulativeWithInfSumAndCount) {
    Registry r;
    auto& h = r.histogram("xproxy_test_seconds", "Latency.", {"stage"}, Buckets{0.01, 0.1, 1}).with({"rcpt"});
    h.observe(std::chrono::milliseconds(5));     // <= 0.01
    h.observe(std::chrono::milliseconds(10));    // == 0.01: le is inclusive
    h.observe(std::chrono::milliseconds(50));    // <= 0.1
    h.observe(std::chrono::milliseconds(2000));  // only +Inf
    std::string want =
        "# HELP xproxy_test_seconds Latency.\n"
        "# TYPE xproxy_test_seconds histogram\n"
        "xproxy_test_seconds_bucket{stage=\"rcpt\",le=\"0.01\"} 2\n"
        "xproxy_test_seconds_bucket{stage=\"rcpt\",le=\"0.10000000000000001\"} 3\n"
        "xproxy_test_seconds_bucket{stage=\"rcpt\",le=\"1\"} 3\n"
        "xproxy_test_seconds_bucket{stage=\"rcpt\",le=\"+Inf\"} 4\n"
        "xproxy_test_seconds_sum{stage=\"rcpt\"} 2.0649999999999999\n"
        "xproxy_test_seconds_count{stage=\"rcpt\"} 4\n";
    EXPECT_EQ(r.render(), want);
}

TEST(Metrics, UnlabelledSeriesAndCallbacks) {
    Registry r;
    r.counter("xproxy_b_total", "B.").get().inc(7);
    r.callback("xproxy_a_total", "A.", Type::counter, [] { return 42.0; });
    std::string want =
        "# HELP xproxy_a_total A.\n# TYPE xproxy_a_total counter\nxproxy_a_total 42\n"
        "# HELP xproxy_b_total B.\n# TYPE xproxy_b_total counter\nxproxy_b_total 7\n";
    EXPECT_EQ(r.render(), want);
}

TEST(Metrics, RegisteringTwiceGivesTheSameSeries) {
    Registry r;
    r.counter("xproxy_x_total", "X.", {"k"}).with({"v"}).inc();
    r.counter("xproxy_x_total", "X.", {"k"}).with({"v"}).inc();
    EXPECT_EQ(r.counter("xproxy_x_total", "X.", {"k"}).with({"v"}).value(), 2u);
}

TEST(Metrics, ConcurrentIncrementsAreAllCounted) {
    Registry r;
    auto& c = r.counter("xproxy_c_total", "C.").get();
    auto& h = r.histogram("xproxy_h_seconds", "H.").get();
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 10000; ++i) {
                c.inc();
                h.observe(std::chrono::microseconds(100));
            }
        });
    std::string during = r.render();  // rendering while counting is safe
    for (auto& t : threads) t.join();
    EXPECT_EQ(c.value(), 40000u);
    EXPECT_EQ(h.count(), 40000u);
    EXPECT_TRUE(contains(r.render(), "xproxy_h_seconds_bucket{le=\"+Inf\"} 40000\n"));
    EXPECT_TRUE(contains(during, "# TYPE xproxy_c_total counter\n"));
}

TEST(Metrics, CounterGridCreatesEverySeriesAndCountsOutsideAsOther) {
    Registry r;
    CounterGrid g(r.counter("xproxy_g_total", "G.", {"policy", "action"}), {"p0", "p1"}, {"a0", "a1"});
    g.inc(1, 0, 3);
    g.inc(2, 0);  // no such row
    g.inc(0, 5);  // no such column
    std::string out = r.render();
    EXPECT_TRUE(contains(out, "xproxy_g_total{policy=\"p0\",action=\"a0\"} 0\n")) << out;
    EXPECT_TRUE(contains(out, "xproxy_g_total{policy=\"p1\",action=\"a0\"} 3\n")) << out;
    EXPECT_TRUE(contains(out, "xproxy_g_total{policy=\"p1\",action=\"a1\"} 0\n")) << out;
    EXPECT_TRUE(contains(out, "xproxy_g_total{policy=\"other\",action=\"other\"} 2\n")) << out;
    EXPECT_EQ(g.overflow(), 2u);
}

TEST(Metrics, CommonFamilies) {
    auto common = register_common("xproxy-test", "xproxy_test");
    common.reload_ok.inc();
    std::string out = registry().render();
    EXPECT_TRUE(contains(out, "xproxy_build_info{program=\"xproxy-test\",version=\"" XPROXY_TEST_VERSION "\"} 1\n"))
        << out;
    EXPECT_TRUE(contains(out, "xproxy_test_config_reloads_total{result=\"ok\"} 1\n")) << out;
    EXPECT_TRUE(contains(out, "xproxy_test_config_reloads_total{result=\"failed\"} 0\n")) << out;
    EXPECT_TRUE(contains(out, "# TYPE xproxy_log_dropped_lines_total counter\nxproxy_log_dropped_lines_total 0\n"))
        << out;
}

}  // namespace
