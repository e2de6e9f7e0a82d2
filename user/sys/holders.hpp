// SPDX-License-Identifier: Apache-2.0
// Proof of who a process is, for the kill switch: a process is this run directory's agent
// (or its watchdog) only if it holds this run directory's lock file (by device and inode)
// or this bpffs directory's control map (by map id). Command lines and pid files prove
// nothing: they can name any process.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <set>

#include "sys/fd.hpp"

namespace tardy {

struct FileId {
    dev_t dev = 0;
    ino_t ino = 0;
    bool operator==(const FileId&) const = default;
};

struct Holdings {
    std::optional<FileId> lock;  // the lock file, when it exists
    uint32_t map_id = 0;         // the control map, 0 when there is none
};

// Every process (but the caller) that holds one of these open right now.
std::set<pid_t> holders(const Holdings& h);
bool holds(pid_t pid, const Holdings& h);

// pidfds: a signal through one can never reach a process that reused the pid.
Fd pidfd_of(pid_t pid);
bool pidfd_signal(int pidfd, int sig);
// Waits until the process has exited (true) or timeout_ms passed (false).
bool pidfd_wait_exit(int pidfd, int timeout_ms);

}  // namespace tardy
