// SPDX-License-Identifier: Apache-2.0
// The TC object loaded for BPF_PROG_TEST_RUN on crafted packets. Rules on "leaf" (this
// process's cgroup, see self_cgroup.hpp) match directly, rules on its parent through the
// ancestor walk, rules on any other id not at all. prog_fd() picks the program under test.
#pragma once

#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <time.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "../common/packets.hpp"
#include "../common/privileges.hpp"
#include "../common/self_cgroup.hpp"
#include "loader/tc_object.hpp"

namespace tardy::test {

inline uint64_t mono_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + ts.tv_nsec;
}

constexpr uint64_t kMs = 1'000'000;
constexpr uint32_t kNext = static_cast<uint32_t>(TARDY_TC_NEXT);

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

    // The TCX variant; the clsact fixture overrides this.
    virtual int prog_fd() const { return obj_->egress_prog_fd(); }

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
        int err = bpf_prog_test_run_opts(prog_fd(), &o);
        EXPECT_EQ(err, 0) << "prog_test_run: " << strerror(errno);
        return {o.retval, ctx_out.tstamp, o.duration};
    }

    // Runs the packet and leaves it as the program left it (a rewrite, a turned-around
    // answer); returns the verdict. gso_segs/gso_size make it a GSO packet.
    uint32_t run_out(std::vector<uint8_t>& pkt, uint32_t gso_segs = 0, uint32_t gso_size = 0) {
        std::vector<uint8_t> out(pkt.size() + 64);
        __sk_buff ctx{};
        ctx.gso_segs = gso_segs;
        ctx.gso_size = gso_size;
        LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt.data(), .data_out = out.data(),
                    .data_size_in = static_cast<__u32>(pkt.size()), .data_size_out = static_cast<__u32>(out.size()),
                    .ctx_in = &ctx, .ctx_out = nullptr, .ctx_size_in = sizeof ctx, .ctx_size_out = 0, .retval = 0,
                    .repeat = 1);
        EXPECT_EQ(bpf_prog_test_run_opts(prog_fd(), &o), 0) << strerror(errno);
        out.resize(o.data_size_out);
        pkt = out;
        return o.retval;
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

}  // namespace tardy::test
