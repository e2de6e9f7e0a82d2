// SPDX-License-Identifier: Apache-2.0
// The two maps tardy pins under its bpffs directory, opened by the processes that do not
// load them (the kill switch, the watchdog, every CLI command), and checked before use: a
// pin of the same name may be a foreign or older map, and a lookup into it with our struct
// would read or write past what it holds.
#pragma once

#include <cstdint>
#include <string>

#include "model/error.hpp"
#include "sys/fd.hpp"
#include "model/tardy_abi.hpp"

namespace tardy {

struct PinnedMap {
    Fd fd;
    uint32_t id = 0;  // the kernel's map id: the proof the kill switch looks for in /proc
};

// The control map (armed flag, lease); ENOENT when there is no pin.
Result<PinnedMap> open_control_map(const std::string& pin);
// The map of stopped processes (tgid -> due ns); ENOENT when there is no pin.
Result<PinnedMap> open_stalled_map(const std::string& pin);
// Whether an fd is a map with exactly this shape (type, key and value size).
Result<void> check_map(int fd, const std::string& what, uint32_t type, uint32_t key_size, uint32_t value_size);

Result<tardy_control> read_control(int map_fd);
Result<void> write_armed(int map_fd, uint32_t armed);

// Resumes (SIGCONT) and forgets the processes recorded in a stalled map whose due time is
// before `due_before_ns` (CLOCK_MONOTONIC), or all of them when it is UINT64_MAX. Returns
// how many.
int resume_recorded(int stalled_fd, uint64_t due_before_ns = UINT64_MAX);
int count_recorded(int stalled_fd);

// Every tardy process calls this first: a process recorded as stopped whose due time passed
// more than `grace_ns` ago has nobody resuming it (the agent is dead, frozen or killed with
// its watchdog), so it is resumed now. Returns how many.
int resume_overdue(const std::string& stalled_pin, uint64_t grace_ns = 1'000'000'000ULL);

uint64_t mono_now_ns();

}  // namespace tardy
