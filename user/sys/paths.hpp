// SPDX-License-Identifier: Apache-2.0
// Where tardy keeps its state: the run directory (agent.pid, agent.sock, agent.lock, journal,
// log) and the bpffs directory (the pinned control and stalled maps). Both move with
// environment variables so tests and several users can run side by side.
#pragma once

#include <string>

#include "model/error.hpp"

namespace tardy {

struct Paths {
    std::string run_dir;    // $TARDY_RUN_DIR or /run/tardy
    std::string bpffs_dir;  // $TARDY_BPFFS or /sys/fs/bpf/tardy

    static Paths from_env();
    std::string pid_file() const { return run_dir + "/agent.pid"; }
    std::string socket() const { return run_dir + "/agent.sock"; }
    std::string lock_file() const { return run_dir + "/agent.lock"; }
    std::string kill_lock() const { return run_dir + "/kill.lock"; }  // one kill switch at a time
    std::string journal() const { return run_dir + "/journal"; }
    std::string log() const { return run_dir + "/agent.log"; }
    std::string ended() const { return run_dir + "/ended.json"; }  // injections that ended by themselves
    std::string control_pin() const { return bpffs_dir + "/tardy_control"; }
    std::string stalled_pin() const { return bpffs_dir + "/tardy_stalled"; }
};

// Where bpffs is mounted when nothing is: the only place tardy ever mounts it.
inline constexpr const char* kBpffsMount = "/sys/fs/bpf";

// Checks both directories before anything is started or created, so a bad environment is
// one line (a user error) instead of an agent that fails later: absolute, short enough for
// a Unix socket and for pins, a bpffs directory whose name bpffs accepts (no dot) on a
// bpffs (or directly under /sys/fs/bpf, which tardy mounts), a writable run directory, and
// no foreign file where tardy's socket or lock goes.
// `files`: also refuse foreign files (a symlink, a directory) where tardy's own go; the kill
// switch checks without it, since it removes such things itself.
Result<void> validate_paths(const Paths& p, bool files = true);
// The run directory's part of validate_paths().
Result<void> check_run_dir(const std::string& dir, bool files = true);

// Creates `dir` on bpffs. Mounts bpffs on /sys/fs/bpf when `dir` is directly below it and
// nothing is mounted there (as bpftool does); any other directory must already be on bpffs.
Result<void> ensure_bpffs_dir(const std::string& dir);
Result<void> ensure_dir(const std::string& dir, int mode = 0700);
bool is_bpffs(const std::string& path);

}  // namespace tardy
