// SPDX-License-Identifier: Apache-2.0
#include "sys/tc_filter.hpp"

#include <bpf/libbpf.h>

#include <algorithm>

#include <string>

#include "sys/rtnl.hpp"

namespace tardy {
namespace {

using namespace rtnl;

static_assert(kClsactIngress == TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS));
static_assert(kClsactEgress == TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS));

bool is_clsact(const QdiscMsg& q) { return q.kind == "clsact" && q.parent == TC_H_CLSACT; }

// Whether any filter is left on either hook of the device's clsact.
Result<bool> clsact_filters(Rtnl& nl, int ifindex, const std::string& ifname) {
    for (uint32_t parent : {kClsactIngress, kClsactEgress}) {
        auto n = count_dump(nl, RTM_GETTFILTER, RTM_NEWTFILTER, ifindex, parent,
                            "the clsact filters of " + ifname);
        if (!n) return n.error();
        if (*n) return true;
    }
    return false;
}

// An rtnetlink socket for questions about one device; returns the device's name for messages.
Result<std::string> open_on(Rtnl& nl, int ifindex) {
    auto name = ifname_of(ifindex);
    if (!name) return name.error();
    TARDY_TRY(open_rtnl(nl, *name));
    return name;
}

}  // namespace

Result<bool> clsact_exists(int ifindex) {
    Rtnl nl;
    auto name = open_on(nl, ifindex);
    if (!name) return name.error();
    auto qs = dump_qdiscs(nl, ifindex, *name);
    if (!qs) return qs.error();
    return std::any_of(qs->begin(), qs->end(), is_clsact);
}

Result<int> count_filters(int ifindex, uint32_t parent) {
    Rtnl nl;
    auto name = open_on(nl, ifindex);
    if (!name) return name.error();
    return count_dump(nl, RTM_GETTFILTER, RTM_NEWTFILTER, ifindex, parent,
                      "the filters of " + *name + " at parent " + handle_str(parent));
}

Result<bool> clsact_has_filters(int ifindex) {
    Rtnl nl;
    auto name = open_on(nl, ifindex);
    if (!name) return name.error();
    return clsact_filters(nl, ifindex, *name);
}

Result<bool> remove_clsact_if_empty(int ifindex) {
    Rtnl nl;
    auto name = open_on(nl, ifindex);
    if (!name) return name.error();
    auto qs = dump_qdiscs(nl, ifindex, *name);
    if (!qs) return qs.error();
    if (std::none_of(qs->begin(), qs->end(), is_clsact)) return false;
    auto busy = clsact_filters(nl, ifindex, *name);
    if (!busy) return busy.error();
    if (*busy) return false;
    std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
    // The kind and handle make the kernel refuse (EINVAL, ENOENT) anything but a clsact.
    nlmsghdr* nlh = put_tc_header(buf.data(), RTM_DELQDISC, NLM_F_ACK, ifindex, TC_H_CLSACT,
                                  TC_H_MAKE(TC_H_CLSACT, 0));
    mnl_attr_put_strz(nlh, TCA_KIND, "clsact");
    Reply r = nl.exchange(nlh, [](const nlmsghdr*) {});
    if (r.err == ENOENT || r.err == EINVAL) return false;  // gone, or replaced by another kind since
    if (r.err) return nl_error("cannot remove the clsact qdisc of " + *name, r);
    return true;
}


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
