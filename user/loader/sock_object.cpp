// SPDX-License-Identifier: Apache-2.0
#include "loader/sock_object.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "sys/fd.hpp"
#include "loader/percpu.hpp"
#include "sock.skel.h"

namespace tardy {

Result<std::unique_ptr<SockObject>> SockObject::load(const std::string& pin_dir, uint64_t rng_seed) {
    std::unique_ptr<SockObject> obj(new SockObject());
    LIBBPF_OPTS(bpf_object_open_opts, oo);
    if (!pin_dir.empty()) oo.pin_root_path = pin_dir.c_str();
    obj->skel_ = tardy_sock__open_opts(&oo);
    if (!obj->skel_) return Error::sys("open BPF object sock.bpf.o", errno);
    obj->skel_->rodata->cfg_rng_seed = rng_seed;
    // Same definition as the TC object's, so the pinned control map is shared, not duplicated.
    if (pin_dir.empty()) bpf_map__set_pin_path(obj->skel_->maps.tardy_control, nullptr);
    if (int err = tardy_sock__load(obj->skel_); err)
        return Error{ErrorKind::User,
                     std::string("socket faults need cgroup socket hooks with bpf_set_retval (kernel >= 5.18); "
                                 "loading them failed: ") + std::strerror(-err) + " (see `tardy doctor`)",
                     -err};
    return obj;
}

SockObject::~SockObject() { tardy_sock__destroy(skel_); }

Result<std::vector<CgroupLink>> SockObject::attach(const std::string& cgroup_path, const std::vector<uint32_t>& ops,
                                                   bool connect_timeouts) {
    std::vector<bpf_program*> progs;
    for (uint32_t op : ops) {
        switch (op) {
        case TARDY_OP_CONNECT:
            progs.insert(progs.end(), {skel_->progs.tardy_connect4, skel_->progs.tardy_connect6,
                                       skel_->progs.tardy_getsockopt});
            // Every egress packet of the cohort runs it: only where a connect can time out.
            if (connect_timeouts) progs.push_back(skel_->progs.tardy_blackhole);
            break;
        case TARDY_OP_SENDMSG:
            progs.insert(progs.end(), {skel_->progs.tardy_sendmsg4, skel_->progs.tardy_sendmsg6});
            break;
        case TARDY_OP_BIND:
            progs.insert(progs.end(), {skel_->progs.tardy_bind4, skel_->progs.tardy_bind6});
            break;
        case TARDY_OP_SOCKET:
            progs.push_back(skel_->progs.tardy_sock_create);
            break;
        }
    }
    std::vector<CgroupLink> links;
    for (auto* p : progs) {
        auto l = CgroupLink::attach(p, cgroup_path);
        if (!l) return l.error();
        links.push_back(std::move(*l));
    }
    return links;
}

Result<void> SockObject::put_rule(uint64_t cgid, const tardy_sock_rule& r) {
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.tardy_sock_rules), &cgid, &r, BPF_ANY))
        return Error::sys("write socket rule for cgroup " + std::to_string(cgid), errno);
    return ok();
}

Result<void> SockObject::delete_rule(uint64_t cgid) {
    if (bpf_map_delete_elem(bpf_map__fd(skel_->maps.tardy_sock_rules), &cgid) && errno != ENOENT)
        return Error::sys("delete socket rule for cgroup " + std::to_string(cgid), errno);
    return ok();
}

Result<tardy_sock_counters> SockObject::counters(uint32_t slot) const {
    return sum_percpu<tardy_sock_counters>(bpf_map__fd(skel_->maps.tardy_sock_counters), slot, [](auto& s, const auto& c) { s.seen += c.seen; s.failed += c.failed; s.connects_refused += c.connects_refused; }, "socket counters");
}

Result<void> SockObject::reset_counters(uint32_t slot) {
    return zero_percpu<tardy_sock_counters>(bpf_map__fd(skel_->maps.tardy_sock_counters), slot, "socket counters");
}

}  // namespace tardy
