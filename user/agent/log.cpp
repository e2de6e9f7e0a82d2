// SPDX-License-Identifier: Apache-2.0
#include "agent/log.hpp"

#include "loader/pinned.hpp"

#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <ctime>

namespace tardy {

void log(const std::string& msg) {
    char when[32];
    std::time_t t = std::time(nullptr);
    std::strftime(when, sizeof when, "%F %T", std::localtime(&t));
    std::fprintf(stderr, "%s tardy-agent[%d]: %s\n", when, getpid(), msg.c_str());
    std::fflush(stderr);
}

uint64_t mono_ns() { return mono_now_ns(); }

}  // namespace tardy
