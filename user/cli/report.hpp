// SPDX-License-Identifier: Apache-2.0
// How a command reports a failure: one line on stderr, exit code 2 for the user's mistakes
// (bad input, a refused target) and 1 for everything else.
#pragma once

#include <cstdio>
#include <string>

#include "model/error.hpp"

namespace tardy {

constexpr int kExitUser = 2;

// One line whatever the message echoes back of the user's input.
inline std::string one_line(std::string s) {
    for (char& c : s)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    return s;
}

inline int report(const Error& e) {
    std::fprintf(stderr, "tardy: %s\n", one_line(e.message).c_str());
    return e.is_user() ? kExitUser : 1;
}

}  // namespace tardy
