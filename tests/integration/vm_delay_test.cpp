// SPDX-License-Identifier: Apache-2.0
// Real delay, proven on a stock kernel (sch_fq present): these run inside the VM
// (scripts/run-tests.sh runs them with --gtest_filter='Vm*' under tests/vm/vm.sh). On a
// kernel without fq they fail rather than skip: they are never meant to run there.
#include <signal.h>

#include <algorithm>
#include <thread>

#include "../common/harness.hpp"

using namespace tardy;
using namespace tardy::test;

namespace {

class VmLab : public Lab {
protected:
    void SetUp() override {
        auto fq = qdisc_kind_available("fq");
        ASSERT_TRUE(fq && *fq) << "the VM suite needs sch_fq (run it with `make vmtest`)";
        Lab::SetUp();
        if (HasFatalFailure() || IsSkipped()) return;
        // Under software emulation an undisturbed round trip costs about a millisecond, more
        // when the host is busy: measured here, before any fault, and allowed on top of the
        // bounds (which are the issue's: [delay, delay + 5 ms], control under 5 ms).
        base_exp_ = median(udp_rtts(kExp, 20, 5));
        base_ctl_ = median(udp_rtts(kCtl, 20, 5));
        std::printf("  baseline UDP RTT median: experiment %.2f ms, control %.2f ms\n", base_exp_, base_ctl_);
    }
    double base_exp_ = 0, base_ctl_ = 0;

    // Median UDP echo RTT of a cohort, and every sample.
    // pipelined: the echoes leave interval_ms apart whether answered or not (a 200 ms delay
    // cost 40 sequential echoes 8 s); otherwise one at a time.
    std::vector<double> udp_rtts(Sandbox::Cohort c, int count = 40, int interval_ms = 10, bool pipelined = false) {
        auto r = probe(c, pipelined ? "udp-pipe" : "udp", false, count, interval_ms, 1000);
        std::vector<double> v;
        for (const auto& x : r.rtt_ms)
            if (x) v.push_back(*x);
        EXPECT_EQ(static_cast<int>(v.size()), count) << "unexpected loss";
        return v;
    }
    static double median(std::vector<double> v) {
        if (v.empty()) return -1;
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    }
    double tcp_connect_median(Sandbox::Cohort c, int count = 10) {
        auto r = probe(c, "tcp", false, count, 10, 2000);
        return r.median_ms().value_or(-1);
    }
    struct Cohorts {
        double exp_udp, exp_tcp, ctl_udp, ctl_tcp;
    };
    // Both cohorts at the same moment (two probes at once), so the emulator's noise, which
    // comes and goes with the host's load, is the same for both.
    Cohorts measure_both() {
        Cohorts m{};
        std::thread ctl([&] {
            m.ctl_udp = median(udp_rtts(kCtl, 40, 10, true));
            m.ctl_tcp = tcp_connect_median(kCtl);
        });
        m.exp_udp = median(udp_rtts(kExp, 40, 10, true));
        m.exp_tcp = tcp_connect_median(kExp);
        ctl.join();
        std::printf("  experiment: UDP RTT median %.2f ms, TCP connect median %.2f ms\n", m.exp_udp, m.exp_tcp);
        std::printf("  control:    UDP RTT median %.2f ms, TCP connect median %.2f ms\n", m.ctl_udp, m.ctl_tcp);
        return m;
    }
    // The bounds: the experiment's medians in [lo, hi], the control's under 5 ms. Under
    // emulation every round trip also pays the emulator's cost, which the control cohort
    // measures at the same moment: that much is allowed on top of hi and of 5 ms (the baseline
    // before the fault counts too, for a control that happens to be quieter than it).
    // The emulator's stalls come and go (a CI run on 6.12, beside the host suites: the
    // control's UDP median 5.23 ms and its connect median 8.17 ms, against a baseline of 1.22
    // ms): a measurement outside the bounds is repeated, up to three in all, and the last is
    // judged. A fault that reached the control would put it 50 ms out in every one.
    void expect_delay(double lo, double hi) {
        // Each bound once: the value, its limit, whether it is a floor, and what it means.
        struct Bound {
            double value, limit;
            bool floor;
            const char* what;
            bool holds() const { return floor ? value >= limit : value <= limit; }
        };
        auto bounds = [&](const Cohorts& m) {
            double noise = std::max(m.ctl_udp, base_ctl_);
            return std::vector<Bound>{
                {m.exp_udp, lo, true, "experiment UDP median"},
                {m.exp_udp, hi + noise, false, "experiment UDP median"},
                {m.exp_tcp, lo, true, "experiment connect median"},
                {m.exp_tcp, hi + std::max(m.ctl_tcp, noise), false, "experiment connect median"},
                {m.ctl_udp, 5 + base_ctl_, false, "control UDP median (slowed beyond the emulator's noise)"},
                {m.ctl_tcp, 5 + base_ctl_, false, "control connect median (slowed beyond the emulator's noise)"}};
        };
        std::vector<Bound> b;
        for (int attempt = 1; attempt <= 3; attempt++) {
            b = bounds(measure_both());
            if (std::all_of(b.begin(), b.end(), [](const Bound& x) { return x.holds(); })) break;
            std::printf("  (attempt %d outside the bounds)\n", attempt);
        }
        for (const auto& x : b)
            EXPECT_TRUE(x.holds()) << x.what << " " << x.value << " ms, " << (x.floor ? "at least " : "at most ")
                                   << x.limit << " ms";
    }
    // The delays here are 50 ms; an emulated round trip on a busy host can take several ms,
    // so "gone" is judged against half the delay, far above that noise and far below it.
    // Polled: one echo at a time until one comes back in under half the delay, or ms passed.
    bool undelayed_within(int ms) {
        return eventually(
            [&] {
                auto r = probe(kExp, "udp", false, 1, 1, 1000);
                return r.answered() == 1 && r.median_ms().value_or(99) < 25;
            },
            ms, 1);
    }
    void expect_no_delay(const char* after) {
        double e = median(udp_rtts(kExp, 20, 5));
        EXPECT_LT(e, 25) << "the delay survived " << after;
    }
    // A delay stopped while fq still holds packets, then `kill` (after a SIGKILL of the agent
    // when `sigkill`): nothing of ours may be left (harness.hpp, kill_while_draining).
    void kill_mid_drain(bool sigkill) {
        inject({"--delay", "1000ms"}, "slow");
        kill_while_draining("slow", sigkill, [&] { return root_qdisc_a().first == "fq"; });
        EXPECT_EQ(root_qdisc_a(), qdisc_before_) << "the drain's fq outlived kill";
        auto f = run_cmd({"ip", "netns", "exec", lab_->netns_a_name(), "tc", "filter", "show", "dev",
                          lab_->device_a(), "egress"});
        ASSERT_TRUE(f) << f.error().message;
        EXPECT_EQ(f->out.find("tardy_"), std::string::npos) << "a filter of ours outlived kill: " << f->out;
        expect_no_delay(sigkill ? "kill after a SIGKILL during the drain" : "kill during the drain");
    }
};

TEST_F(VmLab, Delay50msHitsOnlyTheExperimentCohort) {
    inject({"--delay", "50ms"});
    expect_delay(50, 55);
    auto c = list_json()["injections"][0]["counters"];
    EXPECT_GT(c["delayed"].get<uint64_t>(), 40u);
}

TEST_F(VmLab, Delay200ms) {
    inject({"--delay", "200ms"});
    expect_delay(200, 205);
}

// --setup-only: the SYN waits, nothing else does. Connects take the delay longer; UDP echoes
// (no SYN) and the control cohort do not.
TEST_F(VmLab, SetupOnlyDelaysConnectsAlone) {
    inject({"--delay", "100ms", "--setup-only"});
    Cohorts m = measure_both();
    double noise = std::max(m.ctl_udp, base_ctl_);
    EXPECT_GE(m.exp_tcp, 100);
    EXPECT_LE(m.exp_tcp, 105 + std::max(m.ctl_tcp, noise));
    EXPECT_LT(m.exp_udp, 5 + noise) << "a packet without SYN was delayed";
    EXPECT_LT(m.ctl_tcp, 5 + base_ctl_) << "the control cohort was slowed beyond the emulator's noise";
}

TEST_F(VmLab, JitterStaysInBoundsAndSpreads) {
    inject({"--delay", "50ms", "--jitter", "10ms"});
    // The control cohort is probed at the same moment: what the emulator adds to its round
    // trips (its 95th percentile) is what it can add to the experiment's, on top of the
    // 60 ms the stamp allows. The stamp's exact bounds are proven without an emulator in
    // bpf_tests (BpfProg.JitterStaysInsideTheWindow); here the point is the real path.
    // The experiment's packets also wait for fq's timer, which the control's never do: a
    // loaded emulator fires it late (a 6.1 CI run: median 57 ms, p95 76, control p95 3.5). So
    // a sample over the upper bounds is taken once more: the emulator only ever adds, and a
    // stamp out of bounds would be out of them in every sample.
    auto pct = [](std::vector<double> x, int p) {
        std::sort(x.begin(), x.end());
        return x[x.size() * p / 100];
    };
    for (int attempt = 1;; attempt++) {
        std::vector<double> ctl;
        std::thread t([&] { ctl = udp_rtts(kCtl, 60, 10); });
        auto v = udp_rtts(kExp, 60, 10);
        t.join();
        ASSERT_FALSE(v.empty());
        ASSERT_FALSE(ctl.empty());
        double p95 = pct(v, 95), ctl95 = pct(ctl, 95);
        auto [mn, mx] = std::minmax_element(v.begin(), v.end());
        std::printf("  jittered RTTs (sample %d): min %.2f ms, median %.2f ms, p95 %.2f ms, max %.2f ms; control p95 "
                    "%.2f ms\n",
                    attempt, *mn, median(v), p95, *mx, ctl95);
        const double noise = std::max({base_exp_, ctl95, 1.0}), p95_max = 60.0 + noise + 5.0, max_max = 85.0 + noise;
        if ((p95 > p95_max || *mx > max_max) && attempt < 2) continue;
        EXPECT_GE(*mn, 40.0);
        EXPECT_LE(p95, p95_max);
        EXPECT_LE(*mx, max_max);
        EXPECT_GT(*mx - *mn, 5.0) << "no spread: jitter is not applied";
        EXPECT_LT(ctl95, 25.0) << "the control cohort was delayed";
        break;
    }
}

TEST_F(VmLab, DelayAndLossTogether) {
    inject({"--delay", "50ms", "--loss", "30%"});
    // the control cohort at the same moment: its median is the emulator's noise right now
    ProbeResult ctl;
    std::thread t([&] { ctl = probe(kCtl, "udp", false, 100, 10, 300); });
    // Pipelined: a lost echo waits for nothing (one by one, each of the ~60 waited 150 ms)
    auto r = probe(kExp, "udp-pipe", false, 200, 5, 300);
    t.join();
    double m = r.median_ms().value_or(-1), noise = std::max(base_exp_, ctl.median_ms().value_or(0));
    std::printf("  delay+loss: %d of %d answered, median %.2f ms; control median %.2f ms\n", r.answered(), r.sent, m,
                ctl.median_ms().value_or(-1));
    EXPECT_NEAR(r.loss_ratio(), 0.30, 0.16);  // n = 200: sd 0.032, 5 sd
    EXPECT_GE(m, 50);
    EXPECT_LE(m, 55 + noise);
    EXPECT_EQ(ctl.answered(), 100) << "the control cohort lost packets";
    EXPECT_LT(ctl.median_ms().value_or(99), 25) << "the control cohort was delayed";
}

// `tardy update`: 50 ms -> 120 ms on a live injection, the fq and counters kept; the
// control cohort undelayed throughout.
TEST_F(VmLab, UpdateChangesTheDelayLive) {
    inject({"--delay", "50ms"}, "slow");
    // Each median with the control cohort's at the same moment: what the emulator adds to a
    // round trip then is allowed on top of the bounds (a busy host once made it 127.6 ms
    // against 125 + the baseline's 1.1 ms).
    auto with_control = [&](double* ctl) {
        std::thread t([&] { *ctl = median(udp_rtts(kCtl, 40, 10, true)); });
        double e = median(udp_rtts(kExp, 40, 10, true));
        t.join();
        return e;
    };
    double ctl_before = 0, ctl_after = 0;
    double before = with_control(&ctl_before);
    auto delayed = [&] {
        for (const auto& i : list_json().value("injections", nlohmann::json::array()))
            if (i.value("name", "") == "slow") return i["counters"].value("delayed", uint64_t{0});
        return uint64_t{0};
    };
    uint64_t d1 = delayed();
    auto u = tardy({"update", "slow", "--delay", "120ms"});
    ASSERT_EQ(u.status, 0) << u.err;
    double after = with_control(&ctl_after);
    uint64_t d2 = delayed();
    std::printf("  median RTT: %.2f ms at 50 ms, %.2f ms after the update to 120 ms (control %.2f and %.2f ms); "
                "delayed %llu -> %llu\n",
                before, after, ctl_before, ctl_after, static_cast<unsigned long long>(d1),
                static_cast<unsigned long long>(d2));
    EXPECT_GE(before, 50);
    EXPECT_LE(before, 55 + std::max(base_exp_, ctl_before));
    EXPECT_GE(after, 120);
    EXPECT_LE(after, 125 + std::max(base_exp_, ctl_after));
    EXPECT_GE(d2, d1 + 40) << "the counters were reset";
    EXPECT_EQ(root_qdisc_a().first, "fq");
    EXPECT_LT(ctl_before, 25) << "the control cohort was delayed";
    EXPECT_LT(ctl_after, 25) << "the control cohort was delayed";
}

// Putting the root qdisc back and deleting the clsact hook tardy made each graft a qdisc,
// and a graft deactivates the device for a moment (dev_deactivate(): whatever is sent then
// meets noop_qdisc and is dropped; tc itself does the same). Up to kGraftLoss echoes sent
// after a delay ends may be lost that way; none the delay held is (DeviceManager::release
// waits for fq to empty first).
constexpr int kGraftLoss = 4;

// One pipelined client sends an echo every 10 ms across the deadline, and each echo is judged
// by when it left: one sent after the deadline that tardy still delayed comes back 50 ms late.
// (Polling with a new client per echo measured the emulator's process start-up as much as
// tardy: a CI run on 6.1 missed a 300 ms allowance that way.) The emulator can stall an
// echo or two now and then, so up to 3 of the 100 sent in the second after the deadline may
// be late; a delay that outlived --for by 30 ms or more would make all of those late.
TEST_F(VmLab, ForEndsTheDelay) {
    inject({"--delay", "50ms", "--for", "2s"});
    double t0 = mono_ms();  // the deadline was set before inject returned: at most t0 + 2 s
    auto r = probe(kExp, "udp-pipe", false, 300, 10, 1000);
    ASSERT_EQ(r.sent_at_ms.size(), r.rtt_ms.size());
    std::vector<double> before, after;
    int late_after = 0, lost_before = 0, lost_after = 0;
    double last_late = -1;
    for (size_t i = 0; i < r.rtt_ms.size(); i++) {
        double at = r.sent_at_ms[i] - t0;
        if (!r.rtt_ms[i]) {
            (at < 1800 ? lost_before : lost_after)++;
            continue;
        }
        double rtt = *r.rtt_ms[i];
        if (rtt >= 45) last_late = std::max(last_late, at);
        if (at < 1800) before.push_back(rtt);
        if (at >= 2000 && at < 3000) {
            after.push_back(rtt);
            late_after += rtt >= 45;
        }
    }
    std::printf("  sent before 1.8 s: %zu, median %.2f ms, %d lost; sent in [2 s, 3 s): %zu, median %.2f ms, %d late; "
                "last late echo left at %.0f ms; lost after 1.8 s: %d\n",
                before.size(), median(before), lost_before, after.size(), median(after), late_after, last_late,
                lost_after);
    EXPECT_EQ(lost_before, 0) << "the end of the delay dropped packets it held";
    EXPECT_LE(lost_after, kGraftLoss);
    EXPECT_GE(before.size(), 100u);
    EXPECT_GE(median(before), 50) << "the delay was not there before its deadline";
    ASSERT_GE(after.size(), 50u) << "the client started too late to see the deadline";
    EXPECT_LT(median(after), 25) << "the delay outlived --for";
    EXPECT_LE(late_after, 3) << "the delay outlived --for";
    expect_no_delay("--for");
    EXPECT_TRUE(eventually([&] { return root_qdisc_a() == qdisc_before_; }, 1000, 20)) << "fq outlived --for";
}

// Stopping a delay lets the packets it already delayed leave at their time: fq is replaced
// only once its queue is empty. Before, the qdisc went at once and the echoes of the last
// 200 ms were lost at every stop (35-37 of them in three runs on 6.1). Pipelined echoes
// every 5 ms across the stop.
TEST_F(VmLab, StopLetsTheDelayedPacketsLeave) {
    inject({"--delay", "200ms"}, "slow");
    auto x = echoes_across_stop("slow", "an egress delay");
    EXPECT_EQ(x.lost_before, 0) << "the stop dropped packets the delay held";
    EXPECT_LE(x.lost_after, kGraftLoss);
    EXPECT_GE(x.late, 40) << "the delay was not there before the stop";
    EXPECT_GE(x.sent_after_stop, 20) << "too few echoes after the stop to tell";
    EXPECT_EQ(x.late_after_stop, 0) << "the delay outlived stop";
    EXPECT_TRUE(eventually([&] { return root_qdisc_a() == qdisc_before_; }, 1000, 20)) << "fq outlived stop";
    expect_no_delay("stop");
}

// The drain (StopLetsTheDelayedPacketsLeave) keeps fq and the filter while fq holds packets
// after the last delay ended. Ended there, by `tardy kill` to the live agent or by SIGKILL of
// the agent and then `kill`, nothing may stay: the journal names the qdisc and the filter until
// the drain ends.
TEST_F(VmLab, KillDuringTheDrainLeavesNothing) { kill_mid_drain(false); }

TEST_F(VmLab, KillAfterTheAgentDiedDrainingLeavesNothing) { kill_mid_drain(true); }

TEST_F(VmLab, StopEndsTheDelayAndRestoresTheQdisc) {
    inject({"--delay", "50ms"}, "slow");
    EXPECT_EQ(root_qdisc_a().first, "fq");
    EXPECT_EQ(tardy({"stop", "slow"}).status, 0);
    EXPECT_TRUE(undelayed_within(200)) << "the delay outlived stop";
    expect_no_delay("stop");
    EXPECT_EQ(root_qdisc_a(), qdisc_before_);
}

TEST_F(VmLab, KillEndsTheDelayAndRestoresTheQdisc) {
    inject({"--delay", "50ms"});
    auto k = tardy({"kill"});
    EXPECT_EQ(k.status, 0) << k.err;
    std::printf("%s", k.out.c_str());
    EXPECT_TRUE(undelayed_within(200)) << "the delay outlived kill";
    expect_no_delay("kill");
    EXPECT_EQ(root_qdisc_a(), qdisc_before_);
}

// The lease, judged by the packets themselves: UDP echoes every 5 ms from up to 800 ms before
// the SIGKILL (the probe process takes a while to start in a loaded emulator) to 2.7 s after
// it. Every echo before it must be delayed, the last delayed one must have left within the
// lease (1 s from the agent's last renewal, before the kill) and none sent later may be
// delayed. (Polling with a new probe process per echo judged the emulator's process start
// too: a 6.12 CI run failed it at 1.2 s.)
TEST_F(VmLab, SigkilledAgentsDelayEndsWithinASecondAndKillRestoresTheQdisc) {
    inject({"--delay", "50ms"});
    pid_t agent = agent_pid();
    ProbeResult r;
    std::thread client([&] { r = probe(kExp, "udp-pipe", false, 700, 5, 1000); });
    sleep_ms(800);
    ASSERT_EQ(kill(agent, SIGKILL), 0);
    const double killed = mono_ms();  // after: the agent renewed its lease before this, never after
    client.join();
    ASSERT_EQ(r.sent_at_ms.size(), r.rtt_ms.size());
    double last_late = -1e9;  // ms after the kill
    int late_before = 0, prompt_before = 0, after_lease = 0, lost = 0;
    for (size_t i = 0; i < r.rtt_ms.size(); i++) {
        double at = r.sent_at_ms[i] - killed;
        if (!r.rtt_ms[i]) {
            lost++;
            continue;
        }
        bool late = *r.rtt_ms[i] >= 45;
        if (late) last_late = std::max(last_late, at);
        late_before += late && at < 0;
        prompt_before += !late && at < 0;
        after_lease += at > 1050;
    }
    std::printf("  %zu echoes 5 ms apart: %d delayed and %d not before the SIGKILL, the last delayed one sent %.0f "
                "ms after it (%d sent later than 1050 ms); %d lost\n",
                r.rtt_ms.size(), late_before, prompt_before, last_late, after_lease, lost);
    EXPECT_GE(late_before, 20) << "too few echoes before the SIGKILL to tell";
    EXPECT_EQ(prompt_before, 0) << "the delay was not there before the SIGKILL";
    EXPECT_LE(last_late, 1050) << "the delay outlived the agent's lease (1 s)";
    EXPECT_GE(after_lease, 150) << "too few echoes after the lease to tell";
    EXPECT_EQ(lost, 0);
    expect_no_delay("a SIGKILLed agent (lease)");
    auto k = tardy({"kill"});
    EXPECT_EQ(k.status, 0) << k.err;
    std::printf("%s", k.out.c_str());
    EXPECT_EQ(root_qdisc_a(), qdisc_before_);
}

TEST_F(VmLab, ThroughputAndAccuracyAgainstNetem) {
    // What is compared is how each delay treats TCP, so the stream is window-limited
    // (512 KiB send buffer: about 115 Mbit/s at 20 ms), well below what the emulated CPU can
    // push: a CPU-bound stream would measure the emulator instead (docs/benchmarks.md has
    // those numbers too). Three rounds, each a tardy stream and a netem stream back to back;
    // the ratio is taken within a round and the median judged; RTT samples are pooled.
    constexpr int kSndbuf = 512 * 1024;
    std::vector<double> ratios, tardy_rates, netem_rates, tardy_rtts, netem_rtts;
    for (int round = 0; round < 3; round++) {
        inject({"--delay", "20ms"}, "edt");  // tardy: EDT stamps + fq on the veth
        auto t = udp_rtts(kExp, 30, 10);
        tardy_rtts.insert(tardy_rtts.end(), t.begin(), t.end());
        tardy_rates.push_back(probe(kExp, "stream", false, 0, 0, 0, 2, kSndbuf).stream_mbps);
        ASSERT_EQ(tardy({"stop", "edt"}).status, 0);
        // netem on the same device, the tool people use today
        auto add = run_cmd({"ip", "netns", "exec", lab_->netns_a_name(), "tc", "qdisc", "replace", "dev",
                            lab_->device_a(), "root", "netem", "delay", "20ms"});
        ASSERT_TRUE(add && add->status == 0) << (add ? add->err : "");
        auto n = udp_rtts(kExp, 30, 10);
        netem_rtts.insert(netem_rtts.end(), n.begin(), n.end());
        netem_rates.push_back(probe(kExp, "stream", false, 0, 0, 0, 2, kSndbuf).stream_mbps);
        (void)run_cmd(
            {"ip", "netns", "exec", lab_->netns_a_name(), "tc", "qdisc", "del", "dev", lab_->device_a(), "root"});
        ratios.push_back(tardy_rates.back() / std::max(0.001, netem_rates.back()));
    }
    // The emulator's noise only ever adds time, and it comes and goes with the host's load;
    // the 10th percentile shows what each qdisc itself did, with little of that noise.
    auto p10 = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v.empty() ? -1.0 : v[v.size() / 10];
    };
    double tardy_rtt = p10(tardy_rtts), netem_rtt = p10(netem_rtts);
    double tardy_err = std::abs(tardy_rtt - 20), netem_err = std::abs(netem_rtt - 20);
    std::printf("  20 ms delay over the veth, 3 rounds of back-to-back TCP streams (2 s, 512 KiB sndbuf):\n");
    for (size_t i = 0; i < ratios.size(); i++)
        std::printf("    round %zu: tardy %7.1f Mbit/s, netem %7.1f Mbit/s, ratio %.2f\n", i + 1, tardy_rates[i],
                    netem_rates[i], ratios[i]);
    std::printf("    median throughput ratio tardy/netem: %.2f\n", median(ratios));
    std::printf("    UDP RTT 10th percentile: tardy %.2f ms (error %.2f ms), netem %.2f ms (error %.2f ms)\n",
                tardy_rtt, tardy_err, netem_rtt, netem_err);
    std::printf("    UDP RTT median: tardy %.2f ms, netem %.2f ms\n", median(tardy_rtts), median(netem_rtts));
    EXPECT_GE(median(ratios), 0.8);
    // Both errors include the same emulated round trip (about 1 ms, more when the host is
    // busy); 0.5 ms allows for that noise between the two measurements.
    EXPECT_LE(tardy_err, netem_err + 0.5) << "tardy's delay is less accurate than netem's";
}

}  // namespace
