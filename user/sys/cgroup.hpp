// SPDX-License-Identifier: Apache-2.0
// Targets: cgroup v2 directories, found by path, id, PID or container id.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
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
    // Several processes of one cgroup; PIDs of several cgroups are refused, naming them.
    Result<Cgroup> by_pids(const std::vector<pid_t>& pids) const;
    Result<Cgroup> by_container(const std::string& id) const;
    // A Kubernetes pod by UID (dashes or underscores, full or a unique prefix), under
    // kubelet's systemd or cgroupfs driver; with `container`, one container id of the pod.
    Result<Cgroup> by_pod(const std::string& uid, const std::string& container = "") const;

    // Every process in the cgroup and its descendants.
    std::vector<pid_t> procs(const Cgroup& cg) const;

private:
    Result<Cgroup> at(const std::string& abs) const;
    // Container directories below `root` whose id starts with `want`: id -> shallowest one.
    std::map<std::string, std::string> containers_under(const std::string& root, const std::string& want) const;
    std::string mount_;
    std::string proc_;
};

// The id of a container runtime's cgroup directory name, or "" when it is not one. Systemd
// driver: docker-<id>.scope, cri-containerd-<id>.scope, nerdctl-<id>.scope, crio-<id>.scope,
// libpod-<id>.scope. Cgroupfs driver: libpod-<id> (podman, under libpod_parent/), crio-<id>
// (CRI-O) and a bare <id> (docker/<id>, kubepods/.../pod<uid>/<id>). <id> is 64 lower-case hex
// digits, so conmon's libpod-conmon-<id>(.scope) and crio-conmon-<id>(.scope) are not
// containers.
std::string container_id_of(const std::string& dirname);

// Of these cgroups (id -> directory), the ones below no other: where a cgroup program is linked
// so that it runs once for a packet or socket of any of them (a link on a cgroup and on its
// ancestor would run it twice).
std::map<uint64_t, std::string> topmost_cgroups(const std::map<uint64_t, std::string>& cgroups);

// The pod UID (with dashes) of a kubelet pod cgroup directory name, or "": systemd driver
// kubepods[-burstable|-besteffort]-pod<uid with _>.slice (also under a --cgroup-root such
// as kubelet-kubepods-...), cgroupfs driver pod<uid>.
std::string pod_uid_of(const std::string& dirname);

// "1,2,3" as PIDs; a user error naming `opt` for anything else.
Result<std::vector<pid_t>> parse_pids(const std::string& list, const std::string& opt = "--pid");

}  // namespace tardy
