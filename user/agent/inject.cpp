// SPDX-License-Identifier: Apache-2.0
#include "agent/inject.hpp"

#include <unistd.h>

#include <algorithm>

#include "agent/client.hpp"
#include "loader/file_object.hpp"
#include "loader/sock_object.hpp"
#include "loader/stall_object.hpp"
#include "sys/qdisc.hpp"
#include "sys/netns.hpp"

namespace tardy {

Result<wire::Inject> prepare_inject(const InjectRequest& r, const CgroupFs& cgfs) {
    auto cg = cgfs.resolve(r.target);
    if (!cg) return cg.error();
    if (!r.force) {
        if (cg->rel == "/" && r.target.kind == TargetRef::Kind::Pid) {
            // The hint is the command that moves the processes into a cgroup of their own.
            bool several = r.target.value.find(',') != std::string::npos;
            std::string pids = r.target.value, dir = cgfs.mount() + "/tardy-target";
            std::replace(pids.begin(), pids.end(), ',', ' ');
            std::string move = several ? "for p in " + pids + "; do echo $p > " + dir + "/cgroup.procs; done"
                                       : "echo " + pids + " > " + dir + "/cgroup.procs";
            return Error::user("refusing --pid " + r.target.value + ": " + (several ? "they are" : "it is") +
                               " in the root cgroup, which holds every process on the host; move " +
                               (several ? "them into a cgroup of their own" : "it into a cgroup of its own") + ": mkdir " + dir + " && " + move +
                               ", then use --cgroup tardy-target (or start the program under `systemd-run --scope "
                               "--unit NAME CMD` and use --cgroup system.slice/NAME.scope; --force takes the root cgroup anyway)");
        }
        if (cg->rel == "/")
            return Error::user("refusing the root cgroup: it holds every process on the host; add --force if you mean it");
        auto self = cgfs.by_pid(getpid());
        if (self && self->id == cg->id)
            return Error::user("refusing " + cg->rel + ": tardy itself runs there; add --force if you mean it");
    }
    std::vector<NetnsRef> ns;
    if (!r.net.any()) {
        // socket faults only: hooks on the cgroup, no network namespace or device involved
    } else if (!r.netns.empty()) {
        auto n = netns_by_name(r.netns);
        if (!n) return n.error();
        ns.push_back(*n);
    } else {
        auto procs = cgfs.procs(*cg);
        ns = netns_of_pids(procs);
        if (ns.empty() && !procs.empty() && geteuid() != 0)
            return Error::user("cannot read the network namespace of cgroup " + cg->rel +
                               "'s processes without root; run it with sudo, or name it with --netns NAME|PATH");
        if (ns.empty())
            return Error::user("cgroup " + cg->rel + " has no processes, so its network namespace is unknown; "
                               "name it with --netns NAME|PATH");
    }
    // Devices are checked here too, so a typo never starts an agent or loads a program.
    for (const auto& n : ns) {
        auto fd = open_netns(n);
        if (!fd) return fd.error();
        std::vector<NetDevice> devs;
        TARDY_TRY(in_netns(fd->get(), [&] {
            devs = list_devices();
            return ok();
        }));
        for (const auto& want : r.devices) {
            if (std::none_of(devs.begin(), devs.end(), [&](const NetDevice& d) { return d.name == want; })) {
                std::string have;
                for (const auto& d : devs) have += (have.empty() ? "" : ", ") + d.name;
                return Error::user("--device " + want + ": no such device in network namespace " + n.path +
                                   " (it has: " + have + ")");
            }
        }
        if (r.devices.empty() &&
            std::none_of(devs.begin(), devs.end(), [](const NetDevice& d) { return !d.loopback; }))
            return Error::user("network namespace " + n.path + " has no device but loopback; choose one with --device lo");
    }
    wire::Inject req;
    req.name = r.name;
    req.cgroup = {cg->path, cg->rel, cg->id};
    req.net = r.net;
    req.sock = r.sock;
    req.filter = r.filter;
    req.stalls = r.stalls;
    req.for_ns = r.for_ns;
    for (const auto& n : ns) req.netns.push_back({n.ino, n.path});
    req.devices = r.devices;
    req.force = r.force;
    req.measure = r.measure;
    if (r.control) {
        auto k = cgfs.resolve(*r.control);
        if (!k) return k.error();
        if (k->rel == "/")
            return Error::user("refusing the root cgroup as the control cohort: it holds every process on the host, "
                               "the target's too; name the control's own cgroup");
        if (k->id == cg->id || k->path.starts_with(cg->path + "/") || cg->path.starts_with(k->path + "/"))
            return Error::user("the control cohort " + k->rel + " and the target " + cg->rel +
                               " overlap; a control must be a cgroup beside the target, not in or above it");
        req.cohorts.push_back({"control", {k->path, k->rel, k->id}});
    }
    return req;
}

Result<void> check_kernel_can(const InjectRequest& r, bool load) {
    if (r.sock.any_file()) TARDY_TRY(FileObject::load(""));
    if (load && r.sock.any()) TARDY_TRY(SockObject::load(""));
    if (load && !r.stalls.empty()) TARDY_TRY(StallObject::load(""));
    if (r.net.paces()) {
        // A kernel without sch_fq accepts departure stamps but never enforces them, which
        // would be a silent no-op fault.
        auto fq = qdisc_kind_available("fq");
        if (fq && !*fq)
            return Error::user("--delay and --rate need the fq qdisc to enforce departure times, and this kernel "
                               "has none (sch_fq missing; see `tardy doctor`); --loss works without it");
    }
    return ok();
}

Result<wire::InjectReply> submit_inject(const Paths& p, const wire::Inject& req, const std::string& self_exe) {
    if (!agent_reachable(p)) {
        TARDY_TRY(ensure_dir(p.run_dir));
        TARDY_TRY(spawn_agent(p, self_exe));
    }
    auto rep = agent_call(p, wire::request(req));
    if (!rep && (rep.error().err == ECONNREFUSED || rep.error().err == ENOENT)) {
        // The agent that answered a moment ago left meanwhile (an idle agent leaves 2 s after
        // its last injection): start another and ask it.
        TARDY_TRY(ensure_dir(p.run_dir));
        TARDY_TRY(spawn_agent(p, self_exe));
        rep = agent_call(p, wire::request(req));
    }
    if (!rep) return rep.error();
    auto r = reply_or_error(*rep);
    if (!r) return r.error();
    return wire::read_reply<wire::InjectReply>(*r);
}

}  // namespace tardy
