// SPDX-License-Identifier: Apache-2.0
// `tardy doctor`: what this kernel and host can do, probed, not guessed.
#pragma once

#include <string>
#include <vector>

namespace tardy {

struct Check {
    std::string name;
    bool ok = false;
    std::string detail;  // what was found, or why not and what to do
};

std::vector<Check> run_checks();
int run_doctor(bool as_json);

}  // namespace tardy
