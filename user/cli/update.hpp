// SPDX-License-Identifier: Apache-2.0
// `tardy update NAME [--loss P] [--delay D] [--jitter J] [--rate R] ... [--fail SPEC]... [--for D]`: a live
// injection's faults changed in place (agent/update.cpp), its counters kept.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "model/net_shape.hpp"
#include "sys/paths.hpp"

namespace tardy {

struct UpdateArgs {
    std::string name, loss, delay, jitter, for_dur;
    std::vector<std::string> fails;
    ShapeArgs shape;  // --distribution, --correlation, --loss-burst, --loss-gemodel, --duplicate, --reorder, --rate
};

// Adds the subcommand, its options and help with examples.
CLI::App* add_update_command(CLI::App& app, UpdateArgs& a);

int cmd_update(const UpdateArgs& a, const Paths& p);

}  // namespace tardy
