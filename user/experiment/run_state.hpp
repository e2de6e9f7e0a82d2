// SPDX-License-Identifier: Apache-2.0
// What a run of an experiment knows as it goes: its phases, the cohorts' readings, the probes'
// results, the hypothesis judged at each sample, breaches; and what it makes of them: the
// progress line, the dry run's plan, the journal (docs/experiments.md) with the statistical
// comparison of the cohorts. No I/O except the probers it holds.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiment/probe.hpp"
#include "model/cohort.hpp"
#include "model/experiment.hpp"
#include "model/hypothesis.hpp"
#include "model/wire.hpp"

namespace tardy {

// Both cohorts' cumulative metrics at one moment (CLOCK_MONOTONIC ns).
struct Snapshot {
    uint64_t t = 0;
    CohortMetrics exp, ctl;
};

struct Phase {
    std::string name, kind;  // "baseline", "step 1"...; kind "baseline", "method", "recovery"
    int step = -1;           // the method step, -1 for baseline and recovery
    uint64_t planned_ns = 0;
    uint64_t start = 0, end = 0;  // monotonic; 0 until it starts / ends
    bool started = false, completed = false;
    std::string fault, injection;
    nlohmann::json counters;  // the step injection's, last read
    uint64_t fault_end = 0;   // when the agent confirmed the step's fault stopped
    size_t first_snap = 0, last_snap = 0;
};

struct ProbeRun {
    int entry = 0;
    bool control = false;
    std::unique_ptr<Prober> prober;
    std::vector<ProbeAttempt> results;
};

class RunState {
public:
    explicit RunState(const Experiment& x);

    std::vector<Phase> phases;
    std::vector<ProbeRun> probes;
    std::string closes;  // when the window closes, for people ("" without a window)
    std::string window_shut;  // a dry run outside the window: why it is shut and when it opens

    void started();
    void set_cohorts(const std::string& experiment_rel, const std::string& control_rel);
    void begin_phase(size_t i, const Snapshot& s);
    void end_phase(size_t i, bool completed);
    void end_open_phases();  // a started phase without an end ends at the last reading
    void phase_fault_end(const std::string& injection, const nlohmann::json& counters);
    // Records the reading and judges every entry over its interval; one Judgement per entry.
    std::vector<Judgement> judge_now(size_t phase, const Snapshot& s);
    void breach(size_t phase, int id, const std::string& text);
    void drain_probes();
    void stop_probes();
    void finish(const std::string& status, int exit_code, const std::string& reason);

    nlohmann::json journal() const;
    std::string plan(const std::vector<wire::Inject>& steps) const;
    std::string progress_line(size_t phase, uint64_t left_ns, const std::vector<Judgement>& js) const;

private:
    // The reading at or before `t` but not before the phase's first; its index.
    size_t base_at(size_t phase, uint64_t t) const;
    std::optional<MetricValue> probe_value(int entry, bool control, uint64_t from, uint64_t to) const;
    CohortMetrics phase_diff(const Phase& p, bool control) const;
    nlohmann::json comparison() const;
    double t_s(uint64_t mono) const;

    const Experiment& x_;
    std::string exp_rel_, ctl_rel_;
    std::vector<Snapshot> snaps_;
    nlohmann::json samples_ = nlohmann::json::array();
    nlohmann::json breaches_ = nlohmann::json::array();
    uint64_t start_mono_ = 0, end_mono_ = 0;
    std::chrono::system_clock::time_point start_wall_, end_wall_;
    std::string status_, reason_;
    int exit_code_ = 0;
};

}  // namespace tardy
