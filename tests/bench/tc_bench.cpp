// SPDX-License-Identifier: Apache-2.0
// `make bench`: cost per packet of the TC egress program, from BPF_PROG_TEST_RUN with
// repeat (the kernel times the program alone). Each case runs 7 rounds side by side in one
// process and reports the median, so the ratios between cases are what to read.
//
// Next to each cost is the floor measured in the same run: an empty program on the same hook
// (SCHED_CLS, `r0 = TC_NEXT; exit`) run the same way. It is what BPF_PROG_TEST_RUN and the
// program call cost on this machine, so "x floor" compares across machines where raw
// nanoseconds do not.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <linux/bpf.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <string>
#include <vector>

#include "../common/packets.hpp"
#include "../common/self_cgroup.hpp"
#include "loader/tc_object.hpp"
#include "model/filter.hpp"

using namespace tardy;
using namespace tardy::test;

namespace {

constexpr int kRepeat = 1'000'000;
constexpr int kRounds = 7;

uint32_t run_ns(int prog_fd, const std::vector<uint8_t>& pkt) {
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt.data(), .data_out = nullptr,
                .data_size_in = static_cast<__u32>(pkt.size()), .data_size_out = 0, .ctx_in = nullptr,
                .ctx_out = nullptr, .ctx_size_in = 0, .ctx_size_out = 0, .retval = 0, .repeat = kRepeat);
    if (bpf_prog_test_run_opts(prog_fd, &o) != 0) return 0;
    return o.duration;
}

// The empty program: built from two instructions, so it needs no object file. Not named
// tardy_*: the tests' leftover checks count only tardy's own programs.
int load_floor_prog() {
    const bpf_insn insns[] = {
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, TARDY_TC_NEXT},  // r0 = TC_NEXT
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},                               // exit
    };
    return bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "bench_floor", "GPL", insns, 2, nullptr);
}

double median(std::vector<uint32_t> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

tardy_rule rule(uint32_t slot, uint64_t delay_ns, uint32_t loss_ppm) {
    tardy_rule r{};
    r.slot = slot;
    r.delay_ns = delay_ns;
    r.loss_ppm = loss_ppm;
    r.expires_ns = ~0ULL;
    return r;
}

}  // namespace

void ingress_rule(tardy_rule& r) { r.scope = TARDY_SCOPE_INGRESS; }

// `tc_bench [WORDS...]`: only the cases whose name contains one of the arguments (e.g.
// "30% loss" "another"), for a quick comparison of two builds; all of them without.
int main(int argc, char** argv) {
    auto wanted = [&](const std::string& name) {
        for (int i = 1; i < argc; i++)
            if (name.find(argv[i]) != std::string::npos) return true;
        return argc < 2;
    };
    SelfInCgroup cg("tardy-bench");
    if (!cg.ok()) {
        std::fprintf(stderr, "tc_bench: needs root and cgroup v2 (run `sudo make bench`)\n");
        return 1;
    }
    struct Case {
        const char* name;
        uint64_t target;  // cgroup id whose rule the packet meets (0: none of its own)
        uint64_t delay_ns;
        uint32_t loss_ppm;
        int filtered = 0;  // 1: the rule filters on 8 peers and a port, none of them the packet's;
                           // 8: 8 rules on the cgroup, each on its own port, the last one the packet's
        void (*shape)(tardy_rule&) = nullptr;  // netem's shapes on the rule (bpf/lib/shape.bpf.h)
        int ingress = 0;  // 1: the ingress delay program (tardy_tc_ingress) on a UDP packet to a
                          // socket of this process; 2: the same to a port no socket has
    };
    const Case cases[] = {
        {"another cgroup's packet", 0, 0, 0},
        {"target packet, 30% loss", cg.leaf_id, 0, 300000},
        {"target packet, 50 ms delay", cg.leaf_id, 50'000'000, 0},
        {"target, filter misses (8 peers)", cg.leaf_id, 0, 300000, 1},
        {"target, 8 filtered rules, 30% loss", cg.leaf_id, 0, 300000, 8},
        {"target, loss 5% in bursts of 4", cg.leaf_id, 0, 0, 0,
         [](tardy_rule& r) { r.ge_p_ppm = 13158, r.ge_r_ppm = 250000, r.ge_bad_loss_ppm = TARDY_PPM; }},
        {"target, 50ms normal jitter, corr 25%", cg.leaf_id, 50'000'000, 0, 0,
         [](tardy_rule& r) { r.jitter_ns = 10'000'000, r.dist = TARDY_DIST_NORMAL, r.corr_ppm = 250000; }},
        {"target, 50ms, reorder 25%", cg.leaf_id, 50'000'000, 0, 0, [](tardy_rule& r) { r.reorder_ppm = 250000; }},
        {"target, rate 10mbit (queue full)", cg.leaf_id, 0, 0, 0,
         [](tardy_rule& r) { r.rate_bytes_per_s = 1'250'000; }},
        {"target, duplicate 1%", cg.leaf_id, 0, 0, 0, [](tardy_rule& r) { r.duplicate_ppm = 10000; }},
        {"target, reset 10% (headers read)", cg.leaf_id, 0, 0, 0, [](tardy_rule& r) { r.reset_ppm = 100000; }},
        {"target, corrupt 100% (a bit flipped)", cg.leaf_id, 0, 0, 0, [](tardy_rule& r) { r.corrupt_ppm = TARDY_PPM; }},
        {"target, corrupt 1%", cg.leaf_id, 0, 0, 0, [](tardy_rule& r) { r.corrupt_ppm = 10000; }},
        {"ingress: packet for no socket", cg.leaf_id, 50'000'000, 0, 0, ingress_rule, 2},
        {"ingress: another cgroup's socket", 0, 50'000'000, 0, 0, ingress_rule, 1},
        {"ingress: target socket, 50 ms delay", cg.leaf_id, 50'000'000, 0, 0, ingress_rule, 1},
    };
    // The ingress cases' socket: UDP on 127.0.0.1, in this process's (the target's) cgroup.
    int usock = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in ua{};
    ua.sin_family = AF_INET;
    ua.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t ulen = sizeof ua;
    if (usock < 0 || bind(usock, reinterpret_cast<sockaddr*>(&ua), ulen) != 0 ||
        getsockname(usock, reinterpret_cast<sockaddr*>(&ua), &ulen) != 0) {
        std::fprintf(stderr, "tc_bench: a UDP socket on loopback: %s\n", std::strerror(errno));
        return 1;
    }
    auto in_pkt = make_packet(Family::V4, Proto::Udp, 1400, "127.0.0.1", ntohs(ua.sin_port));
    auto in_miss = make_packet(Family::V4, Proto::Udp, 1400, "127.0.0.1", static_cast<uint16_t>(ntohs(ua.sin_port) + 1));
    auto pkt = make_packet(Family::V4, Proto::Tcp, 1400);
    int floor_fd = load_floor_prog();
    if (floor_fd < 0) {
        std::fprintf(stderr, "tc_bench: loading the empty program: %s\n", std::strerror(errno));
        return 1;
    }
    // The floor runs once before every round of every case, so it sees the same moments.
    std::vector<uint32_t> floor_runs;
    double med[std::size(cases)][2];
    for (size_t ci = 0; ci < std::size(cases); ci++) {
        const Case& c = cases[ci];
        med[ci][0] = med[ci][1] = -1;
        if (!wanted(c.name)) continue;
        for (int variant = 0; variant < 2; variant++) {
            int rules = variant == 0 ? 1 : 10000;
            auto obj = TcObject::load({"", 0});
            if (!obj) {
                std::fprintf(stderr, "tc_bench: %s\n", obj.error().message.c_str());
                return 1;
            }
            (*obj)->control()->armed = 1;
            // Rules for cgroup ids that no packet has: the map's size is all they change.
            for (int i = 1; i < rules; i++) (void)(*obj)->put_rule(0xfff0000000ULL + i, rule(i, 0, 0));
            uint64_t own = c.target ? c.target : 0xfff0000000ULL;  // "another cgroup": only foreign rules
            if (c.filtered == 0) {
                tardy_rule r = rule(0, c.delay_ns, c.loss_ppm);
                if (c.shape) c.shape(r);
                (void)(*obj)->put_rule(own, r);
            } else {
                tardy_rule_set set{};
                for (int k = 0; k < c.filtered; k++) {
                    FilterArgs fa;
                    if (c.filtered == 1)
                        for (int p = 0; p < 8; p++) fa.peers.push_back("10.9." + std::to_string(p) + ".0/24");
                    fa.port = std::to_string(c.filtered == 1 ? 7007 : 7000 + k);  // make_packet: port 7007
                    auto f = build_filter(fa);
                    auto t = f ? encode(*f) : Result<tardy_filter>(f.error());
                    if (!t) {
                        std::fprintf(stderr, "tc_bench: filter: %s\n", t.error().message.c_str());
                        return 1;
                    }
                    tardy_rule r = rule(static_cast<uint32_t>(16000 + k), c.delay_ns, c.loss_ppm);
                    r.filtered = 1;
                    r.filter = *t;
                    (void)(*obj)->put_slot_rule(r);
                    set.slots[set.n++] = r.slot;
                    set.parse = 1;
                }
                (void)(*obj)->put_rules(own, set);
            }
            std::vector<uint32_t> v;
            int fd = c.ingress ? (*obj)->ingress_delay_prog_fd() : (*obj)->egress_prog_fd();
            const auto& p = c.ingress == 1 ? in_pkt : c.ingress == 2 ? in_miss : pkt;
            for (int r = 0; r < kRounds; r++) {
                floor_runs.push_back(run_ns(floor_fd, pkt));
                v.push_back(run_ns(fd, p));
            }
            med[ci][variant] = median(v);
        }
    }
    close(floor_fd);
    close(usock);
    const double fl = std::max(1.0, median(floor_runs));
    std::printf("TC egress program (TCX variant; the ingress rows: the ingress delay program), ns per packet (median of %d rounds x %d runs, "
                "BPF_PROG_TEST_RUN)\n", kRounds, kRepeat);
    std::printf("floor: an empty SCHED_CLS program run the same way, %zu rounds: %.0f ns\n", floor_runs.size(), fl);
    std::printf("%-36s %8s %8s %12s %8s %8s\n", "case", "1 rule", "x floor", "10000 rules", "x floor",
                "growth");
    for (size_t ci = 0; ci < std::size(cases); ci++)
        if (med[ci][0] >= 0)
            std::printf("%-36s %8.0f %8.2f %12.0f %8.2f %8.2f\n", cases[ci].name, med[ci][0], med[ci][0] / fl,
                    med[ci][1], med[ci][1] / fl, med[ci][1] / std::max(1.0, med[ci][0]));
    return 0;
}
