// SPDX-License-Identifier: Apache-2.0
// "Within N s" in a test: poll the condition until it holds or the deadline passes, instead
// of sleeping N s and looking once. A pass costs only as long as the system took; a failure
// costs the whole deadline, which is then the bound the test states.
#pragma once

#include <time.h>

#include <functional>

namespace tardy::test {

// True as soon as pred() holds; false if it still does not after timeout_ms. pred() is
// called at least once, and once more at the deadline.
inline bool eventually(const std::function<bool()>& pred, int timeout_ms, int step_ms = 10) {
    auto now_ms = [] {
        timespec ts{};
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
    };
    const double deadline = now_ms() + timeout_ms;
    for (;;) {
        if (pred()) return true;
        if (now_ms() >= deadline) return false;
        timespec ts{step_ms / 1000, (step_ms % 1000) * 1'000'000L};
        nanosleep(&ts, nullptr);
    }
}

}  // namespace tardy::test
