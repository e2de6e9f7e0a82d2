// SPDX-License-Identifier: Apache-2.0
// The clsact variant of the TC egress program (tardy_tc_egress_cls) under BPF_PROG_TEST_RUN.
// It differs from the TCX variant in what it returns: a delayed packet is stamped, a clone of
// it is sent to the same device's egress and the original is consumed (TC_ACT_STOLEN, see
// bpf/lib/steal.bpf.h); a lost one is consumed too (bpf/lib/lose.bpf.h).
//
// PROG_TEST_RUN gives the test skb the loopback device of the caller's network namespace, so
// the clone really is transmitted there: each test runs in a scratch namespace of its own
// (scratch_netns.hpp) with only `lo`, and counts lo's transmitted packets to see the clone.
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "../common/scratch_netns.hpp"
#include "tc_fixture.hpp"

using namespace tardy;
using namespace tardy::test;

namespace {

constexpr uint32_t kStolen = 4;  // TC_ACT_STOLEN

// Sets or clears IFF_UP on lo in the calling thread's namespace.
bool set_lo_up(bool up) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return false;
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    bool ok = ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
    if (ok) {
        ifr.ifr_flags = static_cast<short>(up ? (ifr.ifr_flags | IFF_UP) : (ifr.ifr_flags & ~IFF_UP));
        ok = ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
    }
    close(s);
    return ok;
}

// lo's transmitted packets in the calling thread's namespace (/proc/thread-self/net/dev).
uint64_t lo_tx_packets() {
    std::ifstream f("/proc/thread-self/net/dev");
    std::string line;
    while (std::getline(f, line)) {
        auto colon = line.find(':');
        if (colon == std::string::npos || line.substr(0, colon).find("lo") == std::string::npos) continue;
        std::istringstream in(line.substr(colon + 1));
        uint64_t v[10] = {};
        for (auto& x : v) in >> x;
        return v[9];  // rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes packets
    }
    return ~0ULL;
}

class TcClsProg : public TcProg {
protected:
    void SetUp() override {
        TcProg::SetUp();
        if (HasFatalFailure() || IsSkipped()) return;
        ns_.emplace();
        ASSERT_TRUE(ns_->entered()) << "unshare(CLONE_NEWNET): " << std::strerror(errno);
        ASSERT_TRUE(set_lo_up(true)) << "lo up in the scratch namespace: " << std::strerror(errno);
    }
    void TearDown() override {
        ns_.reset();
        TcProg::TearDown();
    }
    int prog_fd() const override { return obj_->egress_cls_prog_fd(); }

    std::optional<ScratchNetns> ns_;
};

const Family kFamilies[] = {Family::V4, Family::V6};
const Proto kProtos[] = {Proto::Udp, Proto::Tcp};

TEST_F(TcClsProg, DelayedPacketIsStampedClonedToTheDeviceAndStolen) {
    put(leaf_id_, 0, 50 * kMs, 0, 0);
    const uint64_t tx0 = lo_tx_packets();
    for (auto f : kFamilies)
        for (auto p : kProtos) {
            uint64_t before = mono_ns();
            auto out = run(make_packet(f, p));
            uint64_t after = mono_ns();
            EXPECT_EQ(out.retval, kStolen) << describe(f, p);
            EXPECT_GE(out.tstamp, before + 50 * kMs) << describe(f, p);
            EXPECT_LE(out.tstamp, after + 50 * kMs) << describe(f, p);
        }
    EXPECT_EQ(lo_tx_packets() - tx0, 4u) << "one clone per delayed packet leaves on the device";
    auto c = counters(0);
    EXPECT_EQ(c.matched, 4u);
    EXPECT_EQ(c.delayed, 4u);
    EXPECT_EQ(c.dropped, 0u);
}

TEST_F(TcClsProg, DelayStartsFromALaterPacingStamp) {
    put(leaf_id_, 0, 20 * kMs, 0, 0);
    uint64_t paced = mono_ns() + 10 * kMs;
    auto out = run(make_packet(Family::V6, Proto::Tcp), paced);
    EXPECT_EQ(out.retval, kStolen);
    EXPECT_EQ(out.tstamp, paced + 20 * kMs);
}

TEST_F(TcClsProg, LostPacketIsStolenWithoutAClone) {
    put(leaf_id_, 2, 50 * kMs, 0, TARDY_PPM);
    const uint64_t tx0 = lo_tx_packets();
    for (auto f : kFamilies)
        for (auto p : kProtos) {
            auto out = run(make_packet(f, p), 99);
            EXPECT_EQ(out.retval, static_cast<uint32_t>(TARDY_TC_LOST_CLS)) << describe(f, p);
            EXPECT_EQ(out.tstamp, 99u) << describe(f, p) << ": a lost packet is not stamped";
        }
    EXPECT_EQ(lo_tx_packets(), tx0) << "nothing of a lost packet leaves";
    auto c = counters(2);
    EXPECT_EQ(c.dropped, 4u);
    EXPECT_EQ(c.delayed, 0u);
}

TEST_F(TcClsProg, LossOnlyRulePassesTheRestUnstampedAndUncloned) {
    put(leaf_id_, 0, 0, 0, 0);  // a rule that matches but neither drops nor delays
    const uint64_t tx0 = lo_tx_packets();
    auto out = run(make_packet(Family::V4, Proto::Udp), 1234);
    EXPECT_EQ(out.retval, kNext);
    EXPECT_EQ(out.tstamp, 1234u);
    EXPECT_EQ(lo_tx_packets(), tx0);
    EXPECT_EQ(counters(0).matched, 1u);
}

TEST_F(TcClsProg, PacketOfAnotherCgroupIsNeitherStampedNorCloned) {
    put(leaf_id_ + 1000000, 0, 50 * kMs, 0, 0);
    const uint64_t tx0 = lo_tx_packets();
    auto out = run(make_packet(Family::V4, Proto::Tcp), 77);
    EXPECT_EQ(out.retval, kNext);
    EXPECT_EQ(out.tstamp, 77u);
    EXPECT_EQ(lo_tx_packets(), tx0);
}

TEST_F(TcClsProg, DisarmedControlMapPassesDelayedTraffic) {
    put(leaf_id_, 0, 50 * kMs, 0, 0);
    obj_->control()->armed = 0;
    auto out = run(make_packet(Family::V6, Proto::Udp), 5);
    EXPECT_EQ(out.retval, kNext);
    EXPECT_EQ(out.tstamp, 5u);
    EXPECT_EQ(counters(0).matched, 0u);
}

}  // namespace
