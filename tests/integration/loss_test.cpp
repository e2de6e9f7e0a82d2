// SPDX-License-Identifier: Apache-2.0
// Loss injected through the real kernel path: TC egress on the sandbox's veth, real sockets
#include <sys/stat.h>
#include <algorithm>
// in the experiment and control cgroups, IPv4 and IPv6, UDP and TCP.
#include "../common/harness.hpp"

using namespace tardy;
using namespace tardy::test;

namespace {

TEST_F(Lab, FullLossHitsOnlyTheExperimentCohort) {
    std::string name = inject({"--loss", "100%", "--for", "1m"}, "blackout");
    ASSERT_EQ(name, "blackout");
    for (bool v6 : {false, true}) {
        auto exp = probe(kExp, "udp", v6, 20, 2, 40);
        auto ctl = probe(kCtl, "udp", v6, 20, 2, 40);
        EXPECT_EQ(exp.answered(), 0) << (v6 ? "IPv6" : "IPv4") << " UDP of the experiment cohort got through";
        EXPECT_EQ(ctl.answered(), ctl.sent) << (v6 ? "IPv6" : "IPv4") << " UDP of the control cohort was hit";
        auto texp = probe(kExp, "tcp", v6, 4, 5, 300);
        auto tctl = probe(kCtl, "tcp", v6, 4, 5, 300);
        EXPECT_EQ(texp.answered(), 0) << "TCP connect of the experiment cohort succeeded";
        EXPECT_EQ(tctl.answered(), tctl.sent) << "TCP connect of the control cohort failed";
    }
    auto l = list_json();
    ASSERT_EQ(l["injections"].size(), 1u);
    const auto& c = l["injections"][0]["counters"];
    EXPECT_GE(c["dropped"].get<uint64_t>(), 40u + 8u);
    EXPECT_EQ(c["matched"], c["dropped"]);
    EXPECT_GT(c["bytes"].get<uint64_t>(), 0u);
}

TEST_F(Lab, PartialLossIsWithinStatisticalBounds) {
    inject({"--loss", "30%"});
    auto exp = probe(kExp, "udp-pipe", false, 600, 1, 200);
    auto ctl = probe(kCtl, "udp-pipe", false, 200, 1, 200);
    // Binomial, n = 600, p = 0.3: sd = 0.0187; accept 5 sd either side.
    EXPECT_NEAR(exp.loss_ratio(), 0.30, 0.094) << exp.sent - exp.answered() << " of " << exp.sent << " lost";
    EXPECT_EQ(ctl.answered(), ctl.sent);
    // A lost SYN is retried after 1 s, so a connect with a 300 ms budget fails with p = 0.3.
    auto texp = probe(kExp, "tcp", false, 60, 5, 300);
    auto tctl = probe(kCtl, "tcp", false, 30, 5, 300);
    EXPECT_NEAR(texp.loss_ratio(), 0.30, 0.2) << texp.sent - texp.answered() << " of 60 connects timed out";
    EXPECT_EQ(tctl.answered(), tctl.sent);
}

TEST_F(Lab, TargetCoversDescendantCgroups) {
    ASSERT_EQ(mkdir((lab_->cgroup(kExp) + "/worker").c_str(), 0755), 0);
    inject({"--loss", "100%"});
    auto r = tardy({"__probe", "--cgroup", lab_->cgroup(kExp) + "/worker", "--netns", lab_->netns_a(), "--to",
                    lab_->server(false), "--port", "7007", "--count", "10", "--interval-ms", "2", "--timeout-ms",
                    "150"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("\"answered\":0"), std::string::npos) << r.out;
}

TEST_F(Lab, PidAndNumericIdResolveToTheSameCgroup) {
    std::ifstream procs(lab_->cgroup(kExp) + "/cgroup.procs");
    std::string pid;
    procs >> pid;
    ASSERT_FALSE(pid.empty());
    auto r = tardy({"inject", "--pid", pid, "--loss", "100%", "--name", "bypid"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(probe(kExp).answered(), 0);
    EXPECT_EQ(probe(kCtl).answered(), 20);
    // The same cgroup by its numeric id: a second packet injection next to the first (issue
    // 10), and both name one cgroup; a second socket-fault injection there is refused.
    struct stat st{};
    ASSERT_EQ(stat(lab_->cgroup(kExp).c_str(), &st), 0);
    auto again = tardy({"inject", "--cgroup", std::to_string(st.st_ino), "--loss", "5%", "--name", "byid"});
    EXPECT_EQ(again.status, 0) << again.err;
    auto l = list_json();
    ASSERT_EQ(l["injections"].size(), 2u) << l.dump();
    EXPECT_EQ(l["injections"][0]["cgroup_id"], l["injections"][1]["cgroup_id"]);
    EXPECT_EQ(l["injections"][0]["cgroup_id"].get<uint64_t>(), static_cast<uint64_t>(st.st_ino));
    ASSERT_EQ(tardy({"inject", "--pid", pid, "--fail", "connect=EPERM", "--name", "c1"}).status, 0);
    auto third = tardy({"inject", "--cgroup", std::to_string(st.st_ino), "--fail", "bind=EPERM"});
    EXPECT_EQ(third.status, 2);
    EXPECT_NE(third.err.find("already has injection 'c1'"), std::string::npos) << third.err;
}

}  // namespace
