// SPDX-License-Identifier: Apache-2.0
// `tardy run`: one experiment file carried out (docs/experiments.md). Baseline, each method
// step, recovery; the hypothesis checked every half second from the cohorts' kernel metrics
// (an observation of both cohorts in the agent) and the probes; a breach rolls the fault
// back at once. Every injection it makes is bound to this process (wire::Inject::bound): the
// agent ends it when the runner dies, and it carries a --for no longer than its step.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "model/experiment.hpp"
#include "sys/paths.hpp"

namespace tardy {

// Exit codes of `tardy run`.
constexpr int kRunHeld = 0;
constexpr int kRunDeviated = 1;
constexpr int kRunRefused = 2;  // invalid file, outside the window, target missing, kernel cannot
constexpr int kRunBaselineNotMet = 3;
constexpr int kRunAborted = 4;  // the window closed, a signal, the agent or observation ended

struct RunOptions {
    Paths paths;
    std::string self_exe;    // to start an agent
    bool dry_run = false;    // validate and print the plan; inject nothing, start no agent
    bool progress_tty = false;  // a live line on stderr (else plain lines)
    bool quiet = false;      // no progress at all
    uint64_t sample_ns = 500'000'000;  // how often the hypothesis is checked
};

struct RunOutcome {
    int exit_code = kRunRefused;
    std::string status;     // "held", "deviated", "baseline_not_met", "aborted", "refused"
    std::string reason;     // one line
    nlohmann::json journal; // docs/experiments.md; null for a dry run
    bool signalled = false; // SIGINT/SIGTERM/SIGHUP came: a suite stops after this file
};

// Carries out `x`. Blocks SIGINT, SIGTERM and SIGHUP while it runs (they abort the run: the
// faults are rolled back and the status is "aborted"), and restores the mask after. Never
// throws. A dry run prints the plan on stdout.
RunOutcome run_experiment(const Experiment& x, const RunOptions& o);

}  // namespace tardy
