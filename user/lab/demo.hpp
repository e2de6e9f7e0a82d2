// SPDX-License-Identifier: Apache-2.0
// `tardy demo`: the main job on a sandbox it builds and removes itself.
#pragma once

#include <string>

namespace tardy {

struct DemoOptions {
    bool json = false;
    int phase_s = 3;
};

int run_demo(const DemoOptions& o, const std::string& self_exe);

}  // namespace tardy
