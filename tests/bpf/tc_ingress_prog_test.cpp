// SPDX-License-Identifier: Apache-2.0
// The ingress delay program (bpf/tc.bpf.c tardy_tc_ingress) by BPF_PROG_TEST_RUN: packets
// addressed to real sockets of this process (bound on loopback here, in this process's test
// cgroup) are matched to the socket's cgroup through the socket lookup and the CO-RE read of
// its cgroup, directly or through an ancestor; a match is -1 (the filter's actions run:
// mirred to the ifb) with the departure stamped; everything else is 0 (no match, passes).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tc_fixture.hpp"

using namespace tardy;
using namespace tardy::test;

namespace {

constexpr uint32_t kMatch = 0xffffffffu, kNoMatch = 0;

class TcIngress : public TcProg {
protected:
    int prog_fd() const override { return obj_->ingress_delay_prog_fd(); }
    void TearDown() override {
        for (int fd : fds_) close(fd);
        TcProg::TearDown();
    }
    // A socket of this process bound to the loopback address of the family; its port.
    uint16_t bound(Family f, Proto p) {
        int fd = socket(f == Family::V4 ? AF_INET : AF_INET6, p == Proto::Udp ? SOCK_DGRAM : SOCK_STREAM, 0);
        EXPECT_GE(fd, 0);
        fds_.push_back(fd);
        sockaddr_storage ss{};
        socklen_t len;
        if (f == Family::V4) {
            auto* a = reinterpret_cast<sockaddr_in*>(&ss);
            a->sin_family = AF_INET;
            a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            len = sizeof *a;
        } else {
            auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
            a->sin6_family = AF_INET6;
            a->sin6_addr = in6addr_loopback;
            len = sizeof *a;
        }
        EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&ss), len), 0) << strerror(errno);
        if (p == Proto::Tcp) {
            EXPECT_EQ(listen(fd, 4), 0);
        }
        EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len), 0);
        return ntohs(f == Family::V4 ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                     : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    }
    void rule(uint64_t cgid, uint32_t scope, uint64_t delay_ns, uint32_t loss_ppm = 0) {
        tardy_rule r{};
        r.slot = 3;
        r.delay_ns = delay_ns;
        r.loss_ppm = loss_ppm;
        r.scope = scope;
        r.expires_ns = ~0ULL;
        ASSERT_TRUE(obj_->reset_counters(3));
        ASSERT_TRUE(obj_->put_rule(cgid, r));
        obj_->bump_generation();
    }
    std::vector<uint8_t> to(Family f, Proto p, uint16_t port) {
        auto pkt = make_packet(f, p, 32, f == Family::V4 ? "127.0.0.1" : "::1", port);
        if (p == Proto::Tcp) pkt[l4_off(f) + 13] = 0x02;  // a SYN, for the listener
        return pkt;
    }
    std::vector<int> fds_;
};

TEST_F(TcIngress, DelaysWhatTheCgroupsSocketsReceiveDirectlyOrThroughAnAncestor) {
    for (uint64_t cg : {leaf_id_, parent_id_}) {
        rule(cg, TARDY_SCOPE_INGRESS, 100 * kMs);
        for (Family f : {Family::V4, Family::V6}) {
            for (Proto p : {Proto::Udp, Proto::Tcp}) {
                uint16_t port = bound(f, p);
                uint64_t t0 = mono_ns();
                auto out = run(to(f, p, port));
                EXPECT_EQ(out.retval, kMatch) << describe(f, p) << (cg == leaf_id_ ? " (leaf)" : " (parent)");
                EXPECT_GE(out.tstamp, t0 + 100 * kMs) << describe(f, p);
                EXPECT_LT(out.tstamp, mono_ns() + 100 * kMs) << describe(f, p);
            }
        }
        auto c = counters(3);
        EXPECT_EQ(c.delayed, 4u);
        EXPECT_EQ(c.matched, 0u) << "matched and dropped are the cgroup hook's to count";
        ASSERT_TRUE(obj_->delete_rule(cg));
        obj_->bump_generation();
    }
}

TEST_F(TcIngress, PassesWhatNoIngressDelayClaims) {
    uint16_t udp = bound(Family::V4, Proto::Udp);
    rule(leaf_id_, TARDY_SCOPE_INGRESS, 100 * kMs);
    EXPECT_EQ(run(to(Family::V4, Proto::Udp, static_cast<uint16_t>(udp + 1))).retval, kNoMatch)
        << "a packet for no socket";
    rule(leaf_id_, TARDY_SCOPE_EGRESS, 100 * kMs);
    EXPECT_EQ(run(to(Family::V4, Proto::Udp, udp)).retval, kNoMatch) << "an egress-only rule";
    rule(leaf_id_, TARDY_SCOPE_INGRESS, 0, TARDY_PPM);
    EXPECT_EQ(run(to(Family::V4, Proto::Udp, udp)).retval, kNoMatch) << "ingress loss is the cgroup hook's";
    EXPECT_EQ(counters(3).dropped, 0u);
    rule(12345, TARDY_SCOPE_INGRESS, 100 * kMs);  // another cgroup's rule
    ASSERT_TRUE(obj_->delete_rule(leaf_id_));
    obj_->bump_generation();
    EXPECT_EQ(run(to(Family::V4, Proto::Udp, udp)).retval, kNoMatch) << "a rule of another cgroup";
    rule(leaf_id_, TARDY_SCOPE_INGRESS, 100 * kMs);
    obj_->control()->armed = 0;
    EXPECT_EQ(run(to(Family::V4, Proto::Udp, udp)).retval, kNoMatch) << "disarmed (kill)";
}

}  // namespace
