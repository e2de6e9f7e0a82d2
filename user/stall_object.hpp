// The loaded stall object (bpf/stall.bpf.c) and the agent's side of a stall: the resumes.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "error.hpp"
#include "tardy_abi.hpp"

struct tardy_stall;
struct bpf_link;
struct ring_buffer;

namespace tardy {

class StallObject {
public:
    static Result<std::unique_ptr<StallObject>> load(const std::string& pin_dir, uint64_t rng_seed = 0);
    ~StallObject();
    StallObject(const StallObject&) = delete;
    StallObject& operator=(const StallObject&) = delete;

    // The tracepoint programs cost every process a little: linked only while needed.
    Result<void> attach();
    void detach();

    Result<void> put_rule(uint64_t cgid, const tardy_stall_rule& r);
    Result<void> delete_rule(uint64_t cgid);
    Result<tardy_stall_counters> counters(uint32_t slot) const;
    Result<void> reset_counters(uint32_t slot);

    // Ring buffer of stops: an fd to poll, and a call that hands each new event to on_stop.
    int events_fd() const;
    void consume(const std::function<void(const tardy_stall_event&)>& on_stop);
    // Resumes a stopped process (SIGCONT) and forgets it.
    void resume(uint32_t tgid);

private:
    StallObject() = default;
    struct tardy_stall* skel_ = nullptr;
    bpf_link* enter_ = nullptr;
    bpf_link* exit_ = nullptr;
    ring_buffer* rb_ = nullptr;
    std::function<void(const tardy_stall_event&)> on_stop_;
};

// Resumes every process recorded in the pinned map of stopped processes and empties it.
// Used by the watchdog when the agent dies and by `tardy kill`. Returns how many.
int resume_all_recorded(const std::string& stalled_pin);

// Starts the watchdog: a small process that waits for the agent to end (by any means) and
// then resumes whatever the agent left stopped.
Result<pid_t> start_watchdog(const std::string& stalled_pin);

// x86_64 syscall numbers of the names --stall accepts; -1 when unknown.
long syscall_number(const std::string& name);
const char* syscall_name(long nr);

}  // namespace tardy
