// Where tardy keeps its state: the run directory (agent.pid, agent.sock, journal, log) and
// the bpffs directory (the pinned control map). Both move with environment variables so
// tests and several users can run side by side.
#pragma once

#include <string>

#include "error.hpp"

namespace tardy {

struct Paths {
    std::string run_dir;    // $TARDY_RUN_DIR or /run/tardy
    std::string bpffs_dir;  // $TARDY_BPFFS or /sys/fs/bpf/tardy

    static Paths from_env();
    std::string pid_file() const { return run_dir + "/agent.pid"; }
    std::string socket() const { return run_dir + "/agent.sock"; }
    std::string lock_file() const { return run_dir + "/agent.lock"; }
    std::string journal() const { return run_dir + "/journal"; }
    std::string log() const { return run_dir + "/agent.log"; }
    std::string control_pin() const { return bpffs_dir + "/tardy_control"; }
    std::string stalled_pin() const { return bpffs_dir + "/tardy_stalled"; }
};

// Mounts bpffs on the parent of `dir` when it is not on one (as bpftool does), then
// creates `dir`.
Result<void> ensure_bpffs_dir(const std::string& dir);
Result<void> ensure_dir(const std::string& dir, int mode = 0700);
bool is_bpffs(const std::string& path);

}  // namespace tardy
