// SPDX-License-Identifier: Apache-2.0
// The agent's log: one timestamped line on stderr (agent.log when started by inject).
#pragma once

#include <cstdint>
#include <string>

namespace tardy {

void log(const std::string& msg);
uint64_t mono_ns();

}  // namespace tardy
