// SPDX-License-Identifier: Apache-2.0
// An experiment file (`tardy run FILE`, docs/experiments.md): its cohorts, time window,
// steady-state hypothesis, baseline, method (fault steps, with the same names and values as
// `tardy inject`'s flags) and recovery, parsed from YAML (yaml-cpp) and checked before
// anything runs. Every error is one line that starts with "FILE:LINE: ".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/error.hpp"
#include "model/spec.hpp"
#include "model/window.hpp"

namespace tardy {

// A cohort as the file names it: exactly one of cgroup, pid, container, pod.
struct CohortTarget {
    TargetRef target;
    int line = 0;
    std::string text() const;  // "cgroup shop.slice/a.service", "pid 4242"
};

// A probe run from inside each cohort (its cgroup and network namespace).
struct ProbeSpec {
    std::string kind;               // "http" or "command"
    std::string url;                // http: "http://HOST[:PORT][/PATH]" (no https)
    std::vector<std::string> run;   // command: argv, run[0] an absolute path or a name in PATH
    uint64_t every_ns = 1'000'000'000;
    uint64_t timeout_ns = 1'000'000'000;  // a result later than this is a failure
    int expect_status = 200;        // http
};

// One entry of the steady-state hypothesis. A metric entry bounds a cohort metric (a key of
// `tardy stats --json`'s cohort, e.g. "tcp.connect_ms.p99", or a count with "_per_s");
// a probe entry bounds the share of successful probes.
struct HypothesisEntry {
    int id = 0;  // its index
    int line = 0;
    std::string metric;                   // empty for a probe
    std::optional<ProbeSpec> probe;
    std::optional<double> max, min;       // bounds of the experiment cohort's value
    // Bounds relative to the control cohort over the same interval: the experiment's value
    // at most (max_vs_control) or at least (min_vs_control) control * factor + offset.
    // "+20%": factor 1.2; "-10%": factor 0.9; "+5" (the metric's unit): offset 5.
    struct Relative {
        double factor = 1, offset = 0;
        std::string text;  // as written
    };
    std::optional<Relative> max_vs_control, min_vs_control;
    uint64_t over_ns = 10'000'000'000ULL;  // the value is over the last `over` of the phase
    uint64_t min_count = 0;  // events (connects, latency samples, probe results) before it is judged
    std::string text() const;  // "tcp.connect_ms.p99 <= control +20%"
    std::string unit() const;  // "ms", "/s", "ratio" (probes), ""
};

// One method step: a fault, as `tardy inject` flags, for a time.
struct MethodStep {
    int line = 0;
    InjectArgs args;           // only the fault and filter fields are set
    InjectRequest request;     // args checked by build_inject_request
    uint64_t for_ns = 0;
    std::string text;          // describe(request), for people
};

struct Experiment {
    std::string file;  // as given
    std::string title, description;
    CohortTarget experiment;
    std::optional<CohortTarget> control;
    std::optional<Window> window;
    std::vector<HypothesisEntry> hypothesis;
    uint64_t baseline_ns = 0, recovery_ns = 0;
    std::vector<MethodStep> method;
    uint64_t planned_ns() const;  // baseline + every step + recovery
};

// The file's text (the caller reads it) to an Experiment. Refuses, with "FILE:LINE: " and
// the fix: YAML that does not parse, an unknown key (naming the keys allowed there), a
// missing title, cohort or method, a cohort with none or two of cgroup/pid/container/pod,
// a bad duration, percentage, bound or fault value (build_inject_request's own message), a
// metric tardy does not measure, a relative bound without a control cohort, a probe without
// its url/run. Never throws.
Result<Experiment> parse_experiment(const std::string& text, const std::string& file);

}  // namespace tardy
