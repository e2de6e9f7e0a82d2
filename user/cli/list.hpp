// SPDX-License-Identifier: Apache-2.0
// `tardy list`: the agent's injections, and those that ended by themselves lately.
#pragma once

#include "sys/paths.hpp"

namespace tardy {

int cmd_list(bool as_json, const Paths& p);

}  // namespace tardy
