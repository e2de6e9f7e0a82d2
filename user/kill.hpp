// The kill switch: ends every fault now, whatever state the agent is in.
#pragma once

#include <string>
#include <vector>

#include "paths.hpp"

namespace tardy {

struct KillReport {
    std::vector<std::string> done;      // what was changed, in order
    std::vector<std::string> problems;  // what could not be cleaned
    bool clean() const { return problems.empty(); }
};

// 1. disarm the pinned control map (effective on the next packet), 2. stop the agent
// (SIGTERM, SIGKILL after a grace), 3. undo the journal, 4. remove pins and run files.
KillReport pull_kill_switch(const Paths& p);

}  // namespace tardy
