// SPDX-License-Identifier: Apache-2.0
// `tardy list`: the agent's injections, and those that ended by themselves lately.
#pragma once

#include <string>
#include <vector>

#include "model/wire.hpp"
#include "sys/paths.hpp"

namespace tardy {

int cmd_list(bool as_json, const Paths& p);

// The table `list` prints: one line per injection, the cgroup column cut to its width from
// the left ("...service/api.scope"); the full path is in `list --json`.
std::string list_table(const std::vector<wire::InjectionInfo>& injections);
std::string fit_left(const std::string& s, size_t width);

}  // namespace tardy
