// SPDX-License-Identifier: Apache-2.0
#include "loader/cgroup_link.hpp"

#include <bpf/libbpf.h>
#include <fcntl.h>

#include <cerrno>

#include "sys/fd.hpp"

namespace tardy {

CgroupLink::~CgroupLink() {
    if (l_) bpf_link__destroy(l_);
}

Result<CgroupLink> CgroupLink::attach(bpf_program* prog, const std::string& cgroup_path) {
    Fd cg(open(cgroup_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!cg.valid()) return Error::sys("open cgroup " + cgroup_path, errno);
    bpf_link* l = bpf_program__attach_cgroup(prog, cg.get());
    if (!l) return Error::sys(std::string("attach ") + bpf_program__name(prog) + " to cgroup " + cgroup_path, errno);
    return CgroupLink(l);
}

}  // namespace tardy
