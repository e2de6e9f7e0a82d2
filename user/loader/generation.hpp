// SPDX-License-Identifier: Apache-2.0
// The control map's generation tags every entry of the programs' cgroup caches
// (bpf/lib/ancestor.bpf.h): a loader that writes or deletes a rule bumps it, so no process
// goes on being matched by the cache against a rule that changed.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include "model/tardy_abi.hpp"

namespace tardy {

// The map is BPF_F_MMAPABLE (bpf/lib/control.bpf.h, one definition for every object): an atomic add in place, so a concurrent
// `tardy kill` writing `armed` or the agent renewing the lease is never overwritten.
inline void bump_generation(int control_fd) {
    long page = sysconf(_SC_PAGESIZE);
    void* m = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_SHARED, control_fd, 0);
    if (m == MAP_FAILED) return;
    __atomic_add_fetch(&static_cast<tardy_control*>(m)->generation, 1, __ATOMIC_SEQ_CST);
    munmap(m, page);
}

}  // namespace tardy
