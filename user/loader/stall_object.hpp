// SPDX-License-Identifier: Apache-2.0
// The loaded stall object (bpf/stall.bpf.c) and the agent's side of a stall: the resumes.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "model/error.hpp"
#include "model/tardy_abi.hpp"
#include "model/syscalls.hpp"

struct tardy_stall;
struct bpf_link;
struct ring_buffer;

namespace tardy {

class StallObject {
public:
    // walk_always: `make bench` only, the ancestor walk on every call instead of the cache.
    static Result<std::unique_ptr<StallObject>> load(const std::string& pin_dir, uint64_t rng_seed = 0,
                                                     bool walk_always = false);
    ~StallObject();
    StallObject(const StallObject&) = delete;
    StallObject& operator=(const StallObject&) = delete;

    // The tracepoint programs cost every process a little: linked only while needed.
    Result<void> attach();
    void detach();

    // Each bumps the control map's generation: the programs' cgroup caches forget old answers.
    Result<void> put_rule(uint64_t cgid, const tardy_stall_rule& r);
    Result<void> delete_rule(uint64_t cgid);
    Result<tardy_stall_counters> counters(uint32_t slot) const;
    Result<void> reset_counters(uint32_t slot);

    // Ring buffer of stops: an fd to poll, and a call that hands each new event to on_stop.
    int events_fd() const;
    void consume(const std::function<void(const tardy_stall_event&)>& on_stop);
    // Resumes a stopped process (SIGCONT) and forgets it.
    void resume(uint32_t tgid);
    // Never stop this process (the agent, its watchdog), whatever the rules say.
    Result<void> exempt(uint32_t tgid);
    int stalled_fd() const;
    int control_fd() const;

private:
    StallObject() = default;
    struct tardy_stall* skel_ = nullptr;
    bpf_link* enter_ = nullptr;
    bpf_link* exit_ = nullptr;
    ring_buffer* rb_ = nullptr;
    std::function<void(const tardy_stall_event&)> on_stop_;
};

// Starts the watchdog: a small process that resumes every stopped process the agent does not
// resume in time (the agent is frozen, blocked or dead). It holds the stalled and control
// maps (so `tardy kill` can prove it is ours), leaves the agent's session and, when
// `root_procs` names a cgroup.procs file, the agent's cgroup: a kill of the agent's process
// group or cgroup (systemd, a container runtime) does not take it along. It ends once the
// agent is gone, no program can stop anyone any more (lease passed or disarmed) and nobody
// is left stopped.
Result<pid_t> start_watchdog(int control_fd, int stalled_fd, const std::string& root_procs);

// How late past its due time the watchdog resumes a process the agent should have resumed.
constexpr uint64_t kWatchdogGraceNs = 300'000'000ULL;


}  // namespace tardy
