// SPDX-License-Identifier: Apache-2.0
#include "sys/tc_filter.hpp"

#include <bpf/libbpf.h>
#include <libmnl/libmnl.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <linux/tc_act/tc_mirred.h>
#include <arpa/inet.h>

#include <algorithm>
#include <vector>

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


Result<void> detach_clsact(int ifindex, uint32_t handle, uint32_t priority, bool destroy_hook, bool ingress) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
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

Result<void> add_ingress_redirect_filter(int ifindex, int prog_fd, const std::string& prog_name, uint32_t handle,
                                         uint32_t priority, int target_ifindex) {
    Rtnl nl;
    auto name = open_on(nl, ifindex);
    if (!name) return name.error();
    std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
    nlmsghdr* nlh = put_tc_header(buf.data(), RTM_NEWTFILTER, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, ifindex,
                                  kClsactIngress, handle);
    auto* tcm = static_cast<tcmsg*>(mnl_nlmsg_get_payload(nlh));
    tcm->tcm_info = TC_H_MAKE(priority << 16, htons(ETH_P_ALL));
    mnl_attr_put_strz(nlh, TCA_KIND, "bpf");
    nlattr* opts = mnl_attr_nest_start(nlh, TCA_OPTIONS);
    mnl_attr_put_u32(nlh, TCA_BPF_FD, static_cast<uint32_t>(prog_fd));
    mnl_attr_put_strz(nlh, TCA_BPF_NAME, prog_name.c_str());
    mnl_attr_put_u32(nlh, TCA_BPF_FLAGS, 0);  // not direct-action: a match runs the action below
    nlattr* acts = mnl_attr_nest_start(nlh, TCA_BPF_ACT);
    nlattr* act = mnl_attr_nest_start(nlh, 1);  // the first (only) action
    mnl_attr_put_strz(nlh, TCA_ACT_KIND, "mirred");
    nlattr* aopts = mnl_attr_nest_start(nlh, TCA_ACT_OPTIONS);
    tc_mirred m{};
    m.action = TC_ACT_STOLEN;
    m.eaction = TCA_EGRESS_REDIR;
    m.ifindex = static_cast<uint32_t>(target_ifindex);
    mnl_attr_put(nlh, TCA_MIRRED_PARMS, sizeof m, &m);
    mnl_attr_nest_end(nlh, aopts);
    mnl_attr_nest_end(nlh, act);
    mnl_attr_nest_end(nlh, acts);
    mnl_attr_nest_end(nlh, opts);
    Reply r = nl.exchange(nlh, [](const nlmsghdr*) {});
    if (r.err == ENOENT || r.err == EOPNOTSUPP)
        return nl_error("cannot add the ingress delay filter to " + *name +
                            " (it needs the kernel's cls_bpf and act_mirred; see `tardy doctor`)",
                        r);
    if (r.err) return nl_error("cannot add the ingress delay filter to " + *name, r);
    return ok();
}

}  // namespace tardy
