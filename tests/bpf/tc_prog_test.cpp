// The TC egress program run by BPF_PROG_TEST_RUN on crafted packets. Rules on "leaf" (this
// process's cgroup, see self_cgroup.hpp) match directly, rules on its parent through the
// ancestor walk, rules on any other id not at all.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <set>

#include "../common/packets.hpp"
#include "../common/privileges.hpp"
#include "../common/self_cgroup.hpp"
#include "sys/cgroup.hpp"
#include "lab/sandbox.hpp"
#include "loader/tc_object.hpp"

using namespace tardy;
using namespace tardy::test;

namespace {

uint64_t mono_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + ts.tv_nsec;
}

constexpr uint64_t kMs = 1'000'000;
constexpr uint32_t kNext = static_cast<uint32_t>(TARDY_TC_NEXT);
constexpr uint32_t kDrop = TARDY_TC_DROP;

struct RunOut {
    uint32_t retval = 0;
    uint64_t tstamp = 0;
    uint32_t duration_ns = 0;
};

class TcProg : public ::testing::Test {
protected:
    void SetUp() override {
        TARDY_REQUIRE_ROOT();
        cg_ = std::make_unique<SelfInCgroup>("tardy-bpftest");
        ASSERT_TRUE(cg_->ok()) << "could not move into a test cgroup";
        leaf_id_ = cg_->leaf_id;
        parent_id_ = cg_->parent_id;
        load(42);
    }

    void TearDown() override {
        obj_.reset();
        cg_.reset();
    }

    void load(uint64_t seed) {
        obj_.reset();
        auto o = TcObject::load({"", seed});
        ASSERT_TRUE(o) << o.error().message;
        obj_ = std::move(*o);
        obj_->control()->armed = 1;
        obj_->control()->lease_deadline_ns = 0;
    }

    void put(uint64_t cgid, uint32_t slot, uint64_t delay_ns, uint64_t jitter_ns, uint32_t loss_ppm,
             uint64_t expires_ns = ~0ULL) {
        tardy_rule r{};
        r.slot = slot;
        r.delay_ns = delay_ns;
        r.jitter_ns = jitter_ns;
        r.loss_ppm = loss_ppm;
        r.expires_ns = expires_ns;
        ASSERT_TRUE(obj_->reset_counters(slot));
        auto ok = obj_->put_rule(cgid, r);
        ASSERT_TRUE(ok) << ok.error().message;
    }

    RunOut run(const std::vector<uint8_t>& pkt, uint64_t tstamp_in = 0, int repeat = 1) {
        __sk_buff ctx{};
        ctx.tstamp = tstamp_in;
        __sk_buff ctx_out{};
        LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt.data(), .data_out = nullptr,
                    .data_size_in = static_cast<__u32>(pkt.size()), .data_size_out = 0, .ctx_in = &ctx,
                    .ctx_out = &ctx_out, .ctx_size_in = sizeof ctx, .ctx_size_out = sizeof ctx_out, .retval = 0,
                    .repeat = repeat);
        int err = bpf_prog_test_run_opts(obj_->egress_prog_fd(), &o);
        EXPECT_EQ(err, 0) << "prog_test_run: " << strerror(errno);
        return {o.retval, ctx_out.tstamp, o.duration};
    }

    tardy_counters counters(uint32_t slot) {
        auto c = obj_->counters(slot);
        EXPECT_TRUE(c);
        return c ? *c : tardy_counters{};
    }

    std::unique_ptr<TcObject> obj_;
    std::unique_ptr<SelfInCgroup> cg_;
    uint64_t leaf_id_ = 0, parent_id_ = 0;
};

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
    put(leaf_id_, 0, 0, 0, TARDY_PPM, mono_ns() + 100 * kMs);
    EXPECT_EQ(run(make_packet(Family::V4, Proto::Udp)).retval, kDrop);
    timespec ts{0, 150'000'000};
    nanosleep(&ts, nullptr);
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
