// SPDX-License-Identifier: Apache-2.0
// `make bench`: what tardy's TC egress program costs traffic that no rule matches (a
// bystander), end to end. Two network namespaces joined by a veth pair; the client (the main
// thread, in -a) is in a scratch cgroup that no rule names, the servers (threads) in -b. The
// program is linked to the client's veth as the agent links it (a TCX link), the control map
// armed, with one rule (30% loss) for another cgroup, or that and 9,999 more for cgroup ids
// that do not exist. Three cases, nothing attached / 1 rule / 10,000 rules, alternate in short
// blocks inside every round (each first in turn; the link made before a block, closed after
// it), so the machine's swings fall on all three: UDP 1-byte round trips, then one TCP stream.
// Every thread runs on one CPU. Reported: the median of the rounds, its ratio to nothing
// attached, the median and spread of the per-round ratios; then the program's runs and time
// per run, from a last pass with BPF_ENABLE_STATS. `--rounds N` (default 15, about 8 s each).
//
// Traffic goes only between the two namespaces. The namespaces (and with them the veth), the
// cgroups and the link go on every exit, Ctrl-C and SIGTERM included (after a SIGKILL the
// link goes with the process; the namespaces and the empty cgroups stay).
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "../common/bench.hpp"
#include "../common/self_cgroup.hpp"
#include "loader/tc_object.hpp"
#include "sys/cgroup.hpp"
#include "sys/netns.hpp"
#include "sys/process.hpp"

using namespace tardy;
using namespace tardy::test;

namespace {

constexpr int kDefaultRounds = 15;  // --rounds N: more rounds, a tighter median
constexpr int kUdpBlocks = 10;        // per round, the three cases in each, then
constexpr int kTcpBlocks = 6;         // these, under one TCP stream per round
constexpr int kTrips = 500;           // UDP round trips per case per block
constexpr int kWarm = 50;             // and before them, unmeasured
constexpr double kStreamS = 0.3;      // the stream, counted per case per block
constexpr double kSettleS = 0.05;     // and let run before that, after the link changed
constexpr double kStreamWarmS = 0.3;  // the new stream, before its first block
constexpr int kManyRules = 10000;
constexpr uint16_t kUdpPort = 7007, kTcpPort = 7008;

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

uint64_t now_ns() {
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1'000'000'000ULL + t.tv_nsec;
}

bool fail(const char* what) {
    std::fprintf(stderr, "bystander_bench: %s: %s\n", what, g_stop ? "interrupted" : std::strerror(errno));
    return false;
}
bool fail(const Error& e) { return std::fprintf(stderr, "bystander_bench: %s\n", e.message.c_str()), false; }

// The servers' threads take no signals: SIGINT, SIGTERM and the watchdog's SIGALRM reach
// the main thread, whose blocked call then fails with EINTR.
void block_signals() {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
}

void timeout(int fd, int opt, int sec) {
    const timeval tv{sec, 0};
    (void)setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof tv);
}

sockaddr_in addr(const char* ip, uint16_t port) {
    sockaddr_in a{AF_INET, htons(port), {}, {}};
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

Result<void> ip(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"ip"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run_cmd(argv);
    if (!r) return r.error();
    if (r->status != 0) return Error::other("`ip " + args[0] + " " + args[1] + " ...` failed: " + r->err);
    return ok();
}

// Namespaces <name>-a and <name>-b and the veth pair <name>a/<name>b between them. Deleting
// the namespaces deletes the pair.
struct Lab {
    std::string name = "tdby" + std::to_string(getpid());
    bool made_a = false, made_b = false;
    Result<void> build() {
        const std::string a = name + "-a", b = name + "-b";
        TARDY_TRY(ip({"netns", "add", a}));
        made_a = true;
        TARDY_TRY(ip({"netns", "add", b}));
        made_b = true;
        TARDY_TRY(ip({"link", "add", name + "a", "netns", a, "type", "veth", "peer", "name", name + "b", "netns", b}));
        for (const auto& [ns, dev, ip4] :
             {std::tuple{a, name + "a", "198.18.0.1/24"}, {b, name + "b", "198.18.0.2/24"}}) {
            TARDY_TRY(ip({"-n", ns, "addr", "add", ip4, "dev", dev}));
            TARDY_TRY(ip({"-n", ns, "link", "set", "lo", "up"}));
            TARDY_TRY(ip({"-n", ns, "link", "set", dev, "up"}));
        }
        return ok();
    }
    ~Lab() {
        for (auto [made, ns] : {std::pair{made_a, name + "-a"}, {made_b, name + "-b"}})
            if (made) (void)ip({"netns", "del", ns});
    }
};

// A server socket on 198.18.0.2, made by the calling thread (in namespace -b).
Fd server_socket(int type, uint16_t port) {
    Fd s(socket(AF_INET, type | SOCK_CLOEXEC, 0));
    const sockaddr_in a = addr("198.18.0.2", port);
    if (!s.valid() || bind(s.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 ||
        (type == SOCK_STREAM && listen(s.get(), 16) != 0))
        return Fd();
    timeout(s.get(), SO_RCVTIMEO, 1);  // ends a server thread whose client has gone (and accept())
    return s;
}

bool connect_to(int fd, uint16_t port) {
    const sockaddr_in to = addr("198.18.0.2", port);
    return fd >= 0 && connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) == 0;
}

// 1-byte datagram, 1-byte answer from an echo thread, over a connected UDP socket: kTrips
// round trips in us, after kWarm unmeasured, added to `us`.
bool udp_trips(int srv, std::vector<double>& us) {
    std::jthread echo([srv] {
        block_signals();
        char b;
        sockaddr_in from{};
        socklen_t len = sizeof from;
        while (recvfrom(srv, &b, 1, 0, reinterpret_cast<sockaddr*>(&from), &len) == 1 && b != 'q')
            if (sendto(srv, &b, 1, 0, reinterpret_cast<sockaddr*>(&from), len) != 1) return;
    });
    Fd s(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    timeout(s.get(), SO_RCVTIMEO, 1);
    if (!connect_to(s.get(), kUdpPort)) return fail("UDP socket");
    char b = 'x';
    bool good = true;
    for (int i = 0; i < kWarm + kTrips && good; i++) {
        uint64_t t = now_ns();
        good = send(s.get(), &b, 1, 0) == 1 && recv(s.get(), &b, 1, 0) == 1 && !g_stop;
        if (i >= kWarm) us.push_back((now_ns() - t) / 1e3);
    }
    (void)send(s.get(), "q", 1, 0);  // ends the echo's loop (or its 1 s timeout does)
    return good ? true : fail("UDP round trip");
}

// One TCP stream that the cases take turns under (no new connection, no slow start or
// buffer autotuning between them): a thread writes 128 KiB at a time as fast as it goes, a
// thread reads and counts. Shutting the sockets down ends both.
struct Stream {
    Fd tx, rx;
    std::atomic<uint64_t> got{0};
    std::jthread writer, reader;
    bool start(int listener) {
        tx = Fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!connect_to(tx.get(), kTcpPort) || !(rx = Fd(accept4(listener, nullptr, nullptr, SOCK_CLOEXEC))).valid())
            return fail("TCP connect");
        writer = std::jthread([fd = tx.get()] {
            block_signals();
            std::vector<char> buf(128 << 10, 'x');
            while (write(fd, buf.data(), buf.size()) > 0) {
            }
        });
        reader = std::jthread([this] {
            block_signals();
            std::vector<char> buf(256 << 10);
            for (ssize_t n; (n = read(rx.get(), buf.data(), buf.size())) > 0;) got += n;
        });
        return true;
    }
    ~Stream() { (void)shutdown(tx.get(), SHUT_RDWR), (void)shutdown(rx.get(), SHUT_RDWR); }  // then join, close
};

bool pause_s(double s) { return std::this_thread::sleep_for(std::chrono::duration<double>(s)), !g_stop; }

// Bits read and the ns that took, added to `bits` and `ns`: kStreamS of the stream, after kSettleS.
bool read_rate(const Stream& st, double& bits, double& ns) {
    if (!pause_s(kSettleS)) return fail("TCP stream");
    uint64_t b0 = st.got, t0 = now_ns();
    if (!pause_s(kStreamS)) return fail("TCP stream");
    bits += (st.got - b0) * 8.0;
    ns += now_ns() - t0;
    return st.got > b0 ? true : fail("TCP stream stalled");
}

std::pair<uint64_t, uint64_t> runs_and_ns(int prog_fd) {
    bpf_prog_info i{};
    __u32 len = sizeof i;
    if (bpf_obj_get_info_by_fd(prog_fd, &i, &len) != 0) return {0, 0};
    return {i.run_cnt, i.run_time_ns};
}

// A loaded TC object, armed, with `rules` rules (30% loss): the first for `target` (a real
// cgroup with no process), the others for cgroup ids that do not exist.
Result<std::unique_ptr<TcObject>> load_armed(int rules, uint64_t target) {
    auto obj = TcObject::load({"", 0});
    if (!obj) return obj.error();
    tardy_rule r{};
    r.loss_ppm = 300000;
    r.expires_ns = ~0ULL;
    TARDY_TRY((*obj)->put_rule(target, r));
    for (int i = 1; i < rules; i++) {
        r.slot = i;
        TARDY_TRY((*obj)->put_rule(0xfff0000000ULL + i, r));
    }
    // The lease is read only after a match (docs/design.md); here it is far out, not renewed.
    (*obj)->control()->lease_deadline_ns = now_ns() + 3600'000'000'000ULL;
    (*obj)->control()->armed = 1;
    return std::move(*obj);
}

struct Case { const char* name; const TcObject* obj; /* null: no program attached */ };

}  // namespace

int main(int argc, char** argv) {
    const int rounds = bench_rounds(argc, argv, "bystander_bench", kDefaultRounds);
    if (rounds == 0) return 2;
    if (geteuid() != 0)
        return std::fprintf(stderr, "bystander_bench: needs root (namespaces, BPF): run `sudo make bench`\n"), 1;
    struct sigaction sa{};
    sa.sa_handler = on_signal;  // no SA_RESTART: a blocked call returns EINTR and the bench unwinds
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGALRM}) sigaction(sig, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);

    // The bystander: this process, in <cgroup2>/tardy-bybench-PID/leaf. The one real rule's
    // target is its sibling ".../target", which no process is in.
    SelfInCgroup cg("tardy-bybench");  // moves this process back and removes both at exit
    auto cgfs = CgroupFs::detect();
    if (!cg.ok() || !cgfs) return std::fprintf(stderr, "bystander_bench: needs cgroup v2\n"), 1;
    const std::string target_dir = cgfs->mount() + "/tardy-bybench-" + std::to_string(getpid()) + "/target";
    auto target = mkdir(target_dir.c_str(), 0755) == 0 ? cgfs->by_path(target_dir)
                                                        : Result<Cgroup>(Error::sys("mkdir " + target_dir, errno));
    if (!target) return fail(target.error()), 1;

    Lab lab;
    if (auto r = lab.build(); !r || g_stop) return fail(r ? Error::other("interrupted") : r.error()), 1;
    Fd ns_a(open(("/run/netns/" + lab.name + "-a").c_str(), O_RDONLY | O_CLOEXEC));
    Fd ns_b(open(("/run/netns/" + lab.name + "-b").c_str(), O_RDONLY | O_CLOEXEC));
    Fd home(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    Fd udp_srv, tcp_srv;
    auto made = in_netns(ns_b.get(), [&]() -> Result<void> {
        udp_srv = server_socket(SOCK_DGRAM, kUdpPort);
        tcp_srv = server_socket(SOCK_STREAM, kTcpPort);
        if (!udp_srv.valid() || !tcp_srv.valid()) return Error::sys("server sockets in namespace -b", errno);
        return ok();
    });
    if (!made) return fail(made.error()), 1;

    auto one = load_armed(1, target->id), many = load_armed(kManyRules, target->id);
    if (!one || !many) return fail(!one ? one.error() : many.error()), 1;

    // The main thread is the client: it moves to namespace -a (and back before the lab goes).
    if (!ns_a.valid() || !home.valid() || setns(ns_a.get(), CLONE_NEWNET) != 0) return fail("enter namespace -a"), 1;
    struct Back { int fd; ~Back() { (void)setns(fd, CLONE_NEWNET); } } back{home.get()};
    const int ifindex = static_cast<int>(if_nametoindex((lab.name + "a").c_str()));
    if (ifindex == 0) return fail("the client's veth"), 1;
    // Every thread on one CPU (the servers', made later, inherit it): the round trip otherwise
    // switches between ~15 us (one CPU) and 20-30 us (two) with where the scheduler puts the
    // echo, far more than the effect measured; and the shortest round trip is the harshest test.
    cpu_set_t cpu;
    CPU_ZERO(&cpu);
    CPU_SET(sched_getcpu(), &cpu);
    if (sched_setaffinity(0, sizeof cpu, &cpu) != 0) return fail("pin to one CPU"), 1;

    // Runs `body` with the program linked for it alone (the link closed on return).
    auto no_clsact = [](uint32_t, uint32_t, bool) -> Result<void> { return Error::other("no TCX on this kernel"); };
    auto linked = [&](const Case& c, const std::function<bool()>& body) {
        std::optional<TcAttachment> link;
        if (c.obj) {
            auto a = TcAttachment::attach_egress(*c.obj, ifindex, TcAttachment::Mode::Auto, no_clsact);
            if (!a) return fail(a.error());
            if (a->kind() != TcAttachment::Kind::Tcx) return fail(Error::other("not a TCX link"));
            link.emplace(std::move(*a));
        }
        alarm(60);  // the watchdog: a lost packet must not hang the bench
        bool good = body();
        alarm(0);
        return good;
    };
    const Case cases[] = {{"no tardy (nothing attached)", nullptr},
                          {"attached, 1 rule (another cgroup)", one->get()},
                          {"attached, 10000 rules (others)", many->get()}};
    constexpr size_t kCases = std::size(cases);
    std::vector<double> rtt[kCases], gbps[kCases];  // per round: the median trip, the bits per ns
    const uint64_t t_start = now_ns();
    for (int r = 0; r < rounds; r++) {
        std::vector<double> trips[kCases];
        double bits[kCases] = {}, ns[kCases] = {};
        std::optional<Stream> st;  // started after the UDP blocks
        for (int b = 0; b < kUdpBlocks + kTcpBlocks; b++) {
            if (b == kUdpBlocks && (!st.emplace().start(tcp_srv.get()) || !pause_s(kStreamWarmS)))
                return fail("TCP stream"), 1;
            for (size_t i = 0; i < kCases; i++) {
                size_t c = (i + r + b) % kCases;  // each case goes first in turn
                if (!linked(cases[c], [&] {
                        return st ? read_rate(*st, bits[c], ns[c]) : udp_trips(udp_srv.get(), trips[c]);
                    }))
                    return 1;
            }
        }
        for (size_t c = 0; c < kCases; c++) {
            rtt[c].push_back(median(trips[c]));
            gbps[c].push_back(bits[c] / ns[c]);
        }
    }
    const double secs = (now_ns() - t_start) / 1e9;

    std::printf("TC egress program (TCX link on the client's veth), traffic no rule matches, end to end over a "
                "veth pair\nbetween two namespaces, every thread on one CPU (median of %d rounds, %.0f s; in every "
                "round the cases\nalternate in %d blocks of %d UDP 1-byte round trips after %d, then in %d blocks "
                "of %.2f s of one TCP stream,\ncounted from %.2f s after the link changed; per case per round: the "
                "median trip, the bits read over the time)\n", rounds, secs, kUdpBlocks, kTrips, kWarm, kTcpBlocks,
                kStreamS, kSettleS);
    std::printf("%-36s %7s %6s %6s %11s %7s %6s %6s %11s\n", "case", "RTT us", "x", "paired", "p25-p75",
                "Gbit/s", "x", "paired", "p25-p75");
    for (size_t c = 0; c < kCases; c++) {
        std::vector<double> pr, pg;
        for (int r = 0; r < rounds; r++) {
            pr.push_back(rtt[c][r] / rtt[0][r]);
            pg.push_back(gbps[c][r] / gbps[0][r]);
        }
        std::printf("%-36s %7.2f %6.3f %6.3f %5.3f-%5.3f %7.2f %6.3f %6.3f %5.3f-%5.3f\n", cases[c].name,
                    median(rtt[c]), median(rtt[c]) / median(rtt[0]), median(pr), quantile(pr, 0.25),
                    quantile(pr, 0.75), median(gbps[c]), median(gbps[c]) / median(gbps[0]), median(pg),
                    quantile(pg, 0.25), quantile(pg, 0.75));
    }

    // That the program was on the path and matched nothing, and the time spent in it: one more
    // pass of the 10000-rule case with the kernel counting and timing each run (that pass's
    // own end-to-end figures are not used; the timing adds a little to every run).
    Fd stats(bpf_enable_stats(BPF_STATS_RUN_TIME));
    if (!stats.valid()) return fail("BPF_ENABLE_STATS"), 1;
    const int prog = (*many)->egress_prog_fd();
    std::pair<uint64_t, uint64_t> at[4];  // before and after the round trips, then 1 s of stream
    std::vector<double> us;
    uint64_t read = 0;
    bool good = linked(cases[2], [&] {
        Stream st;
        at[0] = runs_and_ns(prog);
        if (!udp_trips(udp_srv.get(), us)) return false;
        at[1] = runs_and_ns(prog);
        if (!st.start(tcp_srv.get()) || !pause_s(kStreamWarmS)) return false;
        at[2] = runs_and_ns(prog);  // from here the stream's packets alone
        read = st.got;
        if (!pause_s(1)) return false;
        at[3] = runs_and_ns(prog);
        read = st.got - read;
        return true;
    });
    auto one_c = (*one)->counters(0), many_c = (*many)->counters(0);
    if (!good || !one_c || !many_c) return !good ? 1 : (fail(!one_c ? one_c.error() : many_c.error()), 1);
    const double trips = kWarm + kTrips, udp_runs = std::max<double>(1, at[1].first - at[0].first),
                 tcp_runs = std::max<double>(1, at[3].first - at[2].first), per_run_bytes = read / tcp_runs,
                 udp_ns = (at[1].second - at[0].second) / udp_runs, tcp_ns = (at[3].second - at[2].second) / tcp_runs;
    std::printf("\nInside the program (BPF_ENABLE_STATS, one more pass of the 10000-rule case):\n");
    std::printf("UDP echo: %.2f runs per round trip, %.0f ns per run: %.2f%% of the no-tardy round trip\n",
                udp_runs / trips, udp_ns, udp_runs / trips * udp_ns / 1e3 / median(rtt[0]) * 100);
    std::printf("TCP stream: a run per %.1f KiB sent (GSO), %.0f ns per run: %.2f%% of the time that takes at the "
                "no-tardy rate\n", per_run_bytes / 1024, tcp_ns, tcp_ns / (per_run_bytes * 8 / median(gbps[0])) * 100);
    std::printf("packets matched by the rules (the other cgroup's, of both objects): %llu\n",
                static_cast<unsigned long long>(one_c->matched + many_c->matched));
    return 0;
}
