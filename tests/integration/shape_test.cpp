// SPDX-License-Identifier: Apache-2.0
// netem's shapes that need no fq, through the real kernel path on the host: duplicated
// requests answered twice by the server, burst loss seen as runs of lost echoes, each on the
// experiment cohort only. Delay distributions, reorder and rate need fq: vm_shape_test.cpp.
#include <numeric>

#include "../common/harness.hpp"

using namespace tardy;
using namespace tardy::test;

namespace {

// Mean length of runs of consecutive lost echoes, and how many runs.
std::pair<double, int> burst_stats(const ProbeResult& r) {
    int runs = 0, lost = 0;
    bool in_run = false;
    for (const auto& x : r.rtt_ms) {
        if (!x) {
            lost++;
            runs += !in_run;
        }
        in_run = !x;
    }
    return {runs ? static_cast<double>(lost) / runs : 0.0, runs};
}

TEST_F(Lab, DuplicatedRequestsAreAnsweredTwiceByTheServer) {
    inject({"--duplicate", "30%"}, "twice");
    for (bool v6 : {false, true}) {
        // 250 ms to answer: once 26 of 400 IPv6 echoes missed a 40 ms limit on a busy host.
        auto exp = probe(kExp, "udp", v6, 400, 1, 250);
        auto ctl = probe(kCtl, "udp", v6, 200, 1, 250);
        double share = static_cast<double>(exp.duplicates) / std::max(1, exp.answered());
        std::printf("  %s: %d of %d echoes answered twice (%.1f%%); control %d\n", v6 ? "IPv6" : "IPv4",
                    exp.duplicates, exp.answered(), 100 * share, ctl.duplicates);
        EXPECT_EQ(exp.answered(), exp.sent) << "a duplicate must not cost the original";
        // Binomial, n = 400, p = 0.3: sd = 0.023; 5 sd. The last echo's copy may come after the
        // probe stopped reading: at most one short.
        EXPECT_NEAR(share, 0.30, 0.115);
        EXPECT_EQ(ctl.duplicates, 0) << "the control cohort's packets were duplicated";
        EXPECT_EQ(ctl.answered(), ctl.sent);
    }
    auto l = list_json();
    ASSERT_EQ(l["injections"].size(), 1u);
    const auto& inj = l["injections"][0];
    EXPECT_EQ(inj["net"]["duplicate_ppm"], 300'000);
    EXPECT_GE(inj["counters"]["duplicated"].get<uint64_t>(), 150u);
    EXPECT_EQ(inj["counters"]["dropped"], 0);
}

TEST_F(Lab, BurstLossComesInRunsAndPlainLossDoesNot) {
    inject({"--loss", "20%", "--loss-burst", "5"}, "bursty");
    auto l = list_json();
    ASSERT_EQ(l["injections"].size(), 1u);
    EXPECT_EQ(l["injections"][0]["net"]["ge_r_ppm"], 200'000);
    auto table = tardy({"list"});
    EXPECT_NE(table.out.find("loss 20% in bursts of 5"), std::string::npos) << table.out;

    auto exp = probe(kExp, "udp-pipe", false, 1500, 1, 200);
    auto ctl = probe(kCtl, "udp-pipe", false, 200, 1, 200);
    auto [burst, runs] = burst_stats(exp);
    std::printf("  bursts: %.1f%% lost in %d runs, mean run %.2f echoes\n", 100 * exp.loss_ratio(), runs, burst);
    // A Gilbert-Elliott chain: about 60 runs of mean 5 (sd 4.5 each), good gaps of mean 20.
    EXPECT_NEAR(exp.loss_ratio(), 0.20, 0.09);
    EXPECT_NEAR(burst, 5.0, 2.0);
    EXPECT_EQ(ctl.answered(), ctl.sent) << "the control cohort lost echoes";
    tardy({"stop", "bursty"});

    inject({"--loss", "20%"}, "plain");
    auto plain = probe(kExp, "udp-pipe", false, 1000, 1, 200);
    auto [plain_run, plain_runs] = burst_stats(plain);
    std::printf("  independent: %.1f%% lost in %d runs, mean run %.2f echoes\n", 100 * plain.loss_ratio(), plain_runs,
                plain_run);
    EXPECT_LT(plain_run, 1.6);  // 1 / 0.8 = 1.25
}

TEST_F(Lab, GemodelAsNetemWritesIt) {
    // netem's `loss gemodel 10% 30% 100% 0%`: bad 1/4 of the time, 25% loss.
    inject({"--loss-gemodel", "10%,30%,100%,0%"}, "ge");
    auto exp = probe(kExp, "udp-pipe", true, 1000, 1, 200);
    auto [burst, runs] = burst_stats(exp);
    std::printf("  gemodel: %.1f%% lost in %d runs, mean run %.2f\n", 100 * exp.loss_ratio(), runs, burst);
    EXPECT_NEAR(exp.loss_ratio(), 0.25, 0.1);
    // Bursty: independent 25% loss has runs of 1.33. The model's mean run is 1 / R = 3.33
    // (sd 2.8 a run; about 75 runs: a standard error of 0.33, the bounds at 4). Until the lab
    // put its addresses on after the links were up, the first second of IPv6 was lost to
    // neighbour discovery and this read 4.2-5.1.
    EXPECT_GT(burst, 2.0);
    EXPECT_LT(burst, 4.66);
    // With 1-h 100% and 1-k 0% it is simple burst loss, and list says so.
    auto table = tardy({"list"});
    EXPECT_NE(table.out.find("loss 25% in bursts of 3.33"), std::string::npos) << table.out;
}

}  // namespace
