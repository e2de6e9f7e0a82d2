// SPDX-License-Identifier: Apache-2.0
// Running other programs: `ip` for sandboxes, `tardy` itself for tests and the demo.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "model/error.hpp"

namespace tardy {

struct CmdResult {
    int status = -1;  // exit code, or 128+signal
    std::string out, err;
};

// Runs argv[0] (looked up in PATH) to completion, capturing stdout and stderr.
Result<CmdResult> run_cmd(const std::vector<std::string>& argv);

// Starts argv in the background with stdout on a pipe; returns the pid and the pipe's fd.
Result<pid_t> spawn_cmd(const std::vector<std::string>& argv, int* stdout_fd);

// SIGTERM, then SIGKILL after grace_ms; reaps it.
void stop_process(pid_t pid, int grace_ms = 1000);

}  // namespace tardy
