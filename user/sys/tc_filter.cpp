#include "sys/tc_filter.hpp"

#include <bpf/libbpf.h>

#include <string>

#include "sys/qdisc.hpp"

namespace tardy {

Result<void> detach_clsact(int ifindex, uint32_t handle, uint32_t priority, bool destroy_hook) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_EGRESS);
    LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = 0, .flags = 0, .prog_id = 0, .handle = handle, .priority = priority);
    int err = bpf_tc_detach(&hook, &opts);
    if (err && err != -ENOENT && err != -ENODEV && err != -EINVAL)
        return Error::sys("detach clsact filter from ifindex " + std::to_string(ifindex), -err);
    if (!destroy_hook) return ok();
    // We made the clsact, but other tools may have put filters on it since, and deleting the
    // qdisc (bpf_tc_hook_destroy) would take theirs with ours: delete it only when empty.
    auto r = remove_clsact_if_empty(ifindex);
    if (!r && r.error().err != ENODEV) return r.error();  // its messages name the device
    return ok();
}

}  // namespace tardy
