// SPDX-License-Identifier: Apache-2.0
// Syscall names and numbers of the build's architecture (from <sys/syscall.h>): the one
// place that knows them, for --stall and the agent's request checks.
#pragma once

#include <string>
#include <vector>

#include "model/error.hpp"

namespace tardy {

// The number of a syscall of this architecture; -1 when unknown.
long syscall_number(const std::string& name);
const char* syscall_name(long nr);

// What `--stall NAME` stalls: every syscall a libc uses for NAME on this architecture (glibc
// on x86_64 calls newfstatat for stat, lstat and fstat, openat for open, clock_nanosleep for
// nanosleep), and whether each takes the fd it acts on as its first argument (so --on and
// --path can judge that fd's file).
struct StallSyscalls {
    std::string name;       // as the user wrote it, or its canonical name for an alias
    std::vector<long> nrs;  // all below TARDY_STALL_NR_MAX
    bool fd_first = false;
};
// A user error naming the names that would work when NAME is unknown or would never fire.
Result<StallSyscalls> stall_syscalls(const std::string& name);
// Every name --stall accepts, comma separated (for help and errors).
std::string stall_names();

}  // namespace tardy
