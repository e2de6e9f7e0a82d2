// SPDX-License-Identifier: Apache-2.0
// Cohort metrics in user space: the JSON shape of `stats`/`observe`, the difference of two
// cohorts, intervals by subtraction, the table, and what the agent accepts for cohorts.
#include <gtest/gtest.h>

#include "cli/stats.hpp"
#include "model/cohort.hpp"
#include "model/request.hpp"
#include "model/spec.hpp"
#include "test_util.hpp"

namespace tardy {
namespace {

using json = nlohmann::json;
using test::IsUserError;

Cohort make(const std::string& role, uint64_t connects, uint64_t refused, std::vector<uint64_t> connect_us) {
    Cohort c{role, "/shop.slice/" + role, 7, {}};
    c.m.connects = connects;
    c.m.established = connects - refused;
    c.m.failed_refused = refused;
    for (auto us : connect_us) c.m.connect_us.buckets[Histogram::bucket_of(us)]++;
    return c;
}

TEST(CohortJson, HasTheIssuesShapeAndTheDifference) {
    CohortReport r{"slow", 12.3456, {make("experiment", 100, 20, {50'000, 51'000, 52'000}), make("control", 100, 0, {1000})}};
    json j = to_json(r);
    EXPECT_EQ(j["name"], "slow");
    EXPECT_DOUBLE_EQ(j["seconds"].get<double>(), 12.346);
    ASSERT_EQ(j["cohorts"].size(), 2u);
    const json& e = j["cohorts"][0];
    EXPECT_EQ(e["role"], "experiment");
    EXPECT_EQ(e["cgroup"], "/shop.slice/experiment");
    for (auto k : {"connects", "established", "failed", "retransmits", "resets", "connect_ms", "rtt_ms"})
        EXPECT_TRUE(e["tcp"].contains(k)) << k;
    for (auto k : {"p50", "p90", "p99", "count"}) EXPECT_TRUE(e["tcp"]["connect_ms"].contains(k)) << k;
    EXPECT_EQ(e["tcp"]["failed"], 20u);
    EXPECT_EQ(e["tcp"]["failed_by"]["refused"], 20u);
    EXPECT_DOUBLE_EQ(e["tcp"]["connect_failure_ratio"].get<double>(), 0.2);
    EXPECT_EQ(e["tcp"]["connect_ms"]["count"], 3u);
    EXPECT_NEAR(e["tcp"]["connect_ms"]["p50"].get<double>(), 51.0, 51.0 * 0.008);
    EXPECT_NEAR(e["tcp"]["connect_ms"]["p99"].get<double>(), 52.0, 52.0 * 0.008);
    EXPECT_EQ(j["difference"]["tcp"]["failed"], 20);
    EXPECT_NEAR(j["difference"]["tcp"]["connect_ms"]["p50"].get<double>(), 50.0, 0.5);
    // An observation has no roles to compare.
    CohortReport o{"obs", 1, {make("observed", 1, 0, {}), make("observed", 1, 0, {})}};
    EXPECT_FALSE(to_json(o).contains("difference"));
    // No samples: zeros, not NaN.
    EXPECT_EQ(to_json(o)["cohorts"][0]["tcp"]["connect_ms"]["p99"], 0.0);
}

TEST(CohortMetrics, AnIntervalIsTheReadingMinusTheBaseline) {
    Cohort later = make("experiment", 30, 5, {100, 100, 200}), earlier = make("experiment", 10, 5, {100});
    later.m.subtract(earlier.m);
    EXPECT_EQ(later.m.connects, 20u);
    EXPECT_EQ(later.m.failed_refused, 0u);
    EXPECT_EQ(later.m.connect_us.count(), 2u);
    // A counter that went down (a cgroup removed meanwhile) clamps at zero.
    earlier.m.retransmits = 9;
    later.m.subtract(earlier.m);
    EXPECT_EQ(later.m.retransmits, 0u);
}

TEST(StatsTable, ShowsBothCohortsAndTheLastMinute) {
    CohortReport r{"slow", 3, {make("experiment", 100, 20, {50'000}), make("control", 100, 0, {1000})}};
    r.cohorts[0].cgroup = "/a/very/long/cgroup/path/of/the/canary.service";
    json j = to_json(r);
    std::string t = stats_table(j);
    EXPECT_NE(t.find("experiment"), std::string::npos) << t;
    EXPECT_NE(t.find("/a/very/long/cgroup/path/of/the/canary.service  /shop.slice/control"), std::string::npos) << t;
    EXPECT_NE(t.find("difference"), std::string::npos) << t;
    std::deque<json> history;
    for (int i = 0; i < 5; i++) {
        json h = j;
        h["cohorts"][0]["tcp"]["connects"] = 10 * i;
        history.push_back(h);
    }
    t = stats_table(j, history);
    EXPECT_NE(t.find("last 4 s"), std::string::npos) << t;
    EXPECT_NE(t.find("█"), std::string::npos) << t;
}

TEST(CohortRequests, ControlOptionsAreCheckedBeforeAnythingRuns) {
    InjectArgs a;
    a.cgroup = "shop";
    a.loss = "5%";
    a.control = "base";
    auto r = build_inject_request(a);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_TRUE(r->control);
    EXPECT_EQ(r->control->value, "base");
    a.control_pid = "42";
    EXPECT_TRUE(IsUserError(build_inject_request(a).error(), {"one control cohort"}));
    a.control.clear();
    a.control_pid = "4x2";
    EXPECT_TRUE(IsUserError(build_inject_request(a).error(), {"--control-pid", "not a process id"}));
}

TEST(CohortRequests, TheAgentAcceptsCohortsAndObservationsOnlyWellFormed) {
    json cg = {{"path", "/sys/fs/cgroup/a"}, {"rel", "/a"}, {"id", 7}};
    json base = {{"op", "inject"}, {"v", 7}, {"cgroup", cg}, {"net", {{"loss_ppm", 1000}}},
                 {"netns", {{{"ino", 1}, {"path", "/proc/1/ns/net"}}}}, {"for_ns", 1000000000}, {"sock", json::object()}};
    json j = base;
    j["cohorts"] = {{{"role", "control"}, {"cgroup", cg}}};
    EXPECT_TRUE(validate_request(j)) << validate_request(j).error().message;
    j["cohorts"].push_back({{"role", "control"}, {"cgroup", cg}});
    EXPECT_TRUE(IsUserError(validate_request(j).error(), {"one control"}));
    j["cohorts"] = {{{"role", "boss"}, {"cgroup", cg}}};
    EXPECT_TRUE(IsUserError(validate_request(j).error(), {"cohorts[0].role"}));
    j["cohorts"] = {{{"role", "control"}, {"cgroup", {{"path", "rel/x"}, {"rel", "x"}, {"id", 1}}}}};
    EXPECT_TRUE(IsUserError(validate_request(j).error(), {"cohorts[0].cgroup.path"}));
    // An observation: no fault, observed cohorts; a fault with it is refused.
    json o = {{"op", "inject"}, {"v", 7}, {"cgroup", cg}, {"observe", true}, {"for_ns", 1000000000},
              {"net", json::object()}, {"sock", json::object()}, {"cohorts", {{{"role", "observed"}, {"cgroup", cg}}}}};
    EXPECT_TRUE(validate_request(o)) << validate_request(o).error().message;
    o["stalls"] = {{{"name", "write"}, {"delay_ns", 1000000}, {"ppm", 1000000}}};
    EXPECT_TRUE(IsUserError(validate_request(o).error(), {"observe", "no fault"}));
    o.erase("stalls");
    o["net"] = json::object();
    o["observe"] = "yes";
    EXPECT_TRUE(IsUserError(validate_request(o).error(), {"observe", "true or false"}));
    EXPECT_TRUE(validate_request({{"op", "stats"}, {"name", "slow"}}));
    EXPECT_TRUE(IsUserError(validate_request({{"op", "stats"}}).error(), {"name"}));
    EXPECT_TRUE(IsUserError(validate_request({{"op", "stats"}, {"name", "a/b"}}).error(), {"name"}));
}

}  // namespace
}  // namespace tardy
