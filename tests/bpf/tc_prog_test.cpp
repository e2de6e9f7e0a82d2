// SPDX-License-Identifier: Apache-2.0
// The TCX variant of the TC egress program (tardy_tc_egress) run by BPF_PROG_TEST_RUN on
// crafted packets; the fixture is in tc_fixture.hpp, the clsact variant in tc_cls_prog_test.cpp.
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>

#include "tc_fixture.hpp"

using namespace tardy;
using namespace tardy::test;

namespace {

constexpr uint32_t kDrop = TARDY_TC_LOST_TCX;  // the TCX variant: a silent loss

const Family kFamilies[] = {Family::V4, Family::V6};
const Proto kProtos[] = {Proto::Udp, Proto::Tcp};

TEST_F(TcProg, PacketOfAnotherCgroupIsUntouched) {
    put(leaf_id_ + 1000000, 0, 50 * kMs, 0, TARDY_PPM);
    for (auto f : kFamilies)
        for (auto p : kProtos) {
            auto out = run(make_packet(f, p), 1234);
            EXPECT_EQ(out.retval, kNext) << describe(f, p);
            EXPECT_EQ(out.tstamp, 1234u) << describe(f, p);
        }
    EXPECT_EQ(counters(0).matched, 0u);
}

TEST_F(TcProg, FullLossDropsEveryFamilyAndCountsBytes) {
    put(leaf_id_, 3, 0, 0, TARDY_PPM);
    uint64_t bytes = 0;
    for (auto f : kFamilies)
        for (auto p : kProtos) {
            auto pkt = make_packet(f, p);
            bytes += pkt.size();
            EXPECT_EQ(run(pkt).retval, kDrop) << describe(f, p);
        }
    auto c = counters(3);
    EXPECT_EQ(c.matched, 4u);
    EXPECT_EQ(c.dropped, 4u);
    EXPECT_EQ(c.delayed, 0u);
    EXPECT_EQ(c.bytes, bytes);
}

TEST_F(TcProg, RuleOnAnAncestorCoversDescendants) {
    put(parent_id_, 1, 0, 0, TARDY_PPM);
    EXPECT_EQ(run(make_packet(Family::V4, Proto::Udp)).retval, kDrop);
    EXPECT_EQ(counters(1).dropped, 1u);
}

TEST_F(TcProg, DeepestRuleWins) {
    put(parent_id_, 1, 0, 0, TARDY_PPM);
    put(leaf_id_, 2, 20 * kMs, 0, 0);
    auto out = run(make_packet(Family::V6, Proto::Tcp));
    EXPECT_EQ(out.retval, kNext);
    EXPECT_GT(out.tstamp, 0u);
    EXPECT_EQ(counters(1).matched, 0u);
    EXPECT_EQ(counters(2).delayed, 1u);
}

TEST_F(TcProg, DelayStampsDepartureTime) {
    put(leaf_id_, 0, 50 * kMs, 0, 0);
    for (auto f : kFamilies)
        for (auto p : kProtos) {
            uint64_t before = mono_ns();
            auto out = run(make_packet(f, p));
            uint64_t after = mono_ns();
            EXPECT_EQ(out.retval, kNext) << describe(f, p);
            EXPECT_GE(out.tstamp, before + 50 * kMs) << describe(f, p);
            EXPECT_LE(out.tstamp, after + 50 * kMs) << describe(f, p);
        }
    EXPECT_EQ(counters(0).delayed, 4u);
}

TEST_F(TcProg, DelayStartsFromALaterPacingStamp) {
    put(leaf_id_, 0, 50 * kMs, 0, 0);
    uint64_t paced = mono_ns() + 10 * kMs;  // TCP pacing already holds it back 10 ms
    auto out = run(make_packet(Family::V4, Proto::Tcp), paced);
    EXPECT_EQ(out.tstamp, paced + 50 * kMs);
}

TEST_F(TcProg, JitterStaysWithinBoundsAndSpreads) {
    put(leaf_id_, 0, 50 * kMs, 10 * kMs, 0);
    std::set<int64_t> offsets;
    for (int i = 0; i < 300; i++) {
        uint64_t before = mono_ns();
        auto out = run(make_packet(Family::V4, Proto::Udp));
        uint64_t after = mono_ns();
        ASSERT_GE(out.tstamp, before + 40 * kMs);
        ASSERT_LE(out.tstamp, after + 60 * kMs);
        offsets.insert(static_cast<int64_t>(out.tstamp - before) / static_cast<int64_t>(kMs));
    }
    EXPECT_GE(offsets.size(), 15u) << "300 jittered stamps should spread over most of the 20 ms window";
}

TEST_F(TcProg, DepartureBeyondTheHorizonIsDropped) {
    put(leaf_id_, 0, TARDY_HORIZON_NS + kMs, 0, 0);
    EXPECT_EQ(run(make_packet(Family::V4, Proto::Udp)).retval, kDrop);
    EXPECT_EQ(counters(0).dropped, 1u);
}

TEST_F(TcProg, ExpiredRuleIsIgnored) {
    put(leaf_id_, 0, 0, 0, TARDY_PPM, mono_ns() - 1);
    EXPECT_EQ(run(make_packet(Family::V4, Proto::Udp)).retval, kNext);
    EXPECT_EQ(counters(0).matched, 0u);
}

TEST_F(TcProg, RuleExpiresInTheKernelOnTime) {
    const uint64_t expires = mono_ns() + 100 * kMs;
    put(leaf_id_, 0, 0, 0, TARDY_PPM, expires);
    EXPECT_EQ(run(make_packet(Family::V4, Proto::Udp)).retval, kDrop);
    // Sleep until the very nanosecond of expiry (not "long enough"): the rule must be gone then.
    timespec at{static_cast<time_t>(expires / 1'000'000'000ULL), static_cast<long>(expires % 1'000'000'000ULL)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, nullptr) == EINTR) {
    }
    EXPECT_EQ(run(make_packet(Family::V4, Proto::Udp)).retval, kNext);
}

TEST_F(TcProg, DisarmedControlMapPassesEverything) {
    put(leaf_id_, 0, 50 * kMs, 0, TARDY_PPM);
    obj_->control()->armed = 0;
    auto out = run(make_packet(Family::V6, Proto::Udp), 77);
    EXPECT_EQ(out.retval, kNext);
    EXPECT_EQ(out.tstamp, 77u);
    EXPECT_EQ(counters(0).matched, 0u);
}

TEST_F(TcProg, LapsedLeasePassesEverything) {
    put(leaf_id_, 0, 0, 0, TARDY_PPM);
    obj_->control()->lease_deadline_ns = mono_ns() - 1;
    EXPECT_EQ(run(make_packet(Family::V4, Proto::Tcp)).retval, kNext);
    obj_->control()->lease_deadline_ns = mono_ns() + 1000 * kMs;
    EXPECT_EQ(run(make_packet(Family::V4, Proto::Tcp)).retval, kDrop);
}

TEST_F(TcProg, DeletedRuleStopsMatchingDespiteTheCache) {
    put(leaf_id_, 0, 0, 0, TARDY_PPM);
    EXPECT_EQ(run(make_packet(Family::V4, Proto::Udp)).retval, kDrop);  // cached: leaf -> leaf
    ASSERT_TRUE(obj_->delete_rule(leaf_id_));
    EXPECT_EQ(run(make_packet(Family::V4, Proto::Udp)).retval, kNext);
    put(parent_id_, 1, 0, 0, TARDY_PPM);  // a new ancestor rule is found without a restart
    EXPECT_EQ(run(make_packet(Family::V4, Proto::Udp)).retval, kDrop);
}

// The cache's first level is direct-mapped by the low bits of the cgroup id: two cgroups whose
// ids share them take the same entry in turn, and each packet still gets its own cgroup's
// rules (a rule on A only; packets from A, B, A, B, ...).
TEST_F(TcProg, CgroupsSharingAFirstLevelCacheEntryKeepTheirOwnRules) {
    auto fs = CgroupFs::detect();
    ASSERT_TRUE(fs) << fs.error().message;
    std::string top = fs->mount() + "/tardy-l1-" + std::to_string(getpid());
    ASSERT_EQ(mkdir(top.c_str(), 0755), 0) << std::strerror(errno);
    struct Cleanup {
        std::string top, home;
        ~Cleanup() {
            std::ofstream(home + "/cgroup.procs") << getpid() << std::flush;
            remove_cgroup_tree(top);
        }
    } cleanup{top, fs->by_id(leaf_id_) ? fs->by_id(leaf_id_)->path : ""};
    ASSERT_FALSE(cleanup.home.empty());
    // Cgroup ids are mostly allocated one after the other: the 1025th new cgroup at the latest
    // shares the first's low ten bits.
    uint64_t a = 0, b = 0;
    std::string pa, pb;
    for (int i = 0; i < 4 * TARDY_CGROUP_L1 && !b; i++) {
        std::string p = top + "/c" + std::to_string(i);
        ASSERT_EQ(mkdir(p.c_str(), 0755), 0) << std::strerror(errno);
        auto cg = fs->by_path(p);
        ASSERT_TRUE(cg) << cg.error().message;
        if (!a) {
            a = cg->id, pa = p;
        } else if ((cg->id & (TARDY_CGROUP_L1 - 1)) == (a & (TARDY_CGROUP_L1 - 1))) {
            b = cg->id, pb = p;
        }
    }
    ASSERT_NE(b, 0u) << "no two cgroup ids shared their low bits";
    put(a, 0, 0, 0, TARDY_PPM);
    auto join = [&](const std::string& p) { std::ofstream(p + "/cgroup.procs") << getpid() << std::flush; };
    for (int round = 0; round < 3; round++) {
        join(pa);
        EXPECT_EQ(run(make_packet(Family::V4, Proto::Udp)).retval, kDrop) << "A's packet, round " << round;
        join(pb);
        EXPECT_EQ(run(make_packet(Family::V4, Proto::Udp)).retval, kNext) << "B's packet, round " << round;
    }
    EXPECT_EQ(counters(0).matched, 3u);
}

TEST_F(TcProg, SeededLossRateIsWithinBoundsAndReproducible) {
    constexpr int kRuns = 20000;
    put(leaf_id_, 0, 0, 0, 300000);  // 30%
    run(make_packet(Family::V4, Proto::Udp), 0, kRuns);
    auto first = counters(0);
    ASSERT_EQ(first.matched, static_cast<uint64_t>(kRuns));
    double rate = static_cast<double>(first.dropped) / kRuns;
    // sd = sqrt(.3 * .7 / 20000) = 0.0032; 5 sd either side.
    EXPECT_NEAR(rate, 0.30, 0.016) << first.dropped << " of " << kRuns;

    load(42);  // same seed, fresh state: the same decisions
    put(leaf_id_, 0, 0, 0, 300000);
    run(make_packet(Family::V4, Proto::Udp), 0, kRuns);
    EXPECT_EQ(counters(0).dropped, first.dropped);

    load(7);  // another seed: another sequence
    put(leaf_id_, 0, 0, 0, 300000);
    run(make_packet(Family::V4, Proto::Udp), 0, kRuns);
    EXPECT_NE(counters(0).dropped, first.dropped);
}

TEST_F(TcProg, SmallLossRatesAreHonoured) {
    constexpr int kRuns = 100000;
    put(leaf_id_, 0, 0, 0, 10000);  // 1%
    run(make_packet(Family::V6, Proto::Tcp), 0, kRuns);
    auto c = counters(0);
    // sd = sqrt(.01 * .99 / 1e5) = 0.00031; 5 sd.
    EXPECT_NEAR(static_cast<double>(c.dropped) / kRuns, 0.01, 0.0016) << c.dropped;
}

}  // namespace
