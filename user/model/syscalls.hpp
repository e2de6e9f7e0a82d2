// Syscall names and numbers of the build's architecture (from <sys/syscall.h>): the one
// place that knows them, for --stall and the agent's request checks.
#pragma once

#include <string>

namespace tardy {

// The number of a syscall --stall accepts; -1 when unknown.
long syscall_number(const std::string& name);
const char* syscall_name(long nr);

}  // namespace tardy
