// SPDX-License-Identifier: Apache-2.0
// --reorder-gap (netem's gap) through a stock kernel, beside netem on the same device in the
// same run: `--delay 50ms --reorder 100% --reorder-gap 4` and `netem delay 50ms reorder 100%
// gap 4` each send every 4th request at once and delay the three before it. The requests are
// UDP echoes, one at a time (each waits for its answer), so the nth echo is the nth packet the
// experiment cohort sends; an echo under 25 ms was sent at once, one of 50 ms or more waited.
// netem counts every packet of the device (an ARP or neighbour solicitation too), so its
// pattern may shift by one now and then; tardy counts the injection's packets only, and is
// held to the exact pattern.
#include <algorithm>
#include <string>
#include <vector>

#include "../common/harness.hpp"

using namespace tardy;
using namespace tardy::test;

namespace {

class VmReorderLab : public Lab {
protected:
    // The echoes that do not follow "every 4th at once": sent at once out of turn, delayed in
    // their turn, or lost.
    int out_of_pattern(const ProbeResult& p, std::string* shape) {
        int bad = 0;
        for (size_t i = 0; i < p.rtt_ms.size(); i++) {
            bool early = p.rtt_ms[i] && *p.rtt_ms[i] < 25, late = p.rtt_ms[i] && *p.rtt_ms[i] >= 50;
            *shape += early ? 'o' : late ? '.' : '?';
            bad += i % 4 == 3 ? !early : !late;
        }
        return bad;
    }
};

TEST_F(VmReorderLab, EveryGapthPacketLeavesAtOnceAsWithNetem) {
    auto fq = qdisc_kind_available("fq");
    ASSERT_TRUE(fq && *fq) << "needs sch_fq: run it in the VM";
    constexpr int kCount = 24;
    // ARP and neighbour entries first, so that netem's count below is the echoes'.
    ASSERT_EQ(probe(kExp, "udp", false, 2, 1, 500).answered(), 2);
    inject({"--delay", "50ms", "--reorder", "100%", "--reorder-gap", "4"}, "gap");
    auto t = probe(kExp, "udp", false, kCount, 5, 400);
    auto j = list_json()["injections"][0];
    ASSERT_EQ(tardy({"stop", "gap"}).status, 0);
    std::string err;
    auto netem_root = put_root_qdisc_a("netem delay 50ms reorder 100% gap 4", &err);  // removed at the end, also on a failure
    ASSERT_TRUE(netem_root) << err;
    auto n = probe(kExp, "udp", false, kCount, 5, 400);
    std::string ts, ns;
    int tbad = out_of_pattern(t, &ts);
    (void)out_of_pattern(n, &ns);  // for its shape: netem's count started elsewhere (below)
    std::printf("  %d echoes, o at once, . delayed:\n    tardy %s (%d out of pattern, reordered %s)\n"
                "    netem %s\n",
                kCount, ts.c_str(), tbad, j["counters"]["reordered"].dump().c_str(), ns.c_str());
    EXPECT_EQ(tbad, 0) << ts;
    EXPECT_EQ(j["counters"]["reordered"], kCount / 4u);
    EXPECT_NE(j["faults"].get<std::string>().find("reorder 100% gap 4"), std::string::npos) << j.dump();
    // netem: the same spacing (every 4th at once), wherever its count started. A packet of
    // the device's own that netem counts (an ARP or neighbour probe) shifts the rest of the
    // pattern by one (a CI run on 6.1: ..o...o......o...o...o..), so the spacing is judged
    // between consecutive echoes sent at once: at most two spacings other than 4, and no
    // echo lost or in between.
    std::vector<int> at_once;
    for (int i = 0; i < kCount; i++)
        if (ns[i] == 'o') at_once.push_back(i);
    int irregular = 0;
    for (size_t k = 1; k < at_once.size(); k++) irregular += at_once[k] - at_once[k - 1] != 4;
    EXPECT_GE(at_once.size(), kCount / 4u - 2) << "netem's own pattern: " << ns;
    EXPECT_LE(irregular, 2) << "netem's own pattern: " << ns;
    EXPECT_EQ(ns.find('?'), std::string::npos) << "netem's own pattern: " << ns;
}

}  // namespace
