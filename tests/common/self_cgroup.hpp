// SPDX-License-Identifier: Apache-2.0
// Moves this process into <cgroup2>/<prefix>-<pid>/leaf for its lifetime. BPF_PROG_TEST_RUN
// gives test packets a socket in the runner's cgroup, so this makes "the target cgroup"
// (leaf) and its parent known ids, and any other id a foreign cgroup.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "sys/cgroup.hpp"
#include "lab/sandbox.hpp"

namespace tardy::test {

class SelfInCgroup {
public:
    explicit SelfInCgroup(const std::string& prefix) {
        auto cgfs = CgroupFs::detect();
        if (!cgfs) return;
        auto self = cgfs->by_pid(getpid());
        if (!self) return;
        home_ = self->path;
        dir_ = cgfs->mount() + "/" + prefix + "-" + std::to_string(getpid());
        if (mkdir(dir_.c_str(), 0755) != 0 || mkdir((dir_ + "/leaf").c_str(), 0755) != 0) return;
        if (!join(dir_ + "/leaf")) return;
        auto leaf = cgfs->by_path(dir_ + "/leaf");
        auto parent = cgfs->by_path(dir_);
        if (!leaf || !parent) return;
        leaf_id = leaf->id;
        parent_id = parent->id;
    }
    ~SelfInCgroup() {
        if (!home_.empty()) join(home_);
        if (!dir_.empty()) remove_cgroup_tree(dir_);
    }
    SelfInCgroup(const SelfInCgroup&) = delete;
    SelfInCgroup& operator=(const SelfInCgroup&) = delete;
    bool ok() const { return leaf_id != 0; }

    uint64_t leaf_id = 0, parent_id = 0;

private:
    static bool join(const std::string& cg) {
        std::ofstream f(cg + "/cgroup.procs");
        f << getpid() << std::flush;
        return static_cast<bool>(f);
    }
    std::string home_, dir_;
};

}  // namespace tardy::test
