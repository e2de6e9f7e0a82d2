// SPDX-License-Identifier: Apache-2.0
// The loaded TC object (bpf/tc.bpf.c): its maps and programs, and attachments of its
// programs to network devices.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "loader/cgroup_link.hpp"
#include "model/error.hpp"
#include "sys/fd.hpp"
#include "model/tardy_abi.hpp"

struct tardy_tc;

namespace tardy {

class TcObject {
public:
    struct Options {
        std::string pin_dir;      // bpffs directory for the control map; empty: do not pin
        uint64_t rng_seed = 0;    // 0: the kernel's prandom; else a reproducible sequence
        // Load the TCX egress program only where the kernel has TCX (the agent: on 6.1 it
        // could never be attached, and its verification is a fifth of the object's). Off for
        // the program tests and benchmarks, which run it by BPF_PROG_TEST_RUN on any kernel.
        bool only_attachable = false;
        // Load the ingress programs (tardy_tc_ingress, tardy_cg_ingress) only when the first
        // ingress fault is attached, as a second instance of the object sharing every map (the
        // agent: most injections are egress only, and on 6.1 the ingress programs are half of
        // the object's verification). Off: everything is loaded at once.
        bool lazy_ingress = false;
    };
    static Result<std::unique_ptr<TcObject>> load(const Options& o);
    ~TcObject();
    TcObject(const TcObject&) = delete;
    TcObject& operator=(const TcObject&) = delete;

    int egress_prog_fd() const;      // for TCX links; -1 where it was not loaded (only_attachable)
    // A TCX egress link of that program on ifindex: its fd, or -errno (EINVAL, EOPNOTSUPP or
    // ENOTSUPP when the kernel has no TCX).
    int link_tcx_egress(int ifindex) const;
    int egress_cls_prog_fd() const;  // for clsact filters: delays without TCP small queues
    // The ingress programs, loaded now if they were left for later (Options::lazy_ingress).
    Result<void> load_ingress() const;
    // TC ingress: delays what the target receives, through the ifb; -1 until load_ingress().
    int ingress_delay_prog_fd() const;
    // The ingress loss program on a cgroup (loaded first if it was not): it runs for the
    // packets that the sockets of the cgroup and its descendants receive.
    Result<CgroupLink> attach_ingress(const std::string& cgroup_path) const;

    // One injection's packet rule, by its slot: written before any set names the slot. The
    // sets hold copies of their rules (one lookup a packet): a set that names the slot already
    // is written again with the new rule, whole, so a live rule changes at once.
    Result<void> put_slot_rule(const tardy_rule& r);
    Result<void> delete_slot_rule(uint32_t slot);
    // The packet rules of a cgroup: the slots of every injection's on it (set.rules is filled
    // here, from the rules put by slot; a slot without one is an error).
    Result<void> put_rules(uint64_t cgid, const tardy_rule_set& set);
    Result<void> put_rule(uint64_t cgid, const tardy_rule& r);  // the rule and a set of one
    Result<void> delete_rule(uint64_t cgid);
    Result<tardy_counters> counters(uint32_t slot) const;  // summed over CPUs
    Result<void> reset_counters(uint32_t slot);  // and the rule's state (correlations, burst, pacing)

    // The control map is mmap()ed: fields are stored one by one, so the agent renewing its
    // lease never writes `armed` back over a concurrent `tardy kill`.
    volatile tardy_control* control() { return control_; }
    void bump_generation();

private:
    TcObject() = default;
    const tardy_tc* ingress_skel() const { return ingress_skel_ ? ingress_skel_ : skel_; }
    tardy_tc* skel_ = nullptr;
    mutable tardy_tc* ingress_skel_ = nullptr;  // the second instance (lazy_ingress), once loaded
    bool lazy_ingress_ = false;
    uint64_t rng_seed_ = 0;
    volatile tardy_control* control_ = nullptr;
    // What the maps hold, to write a set again when one of its rules changes: each slot's
    // rule, and each cgroup's set without its rule copies.
    struct SetHead {
        uint32_t n = 0;
        uint32_t slots[TARDY_RULES_PER_CGROUP] = {};
        uint32_t parse = 0;
    };
    std::unordered_map<uint32_t, tardy_rule> slot_rules_;
    std::unordered_map<uint64_t, SetHead> sets_;
    Result<void> write_set(uint64_t cgid, const SetHead& head);  // the set with its rules' copies
};

// Attaches a TC program to one device in the calling thread's network namespace. TCX links
// (kernel >= 6.6) are FD-owned and vanish with their holder; the netlink clsact filter of
// older kernels does not, so its caller must journal it before and remove it after.
class TcAttachment {
public:
    enum class Kind { Tcx, Clsact };
    // before_filter runs once a clsact qdisc exists and before the filter is added, with
    // whether this call created the qdisc: the place to journal the filter.
    using BeforeFilter = std::function<Result<void>(uint32_t handle, uint32_t priority, bool created_hook)>;
    // Mode::Auto: a TCX link when the kernel has TCX, else a clsact filter. Mode::Clsact:
    // always a clsact filter (delays need its STOLEN verdict, see bpf/lib/steal.bpf.h).
    enum class Mode { Auto, Clsact };
    static Result<TcAttachment> attach_egress(const TcObject& obj, int ifindex, Mode mode,
                                              const BeforeFilter& before_filter);
    // The ingress delay program as a clsact ingress filter, on every kernel: its redirects to
    // the ifb need no verdict TCX lacks, but one kind of attachment is less to undo.
    static Result<TcAttachment> attach_ingress_delay(const TcObject& obj, int ifindex,
                                                     const BeforeFilter& before_filter);

    Kind kind() const { return kind_; }
    uint32_t handle() const { return handle_; }
    uint32_t priority() const { return priority_; }
    bool created_hook() const { return created_hook_; }

    // Detach now. A clsact filter must be detached in its network namespace.
    Result<void> detach();

private:
    static Result<TcAttachment> attach_clsact(int prog_fd, int ifindex, bool ingress, const BeforeFilter& before_filter);

    Kind kind_ = Kind::Tcx;
    bool ingress_ = false;
    int ifindex_ = 0;
    Fd link_;
    uint32_t handle_ = 0, priority_ = 0;
    bool created_hook_ = false;
};

// libbpf's messages up to this level (LIBBPF_WARN=0, INFO=1, DEBUG=2) go to stderr;
// -1 (the default) silences them: errors reach the user as Error values instead.
void set_libbpf_log(int level);

}  // namespace tardy
