// SPDX-License-Identifier: Apache-2.0
// A BPF program's link to a cgroup, owned by the agent's fd: the kernel detaches it when the
// last fd goes, so the agent's death ends it.
#pragma once

#include <string>
#include <utility>

#include "model/error.hpp"

struct bpf_link;
struct bpf_program;

namespace tardy {

class CgroupLink {
public:
    explicit CgroupLink(bpf_link* l) : l_(l) {}
    CgroupLink(CgroupLink&& o) noexcept : l_(o.l_) { o.l_ = nullptr; }
    CgroupLink& operator=(CgroupLink&& o) noexcept {
        std::swap(l_, o.l_);
        return *this;
    }
    CgroupLink(const CgroupLink&) = delete;
    ~CgroupLink();

    // Links prog to the cgroup directory (multi-attach: next to other tools' programs).
    static Result<CgroupLink> attach(bpf_program* prog, const std::string& cgroup_path);

private:
    bpf_link* l_;
};

}  // namespace tardy
