// The agent: the only process that loads BPF objects and holds attachments. It serves the
// short-lived commands over a Unix socket, renews the kernel-side lease, and ends
// injections at their deadline.
#pragma once

#include <cstdint>

#include "paths.hpp"

namespace tardy {

struct AgentOptions {
    Paths paths;
    bool exit_when_idle = false;  // started by `inject`: leave with the last injection
    uint64_t rng_seed = 0;        // tests: reproducible loss decisions
};

int run_agent(const AgentOptions& o);  // the process exit code

// How long programs keep applying faults without a lease renewal (a hung agent).
constexpr uint64_t kLeaseNs = 3'000'000'000ULL;

}  // namespace tardy
