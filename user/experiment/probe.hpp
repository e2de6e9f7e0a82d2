// SPDX-License-Identifier: Apache-2.0
// The probes of an experiment's hypothesis, run from inside a cohort: a child process that
// joins the cohort's cgroup and the network namespace of a process in it, so it sees what the
// cohort sees (its faults included), and runs the probe every `every`, reporting each result
// on a pipe. The child dies with the runner (PR_SET_PDEATHSIG, checked after it is set) and
// is killed and reaped by the destructor; a command probe's process group goes with it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/error.hpp"
#include "model/experiment.hpp"
#include "sys/fd.hpp"

namespace tardy {

// One attempt of a hypothesis probe (not lab/probe.hpp's ProbeResult, the demo's echo probe).
struct ProbeAttempt {
    uint64_t at_mono_ns = 0;  // when the attempt started (CLOCK_MONOTONIC)
    bool ok = false;
    double ms = 0;            // how long it took
    std::string detail;       // "200", "status 503", "exit 1", "timeout", "connect: Connection refused"
};

class Prober {
public:
    // Starts the prober for `spec` in the cgroup at `cgroup_path` (absolute, under the cgroup2
    // mount). The network namespace is that of the first process found in the cgroup or below
    // it (other than the prober); with none, the runner's own, and netns_note() says so.
    // Errors (cannot fork, cannot join the cgroup: e.g. a cgroup with controllers enabled for
    // its children, which the kernel refuses to put processes in) are returned before any
    // probe runs: the child reports its setup on the pipe first.
    // Call it before the runner starts any thread: the child goes on without exec (it uses
    // malloc and cpp-httplib), and the runner's forking thread is its PDEATHSIG parent.
    // A command must be an executable (or a program in PATH) and a URL well formed, or a
    // user error comes back before any fork.
    static Result<std::unique_ptr<Prober>> start(const ProbeSpec& spec, const std::string& cgroup_path);
    ~Prober();  // SIGKILL to the child (and its command's process group), then waitpid
    Prober(const Prober&) = delete;
    Prober& operator=(const Prober&) = delete;

    int fd() const { return pipe_.get(); }  // readable when results are waiting (non-blocking)
    // The results that arrived since the last call; never blocks.
    // The child blocks when the pipe is full (about a thousand results): drain regularly.
    std::vector<ProbeAttempt> drain();
    bool alive();  // the child has not exited
    const std::string& netns_note() const { return netns_note_; }
    pid_t pid() const { return pid_; }

private:
    Prober(pid_t pid, Fd pipe) : pid_(pid), pipe_(std::move(pipe)) {}
    pid_t pid_;
    Fd pipe_;
    std::string buf_;
    std::string netns_note_;
    // A shared page (MAP_SHARED, inherited by the child): the process group of the command
    // probe running now, 0 between commands; the destructor kills that group.
    int* cmd_pgid_ = nullptr;
    bool reaped_ = false;  // alive() saw the child exit and reaped it
};

}  // namespace tardy
