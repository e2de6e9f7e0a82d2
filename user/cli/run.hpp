// SPDX-License-Identifier: Apache-2.0
// `tardy run FILE|DIR [--dry-run] [--report DIR] [--json]`: experiment files carried out
// (experiment/runner.hpp), one or a directory of them as a suite.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "sys/paths.hpp"

namespace tardy {

struct RunArgs {
    std::string path;
    std::string report_dir;
    bool dry_run = false, json = false, quiet = false;
};

// Adds the subcommand, its options and help with examples.
CLI::App* add_run_command(CLI::App& app, RunArgs& a);

// The exit code: experiment/runner.hpp's kRun* (a suite: the first experiment's that did not hold).
int cmd_run(const RunArgs& a, const Paths& p, const std::string& self_exe);

}  // namespace tardy
