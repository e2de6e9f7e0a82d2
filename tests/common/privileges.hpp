// SPDX-License-Identifier: Apache-2.0
// Privileged tests: without root they skip, except in CI (CI=true) where a test that cannot
// run is a failure, so a green CI always means the kernel path was exercised.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#define TARDY_REQUIRE_ROOT()                                                                  \
    do {                                                                                      \
        if (geteuid() != 0) {                                                                 \
            const char* ci = std::getenv("CI");                                               \
            if (ci && std::strcmp(ci, "true") == 0) FAIL() << "needs root, and CI=true";      \
            GTEST_SKIP() << "needs root (run `sudo make test`)";                              \
        }                                                                                     \
    } while (0)
