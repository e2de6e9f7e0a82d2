// SPDX-License-Identifier: Apache-2.0
// `make bench`: what the stall programs cost a bystander, a process outside every target,
// per syscall. They are host-wide (tp_btf/sys_enter and sys_exit), so every process on the
// host pays this while a stall rule exists. A getppid() loop, timed with nothing attached,
// with empty programs on the same hooks (the floor: what any program there costs on this
// machine), and with tardy's programs finding the rule by the ancestor walk (before the
// cache) and by the cgroup cache. Rounds interleave the cases and the median is reported,
// so the ratios to the floor are what to compare across machines.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "lab/sandbox.hpp"
#include "loader/stall_object.hpp"
#include "sys/cgroup.hpp"

using namespace tardy;

namespace {

constexpr int kCalls = 1'000'000;
constexpr int kRounds = 7;
constexpr int kDepth = 5;  // the bystander's cgroup level: a Kubernetes container's is about 5

double ns_per_call() {
    timespec a{}, b{};
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < kCalls; i++) syscall(SYS_getppid);
    clock_gettime(CLOCK_MONOTONIC, &b);
    return ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / kCalls;
}

// An empty BTF raw tracepoint program ("return 0") on sys_enter or sys_exit; its link fd.
int empty_program(const char* tp) {
    bpf_insn insns[2] = {};
    insns[0].code = BPF_ALU64 | BPF_MOV | BPF_K;  // r0 = 0
    insns[1].code = BPF_JMP | BPF_EXIT;
    LIBBPF_OPTS(bpf_prog_load_opts, o);
    o.expected_attach_type = BPF_TRACE_RAW_TP;
    int id = libbpf_find_vmlinux_btf_id(tp, BPF_TRACE_RAW_TP);
    if (id <= 0) return -1;
    o.attach_btf_id = id;
    int prog = bpf_prog_load(BPF_PROG_TYPE_TRACING, "bench_empty", "GPL", insns, 2, &o);
    if (prog < 0) return -1;
    int link = bpf_raw_tracepoint_open(nullptr, prog);
    close(prog);  // the link holds it
    return link;
}

// This process in <cgroup2>/tardy-bench-PID/l2/.../leaf (level kDepth) for its lifetime.
struct DeepCgroup {
    std::string top, home;
    bool ok = false;
    DeepCgroup() {
        auto cgfs = CgroupFs::detect();
        auto self = cgfs ? cgfs->by_pid(getpid()) : Result<Cgroup>(Error::user("no cgroup v2"));
        if (!self) return;
        home = self->path;
        top = cgfs->mount() + "/tardy-bench-" + std::to_string(getpid());
        std::string p = top;
        if (mkdir(p.c_str(), 0755) != 0) return;
        for (int level = 2; level <= kDepth; level++) {
            p += "/l" + std::to_string(level);
            if (mkdir(p.c_str(), 0755) != 0) return;
        }
        ok = join(p);
    }
    ~DeepCgroup() {
        if (!home.empty()) join(home);
        if (!top.empty()) remove_cgroup_tree(top);
    }
    static bool join(const std::string& cg) {
        std::ofstream f(cg + "/cgroup.procs");
        f << getpid() << std::flush;
        return static_cast<bool>(f);
    }
};

std::unique_ptr<StallObject> stall_programs(bool walk_always) {
    auto o = StallObject::load("", 0, walk_always);
    if (!o) {
        std::fprintf(stderr, "syscall_bench: %s\n", o.error().message.c_str());
        return nullptr;
    }
    tardy_control c{1, 1, 0};  // armed, no lease deadline
    __u32 key = 0;
    bpf_map_update_elem((*o)->control_fd(), &key, &c, BPF_ANY);
    tardy_stall_rule r{};  // one rule, for a cgroup the bystander is not in
    r.expires_ns = ~0ULL;
    r.n = 1;
    r.stalls[0] = {TARDY_PPM, TARDY_STALL_ON_ANY, 50'000'000};
    r.entry_of_nr[SYS_getppid] = 1;
    if (!(*o)->put_rule(0xfff0000001ULL, r) || !(*o)->attach()) return nullptr;
    return std::move(*o);
}

}  // namespace

int main() {
    DeepCgroup cg;
    if (!cg.ok) {
        std::fprintf(stderr, "syscall_bench: needs root and cgroup v2 (run `sudo make bench`)\n");
        return 1;
    }
    auto walk = stall_programs(true), cache = stall_programs(false);
    if (!walk || !cache) return 1;
    walk->detach();
    cache->detach();
    struct Case {
        const char* name;
        std::function<bool()> attach;
        std::function<void()> detach;
        std::vector<double> ns;
    };
    std::vector<int> links;
    auto empty = [&](std::vector<const char*> tps) {
        return [&links, tps] {
            for (const char* tp : tps) links.push_back(empty_program(tp));
            return std::all_of(links.begin(), links.end(), [](int l) { return l >= 0; });
        };
    };
    auto close_links = [&] {
        for (int l : links) close(l);
        links.clear();
    };
    std::vector<Case> cases = {
        {"no program", [] { return true; }, [] {}, {}},
        {"empty sys_enter (floor)", empty({"sys_enter"}), close_links, {}},
        {"empty sys_enter + sys_exit", empty({"sys_enter", "sys_exit"}), close_links, {}},
        {"tardy stall, ancestor walk", [&] { return walk->attach().ok(); }, [&] { walk->detach(); }, {}},
        {"tardy stall, cgroup cache", [&] { return cache->attach().ok(); }, [&] { cache->detach(); }, {}},
    };
    for (int round = 0; round < kRounds; round++) {
        for (auto& c : cases) {
            if (!c.attach()) {
                std::fprintf(stderr, "syscall_bench: cannot attach: %s\n", c.name);
                return 1;
            }
            c.ns.push_back(ns_per_call());
            c.detach();
        }
    }
    std::printf("\nStall programs (tp_btf sys_enter + sys_exit), ns per getppid() of a bystander at cgroup level %d\n"
                "(median of %d rounds x %d calls, one stall rule for another cgroup)\n", kDepth, kRounds, kCalls);
    std::printf("%-30s %10s %10s %12s\n", "case", "ns/call", "added", "added/floor");
    auto med = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    };
    double base = med(cases[0].ns), floor = med(cases[1].ns) - base;
    for (const auto& c : cases) {
        double m = med(c.ns), added = m - base;
        std::printf("%-30s %10.1f %10.1f %11.2fx\n", c.name, m, added, floor > 0 ? added / floor : 0.0);
    }
    return 0;
}
