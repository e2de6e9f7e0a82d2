// SPDX-License-Identifier: Apache-2.0
// The steady-state hypothesis judged: a cohort metric's value over an interval (from the
// counters and histograms of model/cohort.hpp), an entry's bounds applied to the experiment
// and control cohorts' values, and the samples the final statistical comparison uses.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/cohort.hpp"
#include "model/compare.hpp"
#include "model/experiment.hpp"

namespace tardy {

// Metric names: a count ("tcp.connects", "tcp.failed_by.refused", "packets.out",
// "tardy.dropped"...), the same per second ("tcp.retransmits_per_s"), "tcp.connect_failure_ratio"
// (failed / (established + failed)), a latency quantile in ms ("tcp.connect_ms.p99",
// "tcp.rtt_ms.p50", any pNN or pNN.N) or mean ("tcp.connect_ms.mean").
bool known_metric(const std::string& metric);
const std::vector<std::string>& metric_examples();  // every count and form, for docs and errors
// Events a value needs before it is judged: latency samples for a quantile, connects for
// the failure ratio; 0 for counts (zero is a value).
uint64_t default_min_count(const std::string& metric);

struct MetricValue {
    double value = 0;
    uint64_t count = 0;  // the events behind it (see default_min_count)
};

// The metric over an interval of `seconds`; nullopt for a name known_metric() refuses.
std::optional<MetricValue> metric_value(const std::string& metric, const CohortMetrics& m, double seconds);

// Probe results over an interval: the success ratio and how many.
struct ProbeTally {
    uint64_t ok = 0, total = 0;
};

// One entry judged at one moment.
struct Judgement {
    std::optional<double> experiment, control;  // the values (nullopt: nothing measured)
    std::optional<double> limit;  // for plots: the first bound that applies (max, min, then vs the control)
    bool judged = false;          // enough events (min_count) on the experiment, and the control when needed
    bool ok = true;               // not judged counts as ok
    std::string why;              // when !ok: "0.23 > max 0.01", "14.2 > control 10.1 +20% = 12.1"
};
Judgement judge(const HypothesisEntry& e, std::optional<MetricValue> experiment, std::optional<MetricValue> control);

// The samples of a whole interval for the statistical comparison: a latency metric's
// histogram (bucket middles in ms with counts), the failure ratio's connects as 0/1 outcomes;
// empty for other metrics (the runner compares their per-second values instead).
std::vector<Weighted> distribution(const std::string& metric, const CohortMetrics& m);

}  // namespace tardy
