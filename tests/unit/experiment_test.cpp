// SPDX-License-Identifier: Apache-2.0
// model/experiment and model/hypothesis: experiment files parsed and refused with their line
// numbers, metrics read by name, bounds judged.
#include <gtest/gtest.h>

#include <string>

#include "model/experiment.hpp"
#include "model/hypothesis.hpp"

namespace tardy {
namespace {

// The issue's example, as written.
const char* kExample = R"(title: Checkout keeps working when the database refuses connections
description: Replays the 2026-03 outage (the DB's connection limit)
cohorts:
  experiment: {cgroup: shop.slice/checkout-canary.service}   # or pid: / container:
  control:    {cgroup: shop.slice/checkout-baseline.service}
window:                       # optional
  days: Mon-Fri
  hours: "10:00-16:00"
  timezone: Asia/Tokyo
  except: [2026-12-24, 2026-12-31]
steady_state:                 # the hypothesis; every entry must hold
  - metric: tcp.connect_failure_ratio     # a cohort metric measured by tardy
    max: 0.01                             # absolute bound for the experiment cohort
  - metric: tcp.connect_ms.p99
    max_vs_control: +20%                  # relative to the control cohort, same moment
  - probe: http                           # a probe run from inside each cohort
    url: http://10.0.0.5:8080/health
    every: 500ms
    timeout: 1s
    expect_status: 200
    min_success: 99%
  - probe: command
    run: [/usr/local/bin/check-orders, --quick]
    every: 5s
baseline: 30s                 # hypothesis checked before any fault; not met: nothing injected
method:                       # faults, in order; same names and values as `tardy inject` flags
  - fault: {fail: "connect=ECONNREFUSED:20%", peer: 10.0.0.9, port: 5432}
    for: 2m
  - fault: {delay: 100ms, jitter: 10ms}
    for: 2m
recovery: 30s                 # hypothesis checked after the faults end
)";

TEST(ExperimentFile, TheIssuesExampleParsesAsWritten) {
    auto x = parse_experiment(kExample, "ex.yaml");
    ASSERT_TRUE(x) << x.error().message;
    EXPECT_EQ(x->title, "Checkout keeps working when the database refuses connections");
    EXPECT_EQ(x->experiment.target.value, "shop.slice/checkout-canary.service");
    ASSERT_TRUE(x->control);
    EXPECT_EQ(x->control->target.value, "shop.slice/checkout-baseline.service");
    ASSERT_TRUE(x->window);
    EXPECT_EQ(x->window->timezone, "Asia/Tokyo");
    EXPECT_EQ(x->window->days, 0x1f);
    ASSERT_EQ(x->hypothesis.size(), 4u);
    EXPECT_EQ(*x->hypothesis[0].max, 0.01);
    EXPECT_EQ(x->hypothesis[0].line, 12);
    EXPECT_DOUBLE_EQ(x->hypothesis[1].max_vs_control->factor, 1.2);
    ASSERT_TRUE(x->hypothesis[2].probe);
    EXPECT_EQ(x->hypothesis[2].probe->url, "http://10.0.0.5:8080/health");
    EXPECT_EQ(x->hypothesis[2].probe->every_ns, 500'000'000u);
    EXPECT_DOUBLE_EQ(*x->hypothesis[2].min, 0.99);
    EXPECT_EQ(x->hypothesis[3].probe->run, (std::vector<std::string>{"/usr/local/bin/check-orders", "--quick"}));
    EXPECT_EQ(x->baseline_ns, 30'000'000'000u);
    EXPECT_EQ(x->recovery_ns, 30'000'000'000u);
    ASSERT_EQ(x->method.size(), 2u);
    EXPECT_EQ(x->method[0].for_ns, 120'000'000'000u);
    EXPECT_EQ(x->method[0].request.filter.port_lo, 5432);
    EXPECT_EQ(x->method[1].request.net.delay_ns, 100'000'000u);
    EXPECT_EQ(x->planned_ns(), 300'000'000'000u);
    EXPECT_EQ(x->hypothesis[1].text(), "tcp.connect_ms.p99 <= control +20%");
}

// Each bad file: the line the error names, and a word it must say.
struct BadCase {
    std::string text;
    int line;
    std::string says;
};

TEST(ExperimentFile, BadFilesAreOneLineWithTheirLineNumber) {
    const std::string head = "title: t\ncohorts:\n  experiment: {cgroup: a}\n";
    const std::string method = "method:\n  - fault: {loss: 5%}\n    for: 10s\n";
    std::vector<BadCase> cases = {
        {head + "colour: blue\n" + method, 4, "unknown key 'colour'"},
        {head + "baseline: 30\n" + method, 4, "baseline"},
        {head + "baseline: 30x\n" + method, 4, "baseline"},
        {"title: t\n" + method, 1, "missing cohorts"},
        {"title: t\ncohorts:\n  control: {cgroup: b}\n" + method, 3, "cohorts.experiment"},
        {"title: t\ncohorts:\n  experiment: {cgroup: a, pid: 4}\n" + method, 3, "exactly one"},
        {head, 1, "missing method"},
        {head + "method:\n  - fault: {loss: 500%}\n    for: 10s\n", 5, "--loss"},
        {head + "method:\n  - fault: {los: 5%}\n    for: 10s\n", 5, "unknown key 'los'"},
        {head + "method:\n  - fault: {loss: 5%}\n", 5, "for:"},
        {head + "method:\n  - fault: {loss: 5%}\n    for: soon\n", 6, "for"},
        {head + "steady_state:\n  - metric: tcp.nonsense\n    max: 1\n" + method, 5, "does not measure"},
        {head + "steady_state:\n  - metric: tcp.connects\n" + method, 5, "no bound"},
        {head + "steady_state:\n  - metric: tcp.connects\n    max_vs_control: +20%\n" + method, 5, "needs cohorts.control"},
        {head + "steady_state:\n  - metric: tcp.connects\n    max: lots\n" + method, 6, "not a number"},
        {head + "steady_state:\n  - probe: http\n" + method, 5, "url"},
        {head + "steady_state:\n  - probe: http\n    url: https://x/\n" + method, 6, "https"},
        {head + "steady_state:\n  - probe: ping\n" + method, 5, "want http or command"},
        {head + "window:\n  days: Mon-Fry\n" + method, 5, "window.days"},
        {head + "window:\n  timezone: Asia/Tokio\n" + method, 5, "window.timezone"},
        {"title: t\n  bad indent: [\n", 2, "not valid YAML"},
        {"", 1, "empty"},
        {"- a\n- b\n", 1, "is a map"},
    };
    for (const auto& c : cases) {
        auto x = parse_experiment(c.text, "f.yaml");
        ASSERT_FALSE(x) << c.text;
        const auto& m = x.error().message;
        EXPECT_TRUE(x.error().is_user()) << m;
        EXPECT_EQ(m.rfind("f.yaml:" + std::to_string(c.line) + ": ", 0), 0u) << m << "\n---\n" << c.text;
        EXPECT_NE(m.find(c.says), std::string::npos) << m;
        EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
}

TEST(ExperimentFile, GarbageNeverThrows) {
    std::string base = kExample;
    uint64_t seed = 12345;
    for (int round = 0; round < 2000; round++) {
        std::string t = base;
        for (int k = 0; k < 3; k++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t at = (seed >> 33) % t.size();
            const char junk[] = "{}[]:-,'\"\n #&*!|>%@`\t0x";
            t[at] = junk[(seed >> 20) % (sizeof junk - 1)];
        }
        (void)parse_experiment(t, "fuzz.yaml");  // a Result either way, never an exception
    }
}

TEST(Hypothesis, MetricsByName) {
    CohortMetrics m;
    m.connects = 100;
    m.established = 80;
    m.failed_refused = 20;
    m.retransmits = 30;
    for (uint64_t us : {1000, 2000, 3000, 100000}) m.connect_us.buckets[Histogram::bucket_of(us)]++;
    EXPECT_NEAR(metric_value("tcp.connect_failure_ratio", m, 10)->value, 0.2, 1e-9);
    EXPECT_EQ(metric_value("tcp.connect_failure_ratio", m, 10)->count, 100u);
    EXPECT_NEAR(metric_value("tcp.retransmits_per_s", m, 10)->value, 3.0, 1e-9);
    EXPECT_NEAR(metric_value("tcp.connect_ms.p50", m, 10)->value, 2.0, 0.05);
    EXPECT_NEAR(metric_value("tcp.connect_ms.p99", m, 10)->value, 100.0, 1.0);
    EXPECT_NEAR(metric_value("tcp.connect_ms.p99.9", m, 10)->value, 100.0, 1.0);
    EXPECT_EQ(metric_value("tcp.connect_ms.count", m, 10)->value, 4);
    EXPECT_TRUE(known_metric("tcp.failed_by.refused"));
    EXPECT_TRUE(known_metric("tardy.dropped_per_s"));
    for (const char* bad : {"tcp", "tcp.connect_ms", "tcp.connect_ms.p100", "tcp.connect_ms.p0", "tcp.connect_ms.px", "tcp.connect_ms.p1e1",
                            "tcp.connect_ms.p0x10", "tcp.connect_ms.p9.9.9",
                            "tcp.connect_failure_ratio_per_s", "tcp.connect_ms.p99_per_s", ""})
        EXPECT_FALSE(known_metric(bad)) << bad;
}

TEST(Hypothesis, BoundsAbsoluteAndRelative) {
    auto x = parse_experiment(kExample, "ex.yaml");
    ASSERT_TRUE(x);
    const auto& ratio = x->hypothesis[0];  // max 0.01, judged after 10 connects
    EXPECT_FALSE(judge(ratio, MetricValue{0.5, 3}, std::nullopt).judged) << "too few connects to judge";
    EXPECT_TRUE(judge(ratio, MetricValue{0.5, 3}, std::nullopt).ok);
    auto j = judge(ratio, MetricValue{0.2, 50}, std::nullopt);
    EXPECT_TRUE(j.judged);
    EXPECT_FALSE(j.ok);
    EXPECT_EQ(j.why, "0.2 > max 0.01");
    EXPECT_TRUE(judge(ratio, MetricValue{0.0, 50}, std::nullopt).ok);
    const auto& p99 = x->hypothesis[1];  // <= control +20%
    EXPECT_FALSE(judge(p99, MetricValue{50, 100}, std::nullopt).judged) << "no control reading: not judged";
    EXPECT_TRUE(judge(p99, MetricValue{11.9, 100}, MetricValue{10, 100}).ok);
    auto k = judge(p99, MetricValue{12.5, 100}, MetricValue{10, 100});
    EXPECT_FALSE(k.ok);
    EXPECT_NEAR(*k.limit, 12.0, 1e-9);
    EXPECT_NE(k.why.find("control 10 +20% = 12"), std::string::npos) << k.why;
}

TEST(Hypothesis, DistributionsForTheComparison) {
    CohortMetrics m;
    m.established = 7;
    m.failed_refused = 3;
    auto d = distribution("tcp.connect_failure_ratio", m);
    ASSERT_EQ(d.size(), 2u);
    EXPECT_EQ(d[0].value, 1.0);
    EXPECT_EQ(d[0].count, 3u);
    m.rtt_us.buckets[Histogram::bucket_of(5000)] = 9;
    auto r = distribution("tcp.rtt_ms.p90", m);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_NEAR(r[0].value, 5.0, 0.05);
    EXPECT_EQ(r[0].count, 9u);
    EXPECT_TRUE(distribution("tcp.retransmits_per_s", m).empty());
}

}  // namespace
}  // namespace tardy
