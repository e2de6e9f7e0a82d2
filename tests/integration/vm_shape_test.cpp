// SPDX-License-Identifier: Apache-2.0
// netem's shapes through the real kernel path of a stock kernel (sch_fq, sch_netem, sch_tbf),
// each beside the qdisc people use for it today on the same device in the same run: tardy's
// injection first, stopped (fq gone, the root qdisc back), then netem or tbf as the device's
// root qdisc, the same client against both. These run inside the VM
// (scripts/run-tests.sh runs them with the other Vm* tests under tests/vm/vm.sh); on a kernel
// without fq they fail rather than skip. Shapes that need no fq are proven on the host
// (shape_test.cpp), the draws themselves in the program (tests/bpf/tc_shape_prog_test.cpp).
//
// The UDP echoes here are pipelined: sent at a fixed interval from one socket without waiting
// for the answers (a waiting client would take the delay times the count), each answer matched
// by its sequence number, to an echo server of this file that returns the kernel's receive
// time of each request (SO_TIMESTAMPNS). So every echo gives the round trip and the request's
// one-way delay, which is what the faults act on (only the experiment's egress is faulted):
// under software emulation the round trip also pays the server's and the client's wake-ups,
// from 0.5 ms to 30 ms when the host is busy, and the one-way delay pays neither (its median
// without a fault is 0.04-0.15 ms). A lost echo is a request lost at the experiment's egress.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <tuple>

#include "../common/harness.hpp"
#include "vm_shape_tools.hpp"

using namespace tardy;
using namespace tardy::test;
using nlohmann::json;

namespace {

using namespace tardy::test::vmshape;

class VmShapeLab : public Lab {
protected:
    void SetUp() override {
        t0_ = mono_ms();
        auto fq = qdisc_kind_available("fq");
        ASSERT_TRUE(fq && *fq) << "the VM suite needs sch_fq (run it with `make vmtest`)";
        Lab::SetUp();
        if (HasFatalFailure() || IsSkipped()) return;
        ASSERT_NO_FATAL_FAILURE(start_stamp_server());
        mark_ = mono_ms();
    }
    void TearDown() override {
        for (pid_t p : servers_) stop_process(p, 500);
        servers_.clear();
        Lab::TearDown();
        std::printf("  [time] %s: %.1f s\n", ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                    (mono_ms() - t0_) / 1000);
    }

    // How long a control run beside the experiment's waits for its last answers: they may
    // queue at the shared echo server behind thousands of the experiment's requests when the
    // emulator runs it late. A run ends as soon as every echo is answered.
    static constexpr int kCtlTimeout = 3000;
    // Pipelined UDP echoes from cohort c (see the top of the file), started in a child.
    EchoRun start_echoes(Sandbox::Cohort c, int count, double interval_ms, int timeout_ms) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0) return {};
        fcntl(p[0], F_SETPIPE_SZ, 1 << 20);
        std::string cg = lab_->cgroup(c), ns = lab_->netns_a(), to = lab_->server(false);
        std::vector<double> sent(count, 0), res(2 * count, -1);
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            echo_child(p[1], cg, ns, to, kStampPort, count, interval_ms, timeout_ms, sent, res);
        }
        close(p[1]);
        if (pid < 0) {
            close(p[0]);
            return {};
        }
        return {pid, p[0], count, timeout_ms};
    }
    // Its answers: for each echo the round trip and the request's one-way delay in ms, or
    // nullopt (both) when no answer had come when the client gave up, timeout_ms after its last
    // request. A round trip may exceed timeout_ms: an answer the client read late (the emulator
    // did not run it for a while) is an answer, not a loss.
    struct Echoes {
        Rtts rtt, oneway;
    };
    Echoes collect(EchoRun& e) {
        std::vector<double> v(2 * e.count, -1);
        char* p = reinterpret_cast<char*>(v.data());
        size_t left = v.size() * sizeof(double), got = 0;
        while (e.fd >= 0 && got < left) {
            ssize_t n = read(e.fd, p + got, left - got);
            if (n <= 0) break;
            got += static_cast<size_t>(n);
        }
        if (e.fd >= 0) close(e.fd);
        int st = -1;
        if (e.pid > 0) waitpid(e.pid, &st, 0);
        EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0 && got == left)
            << "the echo client failed (status " << st << ", " << got << " of " << left << " bytes)";
        Echoes r;
        for (int i = 0; i < e.count; i++) {
            bool ok = v[2 * i] >= 0;
            r.rtt.push_back(ok ? std::optional<double>(v[2 * i]) : std::nullopt);
            r.oneway.push_back(ok ? std::optional<double>(v[2 * i + 1]) : std::nullopt);
        }
        e = {};
        return r;
    }
    Echoes echoes(Sandbox::Cohort c, int count, double interval_ms, int timeout_ms) {
        auto e = start_echoes(c, count, interval_ms, timeout_ms);
        return collect(e);
    }
    void start_stamp_server() {
        int p[2];
        ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
        std::string ns = "/run/netns/" + lab_->netns_b_name();
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            stamp_server(p[1], ns, kStampPort);
        }
        close(p[1]);
        ASSERT_GT(pid, 0);
        servers_.push_back(pid);
        char c = 0;
        ASSERT_EQ(read(p[0], &c, 1), 1) << "the echo server did not start";
        close(p[0]);
    }
    static constexpr int kStampPort = 7100;

    // `tc qdisc ...` in namespace -a on the lab's device a.
    CmdResult tc(const std::string& args) {
        return sh("exec ip netns exec " + lab_->netns_a_name() + " tc qdisc " + args);
    }
    // A qdisc of ours as root of device a, removed when the guard goes (also on a failed
    // assertion), before the fixture checks that the root qdisc is the one it found.
    struct RootQdisc {
        VmShapeLab* lab;
        ~RootQdisc() { (void)lab->tc("del dev " + lab->lab_->device_a() + " root"); }
    };
    bool put_root(const std::string& spec) {
        auto r = tc("replace dev " + lab_->device_a() + " root " + spec);
        EXPECT_EQ(r.status, 0) << "tc qdisc replace ... " << spec << ": " << r.err;
        if (r.status != 0) return false;
        auto kind = root_qdisc_a().first;
        EXPECT_EQ(kind, spec.substr(0, spec.find(' ')));
        return kind == spec.substr(0, spec.find(' '));
    }

    // Stops the injection and checks it is gone: no injection listed, the root qdisc the one
    // the lab started with (fq removed), so the next sample set sees only the qdisc put next.
    void stop_tardy(const std::string& name) {
        mark("measured");
        auto s = tardy({"stop", name});
        ASSERT_EQ(s.status, 0) << s.err;
        ASSERT_TRUE(eventually([&] { return list_json().value("injections", json::array()).empty(); }, 5000, 20))
            << list_json().dump();
        // Put back once the packets fq still holds have left (DeviceManager::release).
        ASSERT_TRUE(eventually([&] { return root_qdisc_a() == qdisc_before_; }, 2000, 20))
            << "tardy's fq outlived the stop";
        mark("stop");
    }
    json counters() {
        auto l = list_json().value("injections", json::array());
        return l.empty() ? json::object() : l[0].value("counters", json::object());
    }

    // The emulator's own cost (no fault), measured with the same client: the medians of the
    // round trip and of the one-way delay.
    struct Base {
        double rtt, oneway;
    };
    Base emulator_base() {
        auto e = echoes(kExp, 300, 2, 500);
        auto r = answered(e.rtt), o = answered(e.oneway);
        std::printf("  emulator, no fault, 300 echoes: RTT p10 %.2f, p50 %.2f, p90 %.2f, max %.2f ms; one-way p10 %.3f, "
                    "p50 %.3f, p90 %.3f, max %.3f ms\n",
                    pct(r, 10), pct(r, 50), pct(r, 90), pct(r, 100), pct(o, 10), pct(o, 50), pct(o, 90), pct(o, 100));
        return {pct(r, 50), pct(o, 50)};
    }

    // iperf3 server in namespace -b (port 5201), stopped by TearDown.
    void start_iperf3_server() {
        auto p = spawn_cmd({"sh", "-c", "exec ip netns exec " + lab_->netns_b_name() +
                                            " iperf3 -s -p 5201 >/dev/null 2>&1"},
                           nullptr);
        ASSERT_TRUE(p) << p.error().message;
        servers_.push_back(*p);
        ASSERT_TRUE(eventually(
            [&] {
                auto r = sh("exec ip netns exec " + lab_->netns_b_name() + " ss -Hltn 'sport = :5201'");
                return r.out.find("5201") != std::string::npos;
            },
            10000, 50))
            << "iperf3 -s did not listen";
    }
    // iperf3 as a member of cohort c (joins the cgroup first: `ip netns exec` remounts /sys).
    // Retries while the server is still busy with the previous test.
    json iperf3(Sandbox::Cohort c, const std::string& args) {
        std::string cmd = "echo $$ > " + lab_->cgroup(c) + "/cgroup.procs && exec ip netns exec " +
                          lab_->netns_a_name() + " iperf3 -c " + lab_->server(false) + " -p 5201 --json " + args;
        json j;
        for (int i = 0; i < 5; i++) {
            auto r = sh(cmd);
            j = json::parse(r.out, nullptr, false);
            if (r.status == 0 && !j.is_discarded() && !j.contains("error")) return j;
            std::printf("  iperf3 %s: status %d, %s\n", args.c_str(), r.status,
                        j.is_discarded() ? r.err.c_str() : j.value("error", "").c_str());
            sleep_ms(300);
        }
        ADD_FAILURE() << "iperf3 " << args << " failed";
        return json::object();
    }
    // Receiver-side throughput in Mbit/s.
    static double received_mbps(const json& j) {
        if (!j.contains("end") || !j["end"].contains("sum_received")) return -1;
        return j["end"]["sum_received"].value("bits_per_second", 0.0) / 1e6;
    }

    // With TARDY_TEST_TIMES set (as the harness's own timings): the time since the last mark.
    void mark(const char* what) {
        double now = mono_ms();
        if (std::getenv("TARDY_TEST_TIMES")) std::printf("  [times] %s %.0f ms\n", what, now - mark_);
        mark_ = now;
    }

    double t0_ = 0, mark_ = 0;
    std::vector<pid_t> servers_;
};

// --delay 30ms --jitter 8ms --distribution normal against netem's `delay 30ms 8ms
// distribution normal`: the two samples of the requests' one-way delay must have the same
// distribution (Kolmogorov-Smirnov distance at most 0.05). The round trips are printed too.
TEST_F(VmShapeLab, NormalJitterMatchesNetem) {
    // 4,000 each: two samples of one distribution stay under a distance of 0.05 with
    // probability 1 - 2e-4; with 2,000 each only 0.986 (netem against itself, 2,000 round
    // trips each on a busy host, measured 0.053, and 0.040 by the one-way delay; 4,000 each,
    // 0.019). 1 ms apart: 4 s a sample.
    constexpr int kCount = 4000, kTimeout = 500;
    constexpr double kInterval = 1;
    Base base = emulator_base();
    mark("baseline");
    inject({"--delay", "30ms", "--jitter", "8ms", "--distribution", "normal"}, "normal");
    auto ctl_run = start_echoes(kCtl, 200, 20, kCtlTimeout);  // the control, at the same time
    auto t = echoes(kExp, kCount, kInterval, kTimeout);
    auto ctl = collect(ctl_run);
    auto c = counters();
    ASSERT_NO_FATAL_FAILURE(stop_tardy("normal"));

    Echoes n;
    {
        RootQdisc q{this};  // removed at the end of the block, also on a failure
        ASSERT_TRUE(put_root("netem delay 30ms 8ms distribution normal"));
        n = echoes(kExp, kCount, kInterval, kTimeout);
    }
    mark("second qdisc");
    auto tv = answered(t.oneway, base.oneway), nv = answered(n.oneway, base.oneway);
    auto tr = answered(t.rtt, base.rtt), nr = answered(n.rtt, base.rtt);
    auto cv = answered(ctl.rtt), co = answered(ctl.oneway);
    double ks = ks_distance(tv, nv), ks_rtt = ks_distance(tr, nr);
    std::printf("  30 ms +- 8 ms normal, %d pipelined UDP echoes %.1f ms apart, the emulator's medians subtracted:\n",
                kCount, kInterval);
    std::printf("    tardy one-way: %zu answered, p10 %.2f, p50 %.2f, p90 %.2f ms (delayed %llu); RTT p10 %.2f, p50 %.2f, "
                "p90 %.2f ms\n",
                tv.size(), pct(tv, 10), pct(tv, 50), pct(tv, 90),
                static_cast<unsigned long long>(c.value("delayed", uint64_t{0})), pct(tr, 10), pct(tr, 50), pct(tr, 90));
    std::printf("    netem one-way: %zu answered, p10 %.2f, p50 %.2f, p90 %.2f ms; RTT p10 %.2f, p50 %.2f, p90 %.2f ms\n",
                nv.size(), pct(nv, 10), pct(nv, 50), pct(nv, 90), pct(nr, 10), pct(nr, 50), pct(nr, 90));
    std::printf("    (the table itself: p10 %.2f, p50 30.00, p90 %.2f ms)\n", 30 - 1.2816 * 8, 30 + 1.2816 * 8);
    std::printf("    Kolmogorov-Smirnov distance tardy/netem: one-way %.4f, RTT %.4f (5%% critical value %.4f)\n", ks,
                ks_rtt, 1.358 * std::sqrt((tv.size() + nv.size()) / (static_cast<double>(tv.size()) * nv.size())));
    std::printf("    control (200 echoes, during tardy's): one-way p50 %.3f, p90 %.3f ms; RTT p50 %.2f, p90 %.2f ms\n",
                pct(co, 50), pct(co, 90), pct(cv, 50), pct(cv, 90));
    EXPECT_EQ(static_cast<int>(tv.size()), kCount) << "tardy's jitter lost echoes";
    EXPECT_EQ(static_cast<int>(nv.size()), kCount) << "netem's jitter lost echoes";
    EXPECT_LE(ks, 0.05);
    EXPECT_EQ(cv.size(), 200u) << "the control cohort lost echoes";
    EXPECT_LT(pct(co, 90), 2) << "the control cohort was delayed";
}

// --loss 5% --loss-burst 4 against netem's `loss gemodel P R 100% 0%` with the same chain
// (R = 1/4, P = 0.05 R / 0.95): loss rate and mean run of consecutive lost echoes.
TEST_F(VmShapeLab, BurstLossMatchesNetem) {
    // A Gilbert-Elliott chain is bursty, so its loss rate converges slowly: at 5% in bursts of 4
    // the variance is 6.6 times the binomial one ((1 + l) / (1 - l), l = 1 - p - r = 0.737), so
    // over 20,000 packets the rate's standard deviation is 0.40% and the bound below 3.8 of
    // them; the mean burst's is 0.22 (about 250 bursts of standard deviation 3.5). With 10,000
    // packets the bound was 2.9 deviations, and a CI run on 6.1 drew 6.62%.
    // Answers are awaited up to 3 s after the last request: a server the emulator stalled at
    // the end answered the last 3,258 after a 300 ms wait had given up (UdpNoPorts 2797).
    constexpr int kCount = 20000, kTimeout = 3000;
    constexpr double kInterval = 0.2;
    mark_ = mono_ms();
    inject({"--loss", "5%", "--loss-burst", "4"}, "bursty");
    auto ctl_run = start_echoes(kCtl, 400, 5, kCtlTimeout);
    double t0 = mono_ms();
    auto t = echoes(kExp, kCount, kInterval, kTimeout).rtt;
    double took = mono_ms() - t0;
    auto ctl = collect(ctl_run).rtt;
    auto c = counters();
    ASSERT_NO_FATAL_FAILURE(stop_tardy("bursty"));

    Rtts n;
    {
        RootQdisc q{this};  // removed at the end of the block, also on a failure
        ASSERT_TRUE(put_root("netem loss gemodel 1.3158% 25% 100% 0%"));
        n = echoes(kExp, kCount, kInterval, kTimeout).rtt;
    }
    mark("second qdisc");
    auto rt = loss_runs(t), rn = loss_runs(n);
    std::printf("  %d in-order UDP echoes %.1f ms apart (tardy's took %.1f s):\n", kCount, kInterval, took / 1000);
    std::printf("    tardy --loss 5%% --loss-burst 4:           %.2f%% lost in %d runs, mean run %.2f, longest %d at "
                "echo %d (dropped %llu, matched %llu)\n",
                100 * rt.loss, rt.runs, rt.mean_run, rt.longest, rt.longest_at,
                static_cast<unsigned long long>(c.value("dropped", uint64_t{0})),
                static_cast<unsigned long long>(c.value("matched", uint64_t{0})));
    std::printf("    netem loss gemodel 1.3158%% 25%% 100%% 0%%: %.2f%% lost in %d runs, mean run %.2f\n", 100 * rn.loss,
                rn.runs, rn.mean_run);
    std::printf("    control (400 echoes, during tardy's): %d lost\n", loss_runs(ctl).lost);
    if (static_cast<uint64_t>(rt.lost) != c.value("dropped", uint64_t{0})) {
        // Lost where tardy dropped nothing: which side's counters say where.
        for (const std::string& ns : {lab_->netns_a_name(), lab_->netns_b_name()})
            std::printf("    %s: %s", ns.c_str(),
                        sh("ip netns exec " + ns +
                           " nstat -az 2>&1 | grep -E 'UdpInErrors|UdpRcvbufErrors|UdpSndbufErrors|UdpNoPorts|"
                           "IpInDiscards|IpOutDiscards|IpOutNoRoutes' | tr -s ' ' | tr '\\n' ';'; echo; ip netns exec " +
                           ns + " ip -s link | grep -A1 -E 'RX|TX' | tr -s ' ' | tr '\\n' ' '; echo")
                            .out.c_str());
        std::printf("    softnet_stat (processed dropped squeezed, per CPU): %s\n",
                    sh("awk '{print $1, $2, $3}' /proc/net/softnet_stat | tr '\\n' ';'").out.c_str());
    }
    EXPECT_NEAR(rt.loss, 0.05, 0.015);
    EXPECT_NEAR(rt.mean_run, 4.0, 1.2);
    // Every lost echo is a request tardy dropped: nothing else lost one.
    EXPECT_EQ(static_cast<uint64_t>(rt.lost), c.value("dropped", uint64_t{0}));
    EXPECT_EQ(loss_runs(ctl).lost, 0) << "the control cohort lost echoes";
}

// --rate 10mbit against tbf's 10mbit, with Debian's iperf3 (TCP, then UDP offered at 20 Mbit/s):
// the receiver's throughput within 10% of the rate.
TEST_F(VmShapeLab, RateLimitsIperf3LikeTbf) {
    ASSERT_NO_FATAL_FAILURE(start_iperf3_server());
    mark("iperf3 -s");
    inject({"--rate", "10mbit"}, "slow");
    auto t_tcp = iperf3(kExp, "-t 3");
    auto t_udp = iperf3(kExp, "-u -b 20M -t 3");
    auto c_tcp = iperf3(kCtl, "-t 1");  // the control, beside the same fq
    auto c = counters();
    ASSERT_NO_FATAL_FAILURE(stop_tardy("slow"));

    json b_tcp, b_udp;
    {
        RootQdisc q{this};  // removed at the end of the block, also on a failure
        ASSERT_TRUE(put_root("tbf rate 10mbit burst 32kbit latency 400ms"));
        b_tcp = iperf3(kExp, "-t 3");
        b_udp = iperf3(kExp, "-u -b 20M -t 3");
    }
    mark("second qdisc");
    auto lost = [](const json& j) {
        return j.contains("end") && j["end"].contains("sum_received")
                   ? j["end"]["sum_received"].value("lost_percent", 0.0)
                   : -1.0;
    };
    std::printf("  iperf3 receiver throughput at 10mbit (Mbit/s):\n");
    std::printf("    tardy --rate 10mbit: TCP %.2f, UDP %.2f (lost %.1f%%) (paced %llu, dropped %llu)\n",
                received_mbps(t_tcp), received_mbps(t_udp), lost(t_udp),
                static_cast<unsigned long long>(c.value("paced", uint64_t{0})),
                static_cast<unsigned long long>(c.value("dropped", uint64_t{0})));
    std::printf("    tbf rate 10mbit:     TCP %.2f, UDP %.2f (lost %.1f%%)\n", received_mbps(b_tcp),
                received_mbps(b_udp), lost(b_udp));
    auto blksize = [](const json& j) {
        return j.contains("start") ? j["start"]["test_start"].value("blksize", 0) : 0;
    };
    int blk = blksize(t_udp);  // iperf3 takes the control connection's MSS: 1448 bytes
    std::printf("    (a 10 Mbit/s wire carries 9.56 Mbit/s of TCP payload, 1448 bytes in each 1514-byte frame, and\n"
                "    %.2f Mbit/s of UDP, %d bytes in each %d-byte frame)\n",
                10.0 * blk / (blk + 42), blk, blk + 42);
    std::printf("    control TCP during tardy's: %.2f\n", received_mbps(c_tcp));
    EXPECT_NEAR(received_mbps(t_tcp), 10.0, 1.0);
    EXPECT_NEAR(received_mbps(t_udp), 10.0, 1.0);
    EXPECT_GT(received_mbps(c_tcp), 20.0) << "the control cohort was limited";
}

// --delay 20ms --reorder 30%: that share of echoes skips the delay. netem's `delay 20ms
// reorder 30%` (gap 1) does the same; its share is printed beside.
TEST_F(VmShapeLab, ReorderSendsAShareAtOnce) {
    constexpr int kCount = 600, kTimeout = 300;
    constexpr double kInterval = 4;
    // by the request's one-way delay: under 10 ms (sent at once), 20 ms or more (delayed), between
    auto split = [](const Rtts& r) {
        int fast = 0, slow = 0, mid = 0;
        for (const auto& x : r) {
            if (!x) continue;
            (*x < 10 ? fast : *x >= 20 ? slow : mid)++;
        }
        return std::tuple{fast, slow, mid};
    };
    mark_ = mono_ms();
    inject({"--delay", "20ms", "--reorder", "30%"}, "reorder");
    auto ctl_run = start_echoes(kCtl, 100, 20, kCtlTimeout);
    auto t = echoes(kExp, kCount, kInterval, kTimeout);
    auto ctl = collect(ctl_run);
    auto c = counters();
    ASSERT_NO_FATAL_FAILURE(stop_tardy("reorder"));
    Echoes n;
    {
        RootQdisc q{this};  // removed at the end of the block, also on a failure
        ASSERT_TRUE(put_root("netem delay 20ms reorder 30%"));
        n = echoes(kExp, kCount, kInterval, kTimeout);
    }
    mark("second qdisc");
    auto [tf, ts, tm] = split(t.oneway);
    auto [nf, ns, nm] = split(n.oneway);
    auto [rf, rs, rm] = split(t.rtt);
    auto co = answered(ctl.oneway);
    int ta = tf + ts + tm, na = nf + ns + nm;
    std::printf("  %d pipelined UDP echoes %.0f ms apart at 20 ms, 30%% reordered, by one-way delay:\n", kCount,
                kInterval);
    std::printf("    tardy: %d answered, %.1f%% under 10 ms, %.1f%% at 20 ms or more, %d between (reordered %llu, "
                "delayed %llu); by RTT: %.1f%%, %.1f%%, %d\n",
                ta, 100.0 * tf / std::max(1, ta), 100.0 * ts / std::max(1, ta), tm,
                static_cast<unsigned long long>(c.value("reordered", uint64_t{0})),
                static_cast<unsigned long long>(c.value("delayed", uint64_t{0})), 100.0 * rf / std::max(1, ta),
                100.0 * rs / std::max(1, ta), rm);
    std::printf("    netem: %d answered, %.1f%% under 10 ms, %.1f%% at 20 ms or more, %d between\n", na,
                100.0 * nf / std::max(1, na), 100.0 * ns / std::max(1, na), nm);
    std::printf("    control (100 echoes, during tardy's): one-way p50 %.3f, p90 %.3f, max %.3f ms\n", pct(co, 50),
                pct(co, 90), pct(co, 100));
    EXPECT_EQ(ta, kCount) << "tardy lost echoes";
    // Binomial, n = 600, p = 0.3: sd 1.9%; 3.7 sd.
    EXPECT_NEAR(static_cast<double>(tf) / std::max(1, ta), 0.30, 0.07);
    // The emulator can hold an echo back by a few ms, rarely more than 10: 1% is allowed between
    // the two groups, and as many between the echoes sent at once and those the program counted.
    EXPECT_LE(tm, kCount / 100) << "echoes neither at once nor delayed";
    EXPECT_NEAR(tf, c.value("reordered", 0), kCount / 100) << "the echoes sent at once are not those reordered";
    EXPECT_EQ(co.size(), 100u) << "the control cohort lost echoes";
    EXPECT_LT(pct(co, 90), 2) << "the control cohort was delayed";
}

}  // namespace
