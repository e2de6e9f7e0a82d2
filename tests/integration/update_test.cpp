// SPDX-License-Identifier: Apache-2.0
// `tardy update` (issue 13): a live injection's faults changed in place through the real
// kernel path: the new loss measured, the counters kept, no packet or call let through while
// the rules are rewritten, a new deadline enforced, and every refusal one line that changes
// nothing.
#include <thread>

#include "../common/harness.hpp"

using namespace tardy;
using namespace tardy::test;
using nlohmann::json;

namespace {

json injection(Lab& lab, const std::string& name, const json& list) {
    for (const auto& i : list.value("injections", json::array()))
        if (i.value("name", "") == name) return i;
    (void)lab;
    return json::object();
}

// --loss 20% -> --loss 80%: the measured loss follows, the counters go on from where they
// were, the control cohort is untouched.
TEST_F(Lab, UpdateChangesTheLossLiveAndKeepsTheCounters) {
    ASSERT_TRUE(eventually([&] { return probe(kExp, "udp", false, 1, 1, 100).answered() == 1; }, 5000));
    inject({"--loss", "20%"}, "lossy");
    auto before = probe(kExp, "udp", false, 200, 1, 20);
    json c1 = injection(*this, "lossy", list_json())["counters"];
    auto u = tardy({"update", "lossy", "--loss", "80%"});
    ASSERT_EQ(u.status, 0) << u.err;
    EXPECT_NE(u.err.find("lossy now loss 80%"), std::string::npos) << u.err;
    auto after = probe(kExp, "udp", false, 200, 1, 20);
    json i = injection(*this, "lossy", list_json());
    json c2 = i["counters"];
    std::printf("  loss before the update %.3f, after %.3f; matched %s -> %s, dropped %s -> %s\n", before.loss_ratio(),
                after.loss_ratio(), c1["matched"].dump().c_str(), c2["matched"].dump().c_str(),
                c1["dropped"].dump().c_str(), c2["dropped"].dump().c_str());
    EXPECT_NEAR(before.loss_ratio(), 0.2, 0.14);  // n = 200: sd 0.028, 5 sd
    EXPECT_NEAR(after.loss_ratio(), 0.8, 0.14);
    EXPECT_EQ(i["net"]["loss_ppm"], 800000u) << i.dump();
    EXPECT_NE(i.value("faults", "").find("loss 80%"), std::string::npos) << i.dump();
    EXPECT_GE(c2["matched"].get<uint64_t>(), c1["matched"].get<uint64_t>() + 200) << "the counters were reset";
    EXPECT_GE(c2["dropped"].get<uint64_t>(), c1["dropped"].get<uint64_t>() + 100) << "the counters were reset";
    EXPECT_EQ(probe(kCtl, "udp", false, 50, 1, 100).answered(), 50) << "the control cohort lost packets";
}

// 80 updates while UDP echoes and TCP connects run from the target: with 100% loss and 100%
// refusals in every version of the rules, not one echo is answered and not one connect
// succeeds; a rule deleted and put back (a gap) would let some through.
TEST_F(Lab, NoPacketOrCallPassesWhileTheRulesAreRewritten) {
    ASSERT_TRUE(eventually([&] { return probe(kExp, "udp", false, 1, 1, 100).answered() == 1; }, 5000));
    // Two injections, as the probe's UDP socket calls connect() too: the loss for UDP, the
    // refusals for TCP.
    inject({"--loss", "100%", "--proto", "udp"}, "wall");
    inject({"--fail", "connect=ECONNREFUSED:100%", "--proto", "tcp"}, "door");
    ProbeResult udp, tcp;
    std::thread a([&] { udp = probe(kExp, "udp", false, 1500, 1, 2); });
    std::thread b([&] { tcp = probe(kExp, "tcp", false, 600, 5, 50); });
    int updates = 0;
    for (int k = 0; k < 40; k++) {
        auto r = tardy({"update", "wall", "--loss", "100%"});
        EXPECT_EQ(r.status, 0) << r.err;
        updates += r.status == 0;
        r = tardy({"update", "door", "--fail", k % 2 ? "connect=ECONNREFUSED:100%" : "connect=ENETUNREACH:100%"});
        EXPECT_EQ(r.status, 0) << r.err;
        updates += r.status == 0;
    }
    a.join();
    b.join();
    std::printf("  %d updates; UDP echoes answered %d of %d, TCP connects made %d of %d\n", updates, udp.answered(),
                udp.sent, tcp.answered(), tcp.sent);
    EXPECT_GT(udp.sent, 1000);
    EXPECT_EQ(udp.answered(), 0) << "an echo passed during an update";
    EXPECT_EQ(tcp.answered(), 0) << "a connect passed during an update";
    EXPECT_EQ(probe(kCtl, "tcp", false, 10, 1, 1000).answered(), 10) << "the control cohort was refused";
}

// --for from now: a 1 m injection cut to 1 s ends within about a second, in the kernel too.
TEST_F(Lab, UpdateForSetsANewDeadline) {
    inject({"--loss", "100%", "--for", "1m"}, "long");
    ASSERT_EQ(probe(kExp, "udp", false, 5, 1, 50).answered(), 0);
    double t0 = mono_ms();
    auto r = tardy({"update", "long", "--for", "1s"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_LT(injection(*this, "long", list_json()).value("left_ns", uint64_t{0}), 1'000'000'001u);
    EXPECT_TRUE(answers_within(kExp, 2500)) << "the loss outlived its new deadline";
    EXPECT_GT(mono_ms() - t0, 800) << "the loss ended before its new deadline";
}

// Refusals: exit 2, one line naming the problem, and the injection as it was.
TEST_F(Lab, UpdateRefusalsChangeNothing) {
    inject({"--loss", "30%", "--fail", "connect=ECONNREFUSED:10%"}, "mixed");
    json was = injection(*this, "mixed", list_json());
    struct Case {
        std::vector<std::string> args;
        std::string says;
    };
    std::vector<Case> cases{
        {{"update", "nosuch", "--loss", "5%"}, "no active injection named 'nosuch'"},
        {{"update", "mixed"}, "give what to change"},
        {{"update", "mixed", "--loss", "150%"}, "--loss"},
        {{"update", "mixed", "--delay", "50ms"}, "has no delay"},
        {{"update", "mixed", "--jitter", "5ms"}, "has no delay"},
        {{"update", "mixed", "--fail", "bind=EADDRINUSE"}, "not which calls"},
        {{"update", "mixed", "--fail", "connect=EWHAT"}, "EWHAT"},
        {{"update", "mixed", "--loss", "0%", "--fail", "connect=ECONNREFUSED:10%"}, "without its packets faults"},
        {{"update", "mixed", "--for", "0s"}, "--for 0"},
        {{"update", "mixed", "--for", "soon"}, "--for"},
        {{"update", "bad name!", "--loss", "5%"}, "name"},
    };
    for (const auto& c : cases) {
        auto r = tardy(c.args);
        EXPECT_EQ(r.status, 2) << c.args.back() << ": " << r.err;
        EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    }
    json now = injection(*this, "mixed", list_json());
    EXPECT_EQ(now["net"], was["net"]);
    EXPECT_EQ(now["sock"], was["sock"]);
    EXPECT_EQ(now["faults"], was["faults"]);
    // An observation has no fault to change.
    int out = -1;
    auto obs = spawn_cmd({build_dir() + "/tardy", "observe", "--cgroup", lab_->cgroup_rel(kCtl), "--for", "3s", "--name",
                          "watch"},
                         &out);
    ASSERT_TRUE(obs);
    ASSERT_TRUE(eventually([&] { return !injection(*this, "watch", list_json()).empty(); }, 10000));
    auto r = tardy({"update", "watch", "--loss", "5%"});
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_NE(r.err.find("observation"), std::string::npos) << r.err;
    stop_process(*obs, 1000);
    close(out);
}

}  // namespace

namespace {

// The shapes change live too: --duplicate 30% -> 0% with burst loss added, the counters kept;
// a rate cannot appear on an injection without one (it needs fq), refused in one line.
TEST_F(Lab, UpdateChangesTheShapesLive) {
    inject({"--duplicate", "30%"}, "shaped");
    auto before = probe(kExp, "udp", false, 300, 1, 20);
    EXPECT_GT(before.duplicates, 40) << "no duplicates before the update";
    auto u = tardy({"update", "shaped", "--duplicate", "0%", "--loss", "20%", "--loss-burst", "5"});
    ASSERT_EQ(u.status, 0) << u.err;
    EXPECT_NE(u.err.find("shaped now loss 20% in bursts of 5"), std::string::npos) << u.err;
    auto after = probe(kExp, "udp", false, 1200, 1, 15);
    int runs = 0, lost = 0;
    for (size_t k = 0; k < after.rtt_ms.size(); k++)
        if (!after.rtt_ms[k]) lost++, runs += k == 0 || after.rtt_ms[k - 1].has_value();
    double burst = runs ? static_cast<double>(lost) / runs : 0;
    std::printf("  before: %d of %d answered twice; after: %d duplicates, %.1f%% lost in runs of %.2f\n",
                before.duplicates, before.answered(), after.duplicates, 100 * after.loss_ratio(), burst);
    EXPECT_EQ(after.duplicates, 0);
    EXPECT_NEAR(after.loss_ratio(), 0.2, 0.1);
    EXPECT_NEAR(burst, 5, 2.2);
    json i = injection(*this, "shaped", list_json());
    EXPECT_EQ(i["net"]["duplicate_ppm"], 0);
    EXPECT_GE(i["counters"]["duplicated"].get<uint64_t>(), 40u) << "the counters were reset";
    EXPECT_GE(i["counters"]["matched"].get<uint64_t>(), 1500u);

    auto r = tardy({"update", "shaped", "--rate", "1mbit"});
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("has no rate, and one cannot be added live"), std::string::npos) << r.err;
    auto b = tardy({"update", "shaped", "--loss-burst", "0.5"});
    EXPECT_EQ(b.status, 2);
    EXPECT_NE(b.err.find("--loss-burst"), std::string::npos) << b.err;
    EXPECT_EQ(injection(*this, "shaped", list_json())["net"]["ge_r_ppm"], 200'000) << "a refused update changed it";
}

}  // namespace

// Two `tardy update`s at once, each changing a different fault, both land: each reads the
// faults, merges its flag in, and the agent refuses a merge made on faults that changed since
// (then the client merges again). Without that, the later one wrote back the value the
// earlier one had just changed.
TEST_F(Lab, RacingUpdatesOfDifferentFaultsBothLand) {
    inject({"--loss", "1%", "--duplicate", "1%"}, "racy");
    for (int round = 2; round <= 13; round++) {
        std::string loss = std::to_string(round) + "%", dup = std::to_string(round + 20) + "%";
        pid_t a = fork();
        if (a == 0) {
            execl((build_dir() + "/tardy").c_str(), "tardy", "update", "racy", "--loss", loss.c_str(),
                  static_cast<char*>(nullptr));
            _exit(127);
        }
        pid_t b = fork();
        if (b == 0) {
            execl((build_dir() + "/tardy").c_str(), "tardy", "update", "racy", "--duplicate", dup.c_str(),
                  static_cast<char*>(nullptr));
            _exit(127);
        }
        int sa = 0, sb = 0;
        waitpid(a, &sa, 0);
        waitpid(b, &sb, 0);
        EXPECT_EQ(sa, 0) << "round " << round;
        EXPECT_EQ(sb, 0) << "round " << round;
        auto i = list_json()["injections"][0];
        EXPECT_EQ(i["net"]["loss_ppm"].get<uint32_t>(), static_cast<uint32_t>(round * 10000)) << "round " << round;
        EXPECT_EQ(i["net"]["duplicate_ppm"].get<uint32_t>(), static_cast<uint32_t>((round + 20) * 10000))
            << "round " << round;
        EXPECT_EQ(i["revision"].get<uint64_t>(), static_cast<uint64_t>(2 * (round - 1))) << "round " << round;
    }
}
