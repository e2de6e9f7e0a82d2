// SPDX-License-Identifier: Apache-2.0
// Targets: cgroup v2 directories, found by path, id, PID or container id.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "model/error.hpp"
#include "model/spec.hpp"

namespace tardy {

struct Cgroup {
    std::string path;  // absolute directory path
    std::string rel;   // path below the cgroup v2 mount, "/" for the root
    uint64_t id = 0;   // the directory's inode number, as bpf_get_current_cgroup_id() sees it
};

// A cgroup v2 hierarchy rooted at `mount`; `proc` is where /proc is (tests use fake trees).
class CgroupFs {
public:
    CgroupFs(std::string mount, std::string proc = "/proc");
    static Result<CgroupFs> detect();  // finds the cgroup2 mount in /proc/self/mountinfo

    const std::string& mount() const { return mount_; }

    Result<Cgroup> resolve(const TargetRef& t) const;
    Result<Cgroup> by_path(const std::string& p) const;
    Result<Cgroup> by_id(uint64_t id) const;
    Result<Cgroup> by_pid(pid_t pid) const;
    Result<Cgroup> by_container(const std::string& id) const;

    // Every process in the cgroup and its descendants.
    std::vector<pid_t> procs(const Cgroup& cg) const;

private:
    Result<Cgroup> at(const std::string& abs) const;
    std::string mount_;
    std::string proc_;
};

// The id of a container runtime's cgroup directory name, or "" when it is not one:
// docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope (systemd
// layout) and a bare <id> under docker/, kubepods/... (cgroupfs layout).
std::string container_id_of(const std::string& dirname);

}  // namespace tardy
