// SPDX-License-Identifier: Apache-2.0
// The kill switch: ends every fault now, whatever state the agent is in, and says "clean"
// only after checking it.
#pragma once

#include <string>
#include <vector>

#include "sys/paths.hpp"

namespace tardy {

struct KillReport {
    std::vector<std::string> done;      // what was changed, in order
    std::vector<std::string> problems;  // what could not be done or is still there
    bool clean() const { return problems.empty(); }
};

// 1. disarm the pinned control map (effective on the next packet or call);
// 2. take the run directory's lock, ending every process that holds it or the control map
//    (only those: that is the proof a process is this run directory's agent or watchdog),
//    so that no agent can start until the kill switch is done;
// 3. resume every stalled process; 4. undo the journal; 5. remove pins and run files;
// 6. verify: no holder left, no pin, no recorded stopped process.
// Every step that still can runs when an earlier one fails; nothing throws.
KillReport pull_kill_switch(const Paths& p);

}  // namespace tardy
