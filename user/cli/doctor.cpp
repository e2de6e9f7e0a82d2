// SPDX-License-Identifier: Apache-2.0
#include "cli/doctor.hpp"

#include <sched.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "sys/cgroup.hpp"
#include "sys/netns.hpp"
#include "sys/paths.hpp"
#include "sys/qdisc.hpp"
#include "loader/file_object.hpp"
#include "loader/metrics_object.hpp"
#include "probe.skel.h"
#include "loader/sock_object.hpp"
#include "loader/tc_object.hpp"

namespace tardy {
namespace {

bool mounted(const std::string& fstype, std::string* where) {
    std::ifstream in("/proc/self/mounts");
    std::string dev, mnt, type, rest;
    while (in >> dev >> mnt >> type && std::getline(in, rest)) {
        if (type == fstype) {
            if (where) *where = mnt;
            return true;
        }
    }
    return false;
}

// Whether a kernel feature is there: a module loaded, built in or installed for this kernel
// (modprobe loads it on first use), or its CONFIG_ option set in the kernel's config file.
// nullopt when this machine keeps none of that information.
std::optional<bool> kernel_has(const std::string& module, const std::string& config) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::exists("/sys/module/" + module, ec)) return true;
    utsname u{};
    if (uname(&u) != 0) return std::nullopt;
    bool known = false;
    std::string dir = std::string("/lib/modules/") + u.release;
    for (const char* index : {"/modules.builtin", "/modules.dep"}) {
        std::ifstream in(dir + index);
        known |= in.is_open();
        for (std::string line; std::getline(in, line);) {
            std::string path = line.substr(0, line.find(':'));
            std::string file = path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
            if (file.starts_with(module + ".ko")) return true;
        }
    }
    std::ifstream cfg(std::string("/boot/config-") + u.release);
    known |= cfg.is_open();
    for (std::string line; std::getline(cfg, line);)
        if (line == config + "=y" || line == config + "=m") return true;
    return known ? std::optional<bool>(false) : std::nullopt;
}

// Attach the egress program to loopback in a throwaway namespace: TCX or clsact?
Check probe_attach(TcObject& obj) {
    Check c{"tc-attach", false, ""};
    std::thread t([&] {
        if (unshare(CLONE_NEWNET) != 0) {
            c.detail = "cannot make a scratch network namespace to probe in";
            return;
        }
        auto a = TcAttachment::attach_egress(obj, 1, TcAttachment::Mode::Auto,
                                             [](uint32_t, uint32_t, bool) { return ok(); });
        if (!a) {
            c.detail = a.error().message;
            return;
        }
        c.ok = true;
        c.detail = a->kind() == TcAttachment::Kind::Tcx
                       ? "TCX links for loss: they vanish with the agent, even on SIGKILL (delays use "
                         "journaled clsact filters: TCX has no verdict that spares TCP small queues)"
                       : "no TCX (kernel < 6.6): netlink clsact filters, journaled and removed by the agent or `tardy kill`";
        (void)a->detach();
    });
    t.join();
    return c;
}

}  // namespace

std::vector<Check> run_checks() {
    std::vector<Check> out;
    utsname u{};
    uname(&u);
    out.push_back({"kernel", true, std::string(u.release) + " " + u.machine});
    out.push_back({"root", geteuid() == 0, geteuid() == 0 ? "running as root" : "run tardy as root (sudo)"});
    bool btf = std::filesystem::exists("/sys/kernel/btf/vmlinux");
    out.push_back({"btf", btf, btf ? "/sys/kernel/btf/vmlinux present (CO-RE works)"
                                   : "no kernel BTF: needs CONFIG_DEBUG_INFO_BTF=y"});
    auto cg = CgroupFs::detect();
    out.push_back({"cgroup-v2", cg.ok(), cg ? "mounted at " + cg->mount() : cg.error().message});
    std::string where;
    bool bpffs = mounted("bpf", &where);
    out.push_back({"bpffs", true, bpffs ? "mounted at " + where : "not mounted; tardy mounts it on /sys/fs/bpf itself"});
    bool tracefs = mounted("tracefs", &where);
    out.push_back({"tracefs", true, tracefs ? "mounted at " + where : "not mounted (not needed by this version)"});
    if (geteuid() != 0) return out;

    auto obj = TcObject::load({});
    out.push_back({"bpf-load", obj.ok(), obj ? "the TC program loads and verifies" : obj.error().message});
    bool attached = false;
    if (obj) {
        out.push_back(probe_attach(**obj));
        attached = out.back().ok;
    }

    Check fq{"fq-qdisc", false, ""};
    std::thread t([&] {
        auto a = qdisc_kind_available("fq");
        fq.ok = a && *a;
        fq.detail = !a ? a.error().message
                       : *a ? "sch_fq available: --delay, --jitter and --rate work"
                            : "no sch_fq in this kernel: --delay/--jitter/--rate cannot be enforced; --loss works";
    });
    t.join();
    out.push_back(fq);

    std::string lsms = active_lsms();
    bool bpf_lsm = ("," + lsms + ",").find(",bpf,") != std::string::npos;
    out.push_back({"bpf-lsm", bpf_lsm, bpf_lsm ? "active (" + lsms + ")"
                                               : "not active (" + (lsms.empty() ? "unknown" : lsms) +
                                                     "): file faults need lsm=...,bpf on the kernel command line"});
    auto sock = SockObject::load("");
    out.push_back({"socket-hooks", sock.ok(),
                   sock ? "cgroup connect/sendmsg/bind/socket hooks with bpf_set_retval load: --fail works"
                        : sock.error().message});
    Check tramp{"trampolines", false, ""};
    if (tardy_probe* p = tardy_probe__open()) {
        int err = tardy_probe__load(p);
        tramp.ok = err == 0;
        tramp.detail = err == 0 ? "fentry programs load (BPF LSM programs can too, where the LSM is active)"
                                : std::string("fentry programs do not load (") + std::strerror(-err) +
                                      "): file faults via the BPF LSM are not possible on this kernel";
        tardy_probe__destroy(p);
    }
    out.push_back(tramp);
    bool can_loss = obj && attached;
    out.push_back({"fault: loss", can_loss, can_loss ? "supported" : "needs the TC program to load and attach"});
    out.push_back({"fault: delay", can_loss && fq.ok, can_loss && fq.ok ? "supported" : "needs sch_fq and the TC program"});
    // Ingress delay holds packets in an ifb device, redirected there by act_mirred.
    auto ifb = kernel_has("ifb", "CONFIG_IFB"), mirred = kernel_has("act_mirred", "CONFIG_NET_ACT_MIRRED");
    auto word = [](const std::optional<bool>& b) { return !b ? " (cannot tell)" : *b ? " (present)" : " (missing)"; };
    bool in_ok = can_loss && fq.ok && ifb.value_or(true) && mirred.value_or(true);
    out.push_back({"fault: ingress delay", in_ok,
                   in_ok && ifb && mirred
                       ? "supported (--delay with --direction ingress|both: an ifb with fq per namespace)"
                       : std::string("needs sch_fq, the TC program, the ifb device") + word(ifb) + " and act_mirred" +
                             word(mirred)});
    out.push_back({"fault: --fail", sock.ok(), sock ? "connect, sendmsg, bind, socket" : "needs the socket hooks"});
    // The real programs, not a stand-in: a newer verifier can refuse one that a probe passes
    // (6.12 checks the range of an LSM program's return value).
    bool files = false;
    std::string file_detail = "needs the BPF LSM and trampolines";
    if (bpf_lsm && tramp.ok) {
        auto f = FileObject::load("");
        files = f.ok();
        file_detail = f ? "--fail open/read/write with --path" : f.error().message;
    }
    out.push_back({"fault: file", files, file_detail});
    // The metric programs read socket fields through BTF, which each kernel's verifier judges.
    auto metrics = MetricsObject::load();
    out.push_back({"cohort metrics", metrics.ok(),
                   metrics ? "stats, observe and /metrics: TCP connects, latency, RTT, retransmits, packets"
                           : metrics.error().message});
    return out;
}

int run_doctor(bool as_json) {
    auto checks = run_checks();
    if (as_json) {
        nlohmann::json j = nlohmann::json::array();
        for (const auto& c : checks) j.push_back({{"check", c.name}, {"ok", c.ok}, {"detail", c.detail}});
        std::printf("%s\n", nlohmann::json{{"checks", j}}.dump(2).c_str());
        return 0;
    }
    int w = 14;
    for (const auto& c : checks) w = std::max(w, static_cast<int>(c.name.size()));
    for (const auto& c : checks) std::printf("%-4s %-*s %s\n", c.ok ? "ok" : "NO", w, c.name.c_str(), c.detail.c_str());
    return 0;
}

}  // namespace tardy
