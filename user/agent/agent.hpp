// SPDX-License-Identifier: Apache-2.0
// The agent: the only process that loads BPF objects and holds attachments. It serves the
// short-lived commands over a Unix socket, renews the kernel-side lease, and ends
// injections at their deadline.
#pragma once

#include <cstdint>
#include <string>

#include "sys/paths.hpp"

namespace tardy {

struct AgentOptions {
    Paths paths;
    bool exit_when_idle = false;  // started by `inject`: leave with the last injection
    uint64_t rng_seed = 0;        // tests: reproducible loss decisions
    int status_fd = -1;           // where to say "ready" or why the start failed (spawn_agent)
    std::string metrics;          // --metrics ADDR:PORT (or TARDY_METRICS): serve /metrics there
};

int run_agent(const AgentOptions& o);  // the process exit code

// How long programs keep applying faults without a lease renewal. On kernels without TCX a
// SIGKILLed agent leaves its clsact filters attached until `tardy kill` or the next agent
// removes them; the lease makes them inert within this time. The agent renews every 100 ms.
constexpr uint64_t kLeaseNs = 1'000'000'000ULL;

}  // namespace tardy
