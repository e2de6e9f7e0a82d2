// SPDX-License-Identifier: Apache-2.0
// `make bench`: what the cohort-metric programs (bpf/metrics.bpf.c) cost a cohort. Per packet:
// the cgroup_skb programs under BPF_PROG_TEST_RUN with repeat, next to an empty CGROUP_SKB
// program run the same way (the floor). End to end: TCP connect+accept+close, a TCP 1-byte
// echo and a UDP 1-byte echo on 127.0.0.1, with the programs linked to a scratch cohort
// cgroup (MetricsObject::attach) and not linked, the cases alternating inside every round
// and the median of the rounds reported, so the ratios are what to read.
//
// The client's sockets are made in the cohort; the server's (a thread of this process) either
// outside it (made in this process's own cgroup before it joins the cohort: the client side
// measured) or in it (both ends measured: the worst case). A socket is in the cgroup of the
// task that made it, an accepted socket in its listener's.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>  // TCP_NODELAY too: <netinet/tcp.h> clashes with it (packets.hpp)
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../common/bench.hpp"
#include "../common/packets.hpp"
#include "../common/self_cgroup.hpp"
#include "loader/metrics_object.hpp"
#include "metrics.skel.h"
#include "sys/cgroup.hpp"

using namespace tardy;
using namespace tardy::test;

namespace {

constexpr int kRepeat = 1'000'000;
constexpr int kPacketRounds = 7;
constexpr int kDefaultRounds = 21;  // --rounds N: more rounds, a tighter median
constexpr int kConns = 1000;   // per case per round
constexpr int kTrips = 8000;   // round trips per case per round
constexpr int kWarm = 200;     // connections or round trips before the clock starts

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

uint64_t now_ns() {
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1'000'000'000ULL + t.tv_nsec;
}

double fail(const char* what) {
    std::fprintf(stderr, "metrics_bench: %s: %s\n", what, g_stop ? "interrupted" : std::strerror(errno));
    return -1;
}

struct Fd {  // an owned file descriptor
    int fd;
    explicit Fd(int f = -1) : fd(f) {}
    Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
    ~Fd() { (void)(fd >= 0 && close(fd)); }
};

// ---- per packet ----------------------------------------------------------------------------

uint32_t run_ns(int prog_fd, const std::vector<uint8_t>& pkt) {
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt.data(), .data_out = nullptr,
                .data_size_in = static_cast<__u32>(pkt.size()), .data_size_out = 0, .ctx_in = nullptr,
                .ctx_out = nullptr, .ctx_size_in = 0, .ctx_size_out = 0, .retval = 0, .repeat = kRepeat);
    if (bpf_prog_test_run_opts(prog_fd, &o) != 0 || o.retval != 1) return 0;
    return o.duration;
}

// The empty program: `r0 = 1 (pass); exit`, from raw instructions. Not named tardy_*.
int load_floor_prog() {
    const bpf_insn insns[] = {
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 1},
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
    };
    LIBBPF_OPTS(bpf_prog_load_opts, o, .expected_attach_type = BPF_CGROUP_INET_EGRESS);
    return bpf_prog_load(BPF_PROG_TYPE_CGROUP_SKB, "bench_floor", "GPL", insns, 2, &o);
}

// An IPv4/TCP ACK (PSH) on 127.0.0.1 with `payload` bytes. The test run gives it a socket in
// this process's cgroup: the cohort, whose counters the program finds.
std::vector<uint8_t> tcp_packet(size_t payload) {
    auto pkt = make_packet(Family::V4, Proto::Tcp, payload, "127.0.0.1");
    auto* ip = reinterpret_cast<iphdr*>(pkt.data() + sizeof(ethhdr));
    inet_pton(AF_INET, "127.0.0.1", &ip->saddr);
    auto* t = reinterpret_cast<tcphdr*>(pkt.data() + sizeof(ethhdr) + sizeof(iphdr));
    t->syn = 0;
    t->ack = 1;
    t->psh = 1;
    return pkt;
}

bool per_packet() {
    std::unique_ptr<tardy_metrics, void (*)(tardy_metrics*)> skel(tardy_metrics__open_and_load(),
                                                                   tardy_metrics__destroy);
    Fd floor(load_floor_prog());
    if (!skel || floor.fd < 0) return fail("loading metrics.bpf.o and an empty CGROUP_SKB program"), false;
    struct Case {
        const char* name;
        int fd;
        std::vector<uint8_t> pkt;
        std::vector<double> ns;
    };
    Case cases[] = {
        {"egress, TCP ACK, 1 byte", bpf_program__fd(skel->progs.tardy_metrics_egress), tcp_packet(1), {}},
        {"ingress, TCP ACK, 1 byte", bpf_program__fd(skel->progs.tardy_metrics_ingress), tcp_packet(1), {}},
        {"egress, TCP ACK, 1400 bytes", bpf_program__fd(skel->progs.tardy_metrics_egress), tcp_packet(1400), {}},
    };
    std::vector<double> floor_runs;
    bool ok = true;
    for (int r = 0; r < kPacketRounds && ok; r++)
        for (auto& c : cases) {
            uint32_t f = run_ns(floor.fd, c.pkt), ns = run_ns(c.fd, c.pkt);
            ok = ok && f && ns;
            floor_runs.push_back(f);
            c.ns.push_back(ns);
        }
    if (!ok) return fail("BPF_PROG_TEST_RUN of a cgroup_skb program"), false;
    const double fl = std::max(1.0, median(floor_runs));
    std::printf("Cohort metric programs (cgroup_skb), ns per packet (median of %d rounds x %d runs, "
                "BPF_PROG_TEST_RUN, IPv4/TCP on 127.0.0.1)\n", kPacketRounds, kRepeat);
    std::printf("floor: an empty CGROUP_SKB program run the same way, %zu rounds: %.0f ns\n", floor_runs.size(), fl);
    std::printf("%-36s %8s %8s %8s\n", "case", "ns", "x floor", "added");
    for (const auto& c : cases) {
        double m = median(c.ns);
        std::printf("%-36s %8.0f %8.2f %8.0f\n", c.name, m, m / fl, m - fl);
    }
    return true;
}

// ---- end to end on loopback ----------------------------------------------------------------

sockaddr_in loopback(uint16_t port) { return sockaddr_in{AF_INET, htons(port), {htonl(INADDR_LOOPBACK)}, {}}; }

void timeout(int fd, int sec) {
    const timeval tv{sec, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

void nodelay(int fd) {
    const int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// A server socket on 127.0.0.1 (an ephemeral port), in the cgroup of the calling task. Its
// receive timeout ends a server thread whose client has gone.
struct Server {
    Fd fd;
    uint16_t port = 0;
};

Server make_server(int type) {
    Server s{Fd(socket(AF_INET, type | SOCK_CLOEXEC, 0)), 0};
    sockaddr_in a = loopback(0);
    socklen_t len = sizeof a;
    if (s.fd.fd < 0 || bind(s.fd.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        (type == SOCK_STREAM && listen(s.fd.fd, 1024) != 0) ||
        getsockname(s.fd.fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
        return Server{Fd(), 0};
    timeout(s.fd.fd, 5);
    s.port = ntohs(a.sin_port);
    return s;
}

// The server side runs in a thread that takes no signals: SIGINT, SIGTERM and the watchdog's
// SIGALRM reach the client (main) thread, whose blocked call then fails with EINTR.
std::jthread serve(std::function<void()> fn) {
    return std::jthread([fn = std::move(fn)] {
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, nullptr);
        fn();
    });
}

bool connect_lo(int fd, uint16_t port) {
    const sockaddr_in to = loopback(port);
    return fd >= 0 && connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) == 0;
}

// Runs `step` kWarm + n times, the clock started after the first kWarm; us per step.
template <typename Step>
double timed(int n, const char* what, Step step) {
    uint64_t t0 = 0;
    for (int i = 0; i < kWarm + n; i++) {
        if (i == kWarm) t0 = now_ns();
        if (!step() || g_stop) return fail(what);
    }
    return (now_ns() - t0) / 1e3 / n;
}

// Connect, the server accepts and closes, the client reads the end and closes; us per connection.
double tcp_connect_us(const Server& srv) {
    int lfd = srv.fd.fd;
    auto t = serve([lfd] {
        for (int i = 0, a; i < kWarm + kConns && (a = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC)) >= 0; i++)
            close(a);
    });
    return timed(kConns, "TCP connect, accept and close", [&] {
        Fd s(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        char b;
        return connect_lo(s.fd, srv.port) && read(s.fd, &b, 1) == 0;
    });
}

// One connection, then 1-byte request, 1-byte answer; us per round trip.
double tcp_echo_us(const Server& srv) {
    int lfd = srv.fd.fd;
    auto t = serve([lfd] {
        Fd a(accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC));
        nodelay(a.fd);
        timeout(a.fd, 5);
        char b;
        while (read(a.fd, &b, 1) == 1 && write(a.fd, &b, 1) == 1) {
        }
    });
    Fd s(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));  // closing it ends the server's loop
    if (!connect_lo(s.fd, srv.port)) return fail("TCP connect for the echo");
    nodelay(s.fd);
    char b = 'x';
    return timed(kTrips, "TCP echo", [&] { return write(s.fd, &b, 1) == 1 && read(s.fd, &b, 1) == 1; });
}

// 1-byte datagram, 1-byte answer, over a connected UDP socket; us per round trip.
double udp_echo_us(const Server& srv) {
    int ufd = srv.fd.fd;
    auto t = serve([ufd] {
        char b;
        sockaddr_in from{};
        socklen_t len = sizeof from;
        while (recvfrom(ufd, &b, 1, 0, reinterpret_cast<sockaddr*>(&from), &len) == 1 && b != 'q')
            if (sendto(ufd, &b, 1, 0, reinterpret_cast<sockaddr*>(&from), len) != 1) return;
    });
    Fd s(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!connect_lo(s.fd, srv.port)) return fail("UDP socket");
    char b = 'x';
    double us = timed(kTrips, "UDP echo", [&] { return send(s.fd, &b, 1, 0) == 1 && recv(s.fd, &b, 1, 0) == 1; });
    (void)send(s.fd, "q", 1, 0);  // ends the server's loop
    return us;
}

// The programs linked to the cohort (sock_ops, egress, ingress), asked of the kernel: the
// loader keeps its programs to itself. With BPF_ENABLE_STATS the kernel times every run.
std::vector<Fd> linked_programs(const std::string& cgroup) {
    std::vector<Fd> out;
    Fd dir(open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    for (auto type : {BPF_CGROUP_SOCK_OPS, BPF_CGROUP_INET_EGRESS, BPF_CGROUP_INET_INGRESS}) {
        __u32 ids[8], n = 8;
        if (bpf_prog_query(dir.fd, type, 0, nullptr, ids, &n) != 0 || n != 1) return {};
        out.emplace_back(bpf_prog_get_fd_by_id(ids[0]));
    }
    return out;
}

std::pair<uint64_t, uint64_t> runs_and_ns(int prog_fd) {
    bpf_prog_info i{};
    __u32 len = sizeof i;
    if (bpf_obj_get_info_by_fd(prog_fd, &i, &len) != 0) return {0, 0};
    return {i.run_cnt, i.run_time_ns};
}

struct Case {
    const char* name;
    bool linked, server_in;
} const kCaseList[] = {{"not linked", false, false},
                       {"linked, server outside the cohort", true, false},
                       {"linked, both ends in the cohort", true, true}};
struct Measure {
    const char* name;
    double (*fn)(const Server&);
    const Server *out, *in;
    int ops;  // per case per round
};

}  // namespace

int main(int argc, char** argv) {
    const int rounds = bench_rounds(argc, argv, "metrics_bench", kDefaultRounds);
    if (rounds == 0) return 2;
    if (geteuid() != 0) {
        std::fprintf(stderr, "metrics_bench: needs root (BPF programs, cgroup v2): run `sudo make bench`\n");
        return 1;
    }
    struct sigaction sa{};
    sa.sa_handler = on_signal;  // no SA_RESTART: a blocked call returns EINTR and the bench unwinds
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGALRM}) sigaction(sig, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);
    auto cgfs = CgroupFs::detect();
    auto home = cgfs ? cgfs->by_pid(getpid()) : Result<Cgroup>(Error::user("no cgroup v2"));
    if (!home) return std::fprintf(stderr, "metrics_bench: needs cgroup v2: %s\n", home.error().message.c_str()), 1;
    // The servers outside the cohort are made before this process joins it.
    Server tcp_out = make_server(SOCK_STREAM), udp_out = make_server(SOCK_DGRAM);
    SelfInCgroup cg("tardy-mbench");  // moves this process back and removes the cgroup at exit
    auto cohort = cg.ok() ? cgfs->by_pid(getpid()) : Result<Cgroup>(Error::user("no scratch cgroup"));
    if (!cohort) return std::fprintf(stderr, "metrics_bench: cannot make a scratch cgroup under %s\n",
                                     cgfs->mount().c_str()), 1;
    Server tcp_in = make_server(SOCK_STREAM), udp_in = make_server(SOCK_DGRAM);
    if (!tcp_out.port || !udp_out.port || !tcp_in.port || !udp_in.port) return fail("servers on 127.0.0.1"), 1;
    if (!per_packet()) return 1;
    auto obj = MetricsObject::load();
    if (!obj) return std::fprintf(stderr, "metrics_bench: %s\n", obj.error().message.c_str()), 1;
    const Measure measures[] = {
        {"TCP connect+accept+close, us per connection", tcp_connect_us, &tcp_out, &tcp_in, kConns},
        {"TCP 1-byte echo, us per round trip", tcp_echo_us, &tcp_out, &tcp_in, kTrips},
        {"UDP 1-byte echo, us per round trip", udp_echo_us, &udp_out, &udp_in, kTrips},
    };
    constexpr size_t kCases = std::size(kCaseList), kMeasures = std::size(measures);
    // One measurement of one case, the programs linked for it alone (detached on return).
    // `during`, when given, runs while they are linked, before and after the measurement.
    auto once = [&](const Measure& m, const Case& c, const std::function<void()>& during = {}) {
        std::vector<CgroupLink> links;
        if (c.linked) {
            auto l = (*obj)->attach(cohort->path);
            if (!l) return std::fprintf(stderr, "metrics_bench: %s\n", l.error().message.c_str()), -1.0;
            links = std::move(*l);
        }
        if (during) during();
        alarm(60);  // the watchdog: a lost packet must not hang the bench
        double v = m.fn(c.server_in ? *m.in : *m.out);
        alarm(0);
        if (during) during();
        return v;
    };
    std::vector<double> us[kMeasures][kCases];
    for (int r = 0; r < rounds; r++)
        for (size_t m = 0; m < kMeasures; m++)
            for (size_t i = 0; i < kCases; i++) {
                size_t c = (i + r) % kCases;  // each case goes first in some rounds
                double v = once(measures[m], kCaseList[c]);
                if (v < 0) return 1;
                us[m][c].push_back(v);
            }
    std::printf("\nCohort metric programs end to end on 127.0.0.1 (median of %d rounds, the cases alternating "
                "in every round;\n%d connections or %d round trips per case per round; the client in the "
                "cohort, the server a thread)\n", rounds, kConns, kTrips);
    std::printf("%-46s %-34s %8s %8s %8s %11s\n", "measurement", "case", "median", "ratio", "paired", "p25-p75");
    for (size_t m = 0; m < kMeasures; m++)
        for (size_t c = 0; c < kCases; c++) {
            std::vector<double> paired;
            for (int r = 0; r < rounds; r++) paired.push_back(us[m][c][r] / us[m][0][r]);
            std::printf("%-46s %-34s %8.2f %8.3f %8.3f %5.3f-%5.3f\n", c == 0 ? measures[m].name : "",
                        kCaseList[c].name, median(us[m][c]), median(us[m][c]) / median(us[m][0]), median(paired),
                        quantile(paired, 0.25), quantile(paired, 0.75));
        }
    // One more pass of the linked cases with the kernel timing each program run: how much of
    // what the programs add end to end is spent in them (the rest: the hooks around them).
    Fd stats(bpf_enable_stats(BPF_STATS_RUN_TIME));
    if (stats.fd < 0) return fail("BPF_ENABLE_STATS (no time per program)"), 0;
    std::printf("\nInside the programs (BPF_ENABLE_STATS, one pass), per connection or round trip: runs, ns\n");
    std::printf("%-46s %-34s %6s %6s %6s %6s %6s %6s %8s %8s\n", "measurement", "case", "sockop", "ns", "egress",
                "ns", "ingrs", "ns", "all ns", "e2e add");
    for (size_t m = 0; m < kMeasures; m++)
        for (size_t c = 1; c < kCases; c++) {
            std::vector<Fd> progs;
            std::vector<std::pair<uint64_t, uint64_t>> at[2];
            double v = once(measures[m], kCaseList[c], [&] {
                if (progs.empty()) progs = linked_programs(cohort->path);
                auto& a = at[at[0].empty() ? 0 : 1];
                for (const Fd& p : progs) a.push_back(runs_and_ns(p.fd));
            });
            if (v < 0 || progs.size() != 3) return fail("the linked programs"), 1;
            std::printf("%-46s %-34s", c == 1 ? measures[m].name : "", kCaseList[c].name);
            double all = 0, ops = measures[m].ops + kWarm;
            for (size_t p = 0; p < 3; p++) {
                double ns = (at[1][p].second - at[0][p].second) / ops;
                all += ns;
                std::printf(" %6.2f %6.0f", (at[1][p].first - at[0][p].first) / ops, ns);
            }
            std::printf(" %8.0f %8.0f\n", all, (median(us[m][c]) - median(us[m][0])) * 1e3);
        }
    // That the programs ran, and only where they should: the cohort's counters, and none for
    // the cgroup of the servers outside it.
    auto seen = (*obj)->read({cg.leaf_id, home->id});
    if (!seen) return std::fprintf(stderr, "metrics_bench: %s\n", seen.error().message.c_str()), 1;
    const CohortMetrics& c = (*seen)[cg.leaf_id];
    std::printf("counted in the cohort: %zu connects, %zu accepted, %zu packets out, %zu in, %zu RTT samples; "
                "outside it: %zu cgroups\n", size_t(c.connects), size_t(c.accepted), size_t(c.packets_out),
                size_t(c.packets_in), size_t(c.rtt_us.count()), seen->count(home->id));
    return 0;
}
