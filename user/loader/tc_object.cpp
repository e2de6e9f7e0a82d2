// SPDX-License-Identifier: Apache-2.0
#include "loader/tc_object.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <bpf/libbpf_version.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <iterator>
#include <memory>
#include <optional>
#include <vector>

#include "loader/percpu.hpp"
#include "model/net_shape.hpp"
#include "sys/qdisc.hpp"
#include "tc.skel.h"
#include "sys/tc_filter.hpp"

namespace tardy {
namespace {

// TCX links: through libbpf's own API where the installed libbpf has it (1.3 and later);
// Debian 12's libbpf 1.1 and its 6.1 UAPI headers predate TCX, so there the link is created
// by attach type number, a fixed kernel ABI value (BPF_TCX_EGRESS in include/uapi/linux/bpf.h).
#if LIBBPF_MAJOR_VERSION > 1 || (LIBBPF_MAJOR_VERSION == 1 && LIBBPF_MINOR_VERSION >= 3)
#define TARDY_LIBBPF_HAS_TCX 1
#endif
// BPF_TCX_EGRESS: a kernel ABI value; the UAPI headers of Debian 12 (6.1) do not name it.
constexpr auto BPF_TCX_EGRESS_TYPE = static_cast<bpf_attach_type>(47);
// Our clsact filters: a fixed handle and a late priority, so other filters run first.
constexpr uint32_t kClsactHandle = 0x7a7d;
constexpr uint32_t kClsactPriority = 0xc000;

int g_level = -1;  // below LIBBPF_WARN: silent; the agent logs warnings, --verbose all

int print_fn(enum libbpf_print_level level, const char* fmt, va_list args) {
    if (static_cast<int>(level) > g_level) return 0;
    return vfprintf(stderr, fmt, args);
}

// Whether the kernel has TCX (6.6 and later), by asking which programs sit at lo's TCX
// egress hook: one syscall, no program; a kernel without TCX does not know the attach type.
bool kernel_has_tcx() {
    LIBBPF_OPTS(bpf_prog_query_opts, q);
    return bpf_prog_query_opts(1 /* lo, in every network namespace */, BPF_TCX_EGRESS_TYPE, &q) == 0;
}

}  // namespace

void set_libbpf_log(int level) {
    g_level = level;
    libbpf_set_print(print_fn);
}

Result<std::unique_ptr<TcObject>> TcObject::load(const Options& o) {
    libbpf_set_print(print_fn);
    std::unique_ptr<TcObject> obj(new TcObject());
    LIBBPF_OPTS(bpf_object_open_opts, oo);
    if (!o.pin_dir.empty()) oo.pin_root_path = o.pin_dir.c_str();
    obj->skel_ = tardy_tc__open_opts(&oo);
    if (!obj->skel_) return Error::sys("open BPF object tc.bpf.o", errno);
    obj->skel_->rodata->cfg_rng_seed = o.rng_seed;
    if (o.pin_dir.empty()) bpf_map__set_pin_path(obj->skel_->maps.tardy_control, nullptr);
#ifdef TARDY_LIBBPF_HAS_TCX
    // bpf_program__attach_tcx() links with the program's expected attach type, which SEC("tc")
    // leaves at 0 (a cgroup type: the link would be refused and tardy fall back to clsact).
    // The kernel does not check it when it loads a SCHED_CLS program, TCX or not.
    bpf_program__set_expected_attach_type(obj->skel_->progs.tardy_tc_egress, BPF_TCX_EGRESS_TYPE);
#endif
    if (o.only_attachable && !kernel_has_tcx()) bpf_program__set_autoload(obj->skel_->progs.tardy_tc_egress, false);
    obj->lazy_ingress_ = o.lazy_ingress;
    obj->rng_seed_ = o.rng_seed;
    if (o.lazy_ingress) {
        bpf_program__set_autoload(obj->skel_->progs.tardy_tc_ingress, false);
        bpf_program__set_autoload(obj->skel_->progs.tardy_cg_ingress, false);
    }
    if (int err = tardy_tc__load(obj->skel_); err)
        return Error::sys("load BPF object tc.bpf.o (run `tardy doctor`)", -err);
    int cfd = bpf_map__fd(obj->skel_->maps.tardy_control);
    void* m = mmap(nullptr, sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 0);
    if (m == MAP_FAILED) return Error::sys("mmap the control map", errno);
    obj->control_ = static_cast<volatile tardy_control*>(m);
    // netem's distribution tables, computed once per load (model/net_shape.cpp).
    int dfd = bpf_map__fd(obj->skel_->maps.tardy_dists);
    for (uint32_t d = TARDY_DIST_NORMAL; d < TARDY_DISTS; d++) {
        auto t = dist_table(d);
        if (bpf_map_update_elem(dfd, &d, t.data(), BPF_ANY) != 0) return Error::sys("write a distribution table", errno);
    }
    return obj;
}

TcObject::~TcObject() {
    if (control_) munmap(const_cast<tardy_control*>(control_), sysconf(_SC_PAGESIZE));
    tardy_tc__destroy(ingress_skel_);
    tardy_tc__destroy(skel_);
}

Result<void> TcObject::load_ingress() const {
    if (!lazy_ingress_ || ingress_skel_) return ok();
    // A second instance of the same object with only the ingress programs, every map of it the
    // first instance's (the control map and its generation, the rules, counters and caches),
    // so that both see one state: what the kill switch disarms is disarmed for both.
    tardy_tc* s = tardy_tc__open();
    if (!s) return Error::sys("open BPF object tc.bpf.o for the ingress programs", errno);
    s->rodata->cfg_rng_seed = rng_seed_;
    bpf_map__set_pin_path(s->maps.tardy_control, nullptr);  // reused below, not pinned again
    bpf_program__set_autoload(s->progs.tardy_tc_egress, false);
    bpf_program__set_autoload(s->progs.tardy_tc_egress_cls, false);
    bpf_map* m = nullptr;
    bpf_object__for_each_map(m, s->obj) {
        const bpf_map* mine = bpf_object__find_map_by_name(skel_->obj, bpf_map__name(m));
        if (!mine || bpf_map__reuse_fd(m, bpf_map__fd(mine)) != 0) {
            int e = mine ? errno : ENOENT;
            tardy_tc__destroy(s);
            return Error::sys(std::string("share the map ") + bpf_map__name(m) + " with the ingress programs", e);
        }
    }
    if (int err = tardy_tc__load(s); err) {
        tardy_tc__destroy(s);
        return Error::sys("load the ingress programs of tc.bpf.o (run `tardy doctor`)", -err);
    }
    ingress_skel_ = s;
    return ok();
}

int TcObject::egress_prog_fd() const { return bpf_program__fd(skel_->progs.tardy_tc_egress); }

int TcObject::link_tcx_egress(int ifindex) const {
    if (egress_prog_fd() < 0) return -EOPNOTSUPP;  // not loaded: the kernel has no TCX
#ifdef TARDY_LIBBPF_HAS_TCX
    LIBBPF_OPTS(bpf_tcx_opts, opts);  // no anchor: after the programs already there
    bpf_link* link = bpf_program__attach_tcx(skel_->progs.tardy_tc_egress, ifindex, &opts);
    if (!link) return -errno;
    // The attachment owns the link as a plain fd (closing it detaches, as with every other
    // link of the agent); libbpf's bpf_link closes its own copy.
    int fd = fcntl(bpf_link__fd(link), F_DUPFD_CLOEXEC, 0);
    int e = errno;
    bpf_link__destroy(link);
    return fd >= 0 ? fd : -e;
#else
    int fd = bpf_link_create(egress_prog_fd(), ifindex, BPF_TCX_EGRESS_TYPE, nullptr);
    return fd >= 0 ? fd : -errno;
#endif
}
int TcObject::egress_cls_prog_fd() const { return bpf_program__fd(skel_->progs.tardy_tc_egress_cls); }
int TcObject::ingress_delay_prog_fd() const { return bpf_program__fd(ingress_skel()->progs.tardy_tc_ingress); }

Result<CgroupLink> TcObject::attach_ingress(const std::string& cgroup_path) const {
    TARDY_TRY(load_ingress());
    return CgroupLink::attach(ingress_skel()->progs.tardy_cg_ingress, cgroup_path);
}

void TcObject::bump_generation() { __atomic_add_fetch(&control_->generation, 1, __ATOMIC_SEQ_CST); }

Result<void> TcObject::put_slot_rule(const tardy_rule& r) {
    uint32_t slot = r.slot;
    std::vector<uint64_t> naming;  // the sets with a copy of the slot's rule
    for (const auto& [cgid, head] : sets_)
        if (std::find(head.slots, head.slots + head.n, slot) != head.slots + head.n) naming.push_back(cgid);
    std::optional<tardy_rule> old;
    if (auto it = slot_rules_.find(slot); it != slot_rules_.end()) old = it->second;
    slot_rules_[slot] = r;
    for (size_t i = 0; i < naming.size(); i++) {
        if (auto w = write_set(naming[i], sets_[naming[i]]); !w) {
            // the maps keep the rule before: the sets written already are written back with it
            if (old) slot_rules_[slot] = *old;
            else slot_rules_.erase(slot);
            for (size_t j = 0; j < i; j++) (void)write_set(naming[j], sets_[naming[j]]);
            return w;
        }
    }
    return ok();
}

Result<void> TcObject::delete_slot_rule(uint32_t slot) {
    slot_rules_.erase(slot);
    return ok();
}

Result<void> TcObject::put_rules(uint64_t cgid, const tardy_rule_set& in) {
    SetHead head;
    head.n = std::min<uint32_t>(in.n, TARDY_RULES_PER_CGROUP);
    std::copy(in.slots, in.slots + head.n, head.slots);
    head.parse = in.parse;
    TARDY_TRY(write_set(cgid, head));
    sets_[cgid] = head;
    return ok();
}

Result<void> TcObject::write_set(uint64_t cgid, const SetHead& head) {
    auto set = std::make_unique<tardy_rule_set>();  // 3.7 KB: not on the stack
    set->n = head.n;
    set->parse = head.parse;
    for (uint32_t i = 0; i < head.n; i++) {
        auto it = slot_rules_.find(head.slots[i]);
        if (it == slot_rules_.end())
            return Error::sys("write rules for cgroup " + std::to_string(cgid) + ": slot " +
                                  std::to_string(head.slots[i]) + " has no rule",
                              ENOENT);
        set->slots[i] = head.slots[i];
        set->rules[i] = it->second;
    }
    // One update replaces the whole set: a packet sees the old set or the new one.
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.tardy_rules), &cgid, set.get(), BPF_ANY))
        return Error::sys("write rules for cgroup " + std::to_string(cgid), errno);
    bump_generation();
    return ok();
}

Result<void> TcObject::put_rule(uint64_t cgid, const tardy_rule& r) {
    TARDY_TRY(put_slot_rule(r));
    tardy_rule_set set{};
    set.n = 1;
    set.slots[0] = r.slot;
    set.parse = r.filtered || r.flows_ppm;
    return put_rules(cgid, set);
}

Result<void> TcObject::delete_rule(uint64_t cgid) {
    if (bpf_map_delete_elem(bpf_map__fd(skel_->maps.tardy_rules), &cgid) && errno != ENOENT)
        return Error::sys("delete rule for cgroup " + std::to_string(cgid), errno);
    sets_.erase(cgid);
    bump_generation();
    return ok();
}

Result<tardy_counters> TcObject::counters(uint32_t slot) const {
    return sum_percpu<tardy_counters>(bpf_map__fd(skel_->maps.tardy_counters), slot, [](auto& s, const auto& c) { s.matched += c.matched; s.delayed += c.delayed; s.dropped += c.dropped; s.bytes += c.bytes;
        s.duplicated += c.duplicated; s.reordered += c.reordered; s.paced += c.paced; s.dns += c.dns;
        s.resets += c.resets; s.corrupted += c.corrupted; }, "counters");
}

Result<void> TcObject::reset_counters(uint32_t slot) {
    // A new injection in a slot also starts from a fresh state (no correlation, burst or
    // pacing carried over from the slot's last user).
    tardy_rule_state fresh{};
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.tardy_rule_states), &slot, &fresh, BPF_ANY) != 0)
        return Error::sys("reset a rule's state", errno);
    return zero_percpu<tardy_counters>(bpf_map__fd(skel_->maps.tardy_counters), slot, "counters");
}

Result<TcAttachment> TcAttachment::attach_egress(const TcObject& obj, int ifindex, Mode mode,
                                                 const BeforeFilter& before_filter) {
    TcAttachment a;
    a.ifindex_ = ifindex;
    if (mode == Mode::Auto) {
        int fd = obj.link_tcx_egress(ifindex);
        if (fd >= 0) {
            a.kind_ = Kind::Tcx;
            a.link_ = Fd(fd);
            return a;
        }
        int e = -fd;
        if (e != EINVAL && e != EOPNOTSUPP && e != 524 /* ENOTSUPP */)
            return Error::sys("attach TCX egress program to ifindex " + std::to_string(ifindex), e);
    }
    return attach_clsact(obj.egress_cls_prog_fd(), ifindex, false, before_filter);
}

Result<TcAttachment> TcAttachment::attach_ingress_delay(const TcObject& obj, int ifindex,
                                                        const BeforeFilter& before_filter) {
    TARDY_TRY(obj.load_ingress());
    return attach_clsact(obj.ingress_delay_prog_fd(), ifindex, true, before_filter);
}

// A clsact qdisc and a direct-action filter over netlink (kernels without TCX, and delays).
Result<TcAttachment> TcAttachment::attach_clsact(int prog_fd, int ifindex, bool ingress,
                                                 const BeforeFilter& before_filter) {
    const char* dir = ingress ? "ingress" : "egress";
    TcAttachment a;
    a.ifindex_ = ifindex;
    a.ingress_ = ingress;
    a.kind_ = Kind::Clsact;
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
    int err = bpf_tc_hook_create(&hook);
    if (err && err != -EEXIST) return Error::sys("create clsact qdisc on ifindex " + std::to_string(ifindex), -err);
    a.created_hook_ = (err == 0);
    auto undo_hook = [&] {
        // Best effort, and only if still empty: another tool may have used it meanwhile.
        if (a.created_hook_) (void)remove_clsact_if_empty(ifindex);
    };
    if (auto r = before_filter(kClsactHandle, kClsactPriority, a.created_hook_); !r) {
        undo_hook();
        return r.error();
    }
    if (ingress) {
        auto r = add_ingress_redirect_filter(ifindex, prog_fd, "tardy_tc_ingress", kClsactHandle, kClsactPriority,
                                             TARDY_IFB_IFINDEX);
        if (!r) {
            undo_hook();
            return r.error();
        }
    } else {
        LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .flags = 0, .prog_id = 0, .handle = kClsactHandle,
                    .priority = kClsactPriority);
        err = bpf_tc_attach(&hook, &opts);
        if (err) {
            undo_hook();
            return Error::sys(std::string("attach clsact ") + dir + " filter to ifindex " + std::to_string(ifindex), -err);
        }
    }
    a.handle_ = kClsactHandle;
    a.priority_ = kClsactPriority;
    return a;
}

Result<void> TcAttachment::detach() {
    if (kind_ == Kind::Tcx) {
        link_.reset();
        return ok();
    }
    return detach_clsact(ifindex_, handle_, priority_, created_hook_, ingress_);
}

}  // namespace tardy
