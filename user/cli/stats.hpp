// SPDX-License-Identifier: Apache-2.0
// `tardy stats` and `tardy observe`: the cohorts of an injection (experiment and control) or
// of an observation, side by side, as a table, JSON, or a live view.
#pragma once

#include <deque>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "sys/paths.hpp"

namespace tardy {

struct StatsArgs {
    std::string name;
    bool json = false, watch = false;
};

struct ObserveArgs {
    std::vector<std::string> cgroups, pids, containers;
    std::string for_dur, name;
    bool json = false;
};

// Adds `tardy observe`, its options and help with examples.
CLI::App* add_observe_command(CLI::App& app, ObserveArgs& oa);

int cmd_stats(const StatsArgs& a, const Paths& p);
int cmd_observe(const ObserveArgs& a, const Paths& p, const std::string& self_exe);

// The table of one report (model/cohort.hpp's JSON); with history (earlier reports, oldest
// first, one a second), a line per cohort of the last minute's connects and failures a second.
std::string stats_table(const nlohmann::json& report, const std::deque<nlohmann::json>& history = {});

}  // namespace tardy
