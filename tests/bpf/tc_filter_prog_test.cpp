// SPDX-License-Identifier: Apache-2.0
// The TC egress program's filters (--peer, --except-peer, --port, --except-port, --proto),
// several injections on one cgroup, and --flows, on crafted packets by BPF_PROG_TEST_RUN.
// The same filters on real sockets: tests/integration/blast_radius_test.cpp.
#include "model/filter.hpp"
#include "tc_fixture.hpp"

using namespace tardy;
using namespace tardy::test;

namespace {

constexpr uint32_t kDrop = TARDY_TC_LOST_TCX;

class TcFilter : public TcProg {
protected:
    // Rules on this process's cgroup, in this order, as the agent writes them.
    void put_set(std::vector<tardy_rule> rules) {
        tardy_rule_set set{};
        for (auto& r : rules) {
            if (r.expires_ns == 0) r.expires_ns = ~0ULL;
            ASSERT_TRUE(obj_->reset_counters(r.slot));
            ASSERT_TRUE(obj_->put_slot_rule(r));
            set.slots[set.n++] = r.slot;
            set.parse |= r.filtered || r.flows_ppm;
        }
        auto ok = obj_->put_rules(leaf_id_, set);
        ASSERT_TRUE(ok) << ok.error().message;
    }
    static tardy_rule rule(uint32_t slot, uint32_t loss_ppm, uint64_t delay_ns, const FilterArgs& fa = {}) {
        tardy_rule r{};
        r.slot = slot;
        r.loss_ppm = loss_ppm;
        r.delay_ns = delay_ns;
        auto f = build_filter(fa);
        EXPECT_TRUE(f) << f.error().message;
        auto t = encode(*f);
        EXPECT_TRUE(t);
        r.filter = *t;
        r.filtered = f->empty() ? 0 : 1;
        return r;
    }
    uint32_t verdict(Family f, Proto p, const char* dst, uint16_t dport, uint16_t sport = 40000) {
        return run(make_packet(f, p, 64, dst, dport, sport)).retval;
    }
};

TEST_F(TcFilter, PeerFilterHitsThatPeerOnlyV4AndV6) {
    put_set({rule(0, TARDY_PPM, 0, {{"198.18.0.2", "fd00:7a7d::/64"}, {}, {}, "", ""})});
    EXPECT_EQ(verdict(Family::V4, Proto::Tcp, "198.18.0.2", 80), kDrop);
    EXPECT_EQ(verdict(Family::V4, Proto::Tcp, "198.18.0.3", 80), kNext);
    EXPECT_EQ(verdict(Family::V6, Proto::Udp, "fd00:7a7d::9", 53), kDrop);
    EXPECT_EQ(verdict(Family::V6, Proto::Udp, "fd00:7a7e::9", 53), kNext);
    auto c = counters(0);
    EXPECT_EQ(c.matched, 2u) << "only matching packets are counted";
    EXPECT_EQ(c.dropped, 2u);
}

TEST_F(TcFilter, ExclusionsWin) {
    put_set({rule(0, TARDY_PPM, 0, {{"198.18.0.0/24"}, {"198.18.0.3"}, {}, "", "53"})});
    EXPECT_EQ(verdict(Family::V4, Proto::Udp, "198.18.0.2", 80), kDrop);
    EXPECT_EQ(verdict(Family::V4, Proto::Udp, "198.18.0.3", 80), kNext) << "an excluded peer";
    EXPECT_EQ(verdict(Family::V4, Proto::Udp, "198.18.0.2", 53), kNext) << "an excluded port";
    EXPECT_EQ(verdict(Family::V6, Proto::Udp, "fd00:7a7d::2", 80), kNext) << "no IPv6 peer was named";
}

TEST_F(TcFilter, PortRangeAndProtocol) {
    put_set({rule(0, TARDY_PPM, 0, {{}, {}, {"tcp"}, "5000-5010", ""})});
    EXPECT_EQ(verdict(Family::V4, Proto::Tcp, nullptr, 5000), kDrop);
    EXPECT_EQ(verdict(Family::V6, Proto::Tcp, nullptr, 5010), kDrop);
    EXPECT_EQ(verdict(Family::V4, Proto::Tcp, nullptr, 5011), kNext);
    EXPECT_EQ(verdict(Family::V4, Proto::Tcp, nullptr, 40000, 5005), kNext) << "the remote port, not the local one";
    EXPECT_EQ(verdict(Family::V4, Proto::Udp, nullptr, 5005), kNext) << "UDP was not asked for";
}

// Two injections on one cgroup are stages in series: the delays of those a packet matches
// add up, a loss in any loses it, and each counts what it matched.
TEST_F(TcFilter, SeveralInjectionsActInSeries) {
    put_set({rule(1, 0, 20 * kMs, {{}, {}, {}, "5432", ""}), rule(2, 0, 10 * kMs), rule(3, TARDY_PPM, 0, {{}, {}, {}, "53", ""})});
    uint64_t t0 = mono_ns();
    auto db = run(make_packet(Family::V4, Proto::Tcp, 64, nullptr, 5432));
    uint64_t t1 = mono_ns();
    EXPECT_EQ(db.retval, kNext);
    EXPECT_GE(db.tstamp, t0 + 30 * kMs);
    EXPECT_LE(db.tstamp, t1 + 30 * kMs);
    auto web = run(make_packet(Family::V4, Proto::Tcp, 64, nullptr, 80));
    uint64_t t2 = mono_ns();
    EXPECT_GE(web.tstamp, t1 + 10 * kMs);
    EXPECT_LE(web.tstamp, t2 + 10 * kMs);
    EXPECT_EQ(verdict(Family::V4, Proto::Udp, nullptr, 53), kDrop);
    EXPECT_EQ(counters(1).matched, 1u);
    EXPECT_EQ(counters(2).matched, 3u);
    EXPECT_EQ(counters(2).delayed, 3u) << "the DNS packet passed the 10 ms stage before it was lost";
    EXPECT_EQ(counters(3).matched, 1u);
    EXPECT_EQ(counters(3).dropped, 1u);
}

TEST_F(TcFilter, ExpiredInjectionLeavesTheOthers) {
    auto gone = rule(1, TARDY_PPM, 0);
    gone.expires_ns = 1;  // long past
    put_set({gone, rule(2, 0, 10 * kMs)});
    auto out = run(make_packet(Family::V4, Proto::Udp));
    EXPECT_EQ(out.retval, kNext);
    EXPECT_GT(out.tstamp, 0u);
    EXPECT_EQ(counters(1).matched, 0u);
}

// --flows: a sticky draw per 5-tuple. Over 4000 flows the share hit is binomial, and a
// flow's every packet gets its flow's verdict.
TEST_F(TcFilter, FlowsAreAStickyShare) {
    auto r = rule(0, TARDY_PPM, 0);
    r.flows_ppm = 100'000;
    r.flow_seed = 12345;
    put_set({r});
    int hit = 0;
    constexpr int kFlows = 4000;
    std::vector<bool> first(kFlows);
    for (int i = 0; i < kFlows; i++) {
        uint16_t sport = static_cast<uint16_t>(20000 + i);
        first[i] = verdict(Family::V4, Proto::Tcp, nullptr, 443, sport) == kDrop;
        hit += first[i];
        if (i % 100 == 0) {
            for (int k = 0; k < 5; k++)
                ASSERT_EQ(verdict(Family::V4, Proto::Tcp, nullptr, 443, sport) == kDrop, first[i]) << sport;
        }
    }
    // Binomial, n = 4000, p = 0.1: sd = 0.0047; 5 sd.
    EXPECT_NEAR(hit / double(kFlows), 0.10, 0.024) << hit;
    // Another injection's seed picks other flows: about 2 * 0.1 * 0.9 of 1000 differ.
    r.flow_seed = 54321;
    put_set({r});
    int differ = 0;
    for (int i = 0; i < 1000; i++)
        differ += (verdict(Family::V4, Proto::Tcp, nullptr, 443, static_cast<uint16_t>(20000 + i)) == kDrop) != first[i];
    EXPECT_GT(differ, 100) << "two seeds hit the same flows";
}

// The rules are copies inside each set (include/tardy/abi.h): a rule written again by its
// slot (`tardy update`) must reach every set that holds it, at once and whole, and a set may
// not name a slot that has no rule.
TEST_F(TcFilter, ARuleWrittenAgainReachesEverySetThatHoldsIt) {
    put_set({rule(1, 0, 0, {{}, {}, {}, "5432", ""}), rule(2, 0, 0)});
    tardy_rule_set other{};
    other.n = 1;
    other.slots[0] = 2;
    ASSERT_TRUE(obj_->put_rules(parent_id_, other));  // the parent's set holds slot 2 as well
    EXPECT_EQ(verdict(Family::V4, Proto::Udp, nullptr, 80), kNext);
    tardy_rule lossy = rule(2, TARDY_PPM, 0);
    lossy.expires_ns = ~0ULL;
    ASSERT_TRUE(obj_->put_slot_rule(lossy));
    EXPECT_EQ(verdict(Family::V4, Proto::Udp, nullptr, 80), kDrop) << "the leaf's copy of slot 2 was not rewritten";
    ASSERT_TRUE(obj_->delete_rule(leaf_id_));  // now the parent's set applies to this process
    EXPECT_EQ(verdict(Family::V4, Proto::Udp, nullptr, 80), kDrop) << "the parent's copy of slot 2 was not rewritten";
    tardy_rule_set orphan{};
    orphan.n = 1;
    orphan.slots[0] = 7;
    auto r = obj_->put_rules(leaf_id_, orphan);
    ASSERT_FALSE(r) << "a set naming a slot without a rule was written";
    EXPECT_NE(r.error().message.find("slot 7 has no rule"), std::string::npos) << r.error().message;
    EXPECT_EQ(verdict(Family::V4, Proto::Udp, nullptr, 80), kDrop) << "the refused set changed what applies";
    ASSERT_TRUE(obj_->delete_rule(parent_id_));
}

}  // namespace
