// SPDX-License-Identifier: Apache-2.0
// netem's shapes in the TC egress program (bpf/lib/shape.bpf.h), run by BPF_PROG_TEST_RUN on
// crafted packets, one packet per run so that each decision is seen: Gilbert-Elliott burst
// loss, jitter distributions against netem's tables, correlation, duplication, reordering and
// rate pacing. Statistical bounds are 4-5 standard deviations; the seed makes them repeatable.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <tuple>

#include "model/net_shape.hpp"
#include "tc_fixture.hpp"

using namespace tardy;
using namespace tardy::test;

namespace {

constexpr uint32_t kDrop = TARDY_TC_LOST_TCX;

class TcShape : public TcProg {
protected:
    tardy_rule base(uint64_t delay_ns = 0, uint64_t jitter_ns = 0) {
        tardy_rule r{};
        r.slot = 0;
        r.delay_ns = delay_ns;
        r.jitter_ns = jitter_ns;
        r.expires_ns = ~0ULL;
        return r;
    }
    void put_rule(const tardy_rule& r) {
        ASSERT_TRUE(obj_->reset_counters(r.slot));
        auto ok = obj_->put_rule(leaf_id_, r);
        ASSERT_TRUE(ok) << ok.error().message;
    }
    // The delay each of n packets got: its departure stamp minus the time just before the run.
    std::vector<double> delays_ms(int n) {
        std::vector<double> d;
        auto pkt = make_packet(Family::V4, Proto::Udp);
        for (int i = 0; i < n; i++) {
            uint64_t before = mono_ns();
            auto out = run(pkt);
            d.push_back(out.tstamp ? static_cast<double>(out.tstamp - before) / 1e6 : 0.0);
        }
        return d;
    }
};

double mean(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / v.size(); }

double lag1_correlation(const std::vector<double>& v) {
    double m = mean(v), num = 0, den = 0;
    for (size_t i = 0; i < v.size(); i++) {
        den += (v[i] - m) * (v[i] - m);
        if (i) num += (v[i] - m) * (v[i - 1] - m);
    }
    return num / den;
}

TEST_F(TcShape, BurstLossHasTheMeanRateAndBurstLength) {
    // --loss 5% --loss-burst 4, as the CLI turns it into a Gilbert-Elliott model.
    NetFaults net;
    net.loss_ppm = 50000;
    ShapeArgs a;
    a.loss_burst = "4";
    ASSERT_TRUE(apply_shape(a, "5%", net));
    tardy_rule r = base();
    r.loss_ppm = net.loss_ppm;
    r.ge_p_ppm = net.ge_p_ppm;
    r.ge_r_ppm = net.ge_r_ppm;
    r.ge_bad_loss_ppm = net.ge_bad_loss_ppm;
    r.ge_good_loss_ppm = net.ge_good_loss_ppm;
    put_rule(r);
    constexpr int kPackets = 20000;
    auto pkt = make_packet(Family::V4, Proto::Udp);
    int lost = 0, bursts = 0, run_len = 0;
    std::vector<int> lengths;
    for (int i = 0; i < kPackets; i++) {
        bool l = run(pkt).retval == kDrop;
        lost += l;
        if (l) {
            run_len++;
        } else if (run_len) {
            lengths.push_back(run_len);
            run_len = 0;
        }
    }
    if (run_len) lengths.push_back(run_len);
    bursts = static_cast<int>(lengths.size());
    double rate = static_cast<double>(lost) / kPackets;
    double burst = static_cast<double>(lost) / bursts;
    std::printf("[ shape    ] 5%% in bursts of 4: lost %d of %d (%.2f%%) in %d bursts, mean burst %.2f\n", lost,
                kPackets, 100 * rate, bursts, burst);
    EXPECT_NEAR(rate, 0.05, 0.012);
    EXPECT_NEAR(burst, 4.0, 0.9);
    EXPECT_EQ(counters(0).dropped, static_cast<uint64_t>(lost));
    // The same rate without bursts has runs of about one packet (1 / 0.95).
    r = base();
    r.loss_ppm = 50000;
    put_rule(r);
    lost = run_len = 0;
    lengths.clear();
    for (int i = 0; i < kPackets; i++) {
        bool l = run(pkt).retval == kDrop;
        lost += l;
        if (l) run_len++;
        else if (run_len) lengths.push_back(run_len), run_len = 0;
    }
    double plain = static_cast<double>(lost) / std::max<size_t>(1, lengths.size());
    std::printf("[ shape    ] 5%% independent: mean run %.2f\n", plain);
    EXPECT_LT(plain, 1.2);
}

TEST_F(TcShape, NormalJitterFollowsNetemsTable) {
    constexpr double kDelay = 50, kJitter = 10;  // ms
    tardy_rule r = base(50 * kMs, 10 * kMs);
    r.dist = TARDY_DIST_NORMAL;
    put_rule(r);
    auto d = delays_ms(4000);
    std::sort(d.begin(), d.end());
    // The distribution the table defines: delay + jitter * v / SCALE for a uniform entry v.
    auto table = dist_table(TARDY_DIST_NORMAL);
    std::vector<double> want;
    for (int16_t v : table) want.push_back(kDelay + kJitter * v / TARDY_DIST_SCALE);
    std::sort(want.begin(), want.end());
    double ks = 0;
    for (size_t i = 0; i < d.size(); i++) {
        double f_want = static_cast<double>(std::upper_bound(want.begin(), want.end(), d[i]) - want.begin()) / want.size();
        ks = std::max({ks, std::abs(f_want - static_cast<double>(i) / d.size()),
                       std::abs(f_want - static_cast<double>(i + 1) / d.size())});
    }
    double m = mean(d), var = 0;
    for (double x : d) var += (x - m) * (x - m);
    double sd = std::sqrt(var / d.size());
    std::printf("[ shape    ] normal 50ms/10ms: mean %.2f ms, sd %.2f ms, KS %.4f over %zu\n", m, sd, ks, d.size());
    EXPECT_LT(ks, 0.035);  // the 1% critical value for 4,000 samples is 0.026
    EXPECT_NEAR(m, kDelay, 0.6);
    EXPECT_NEAR(sd, kJitter, 0.6);
}

TEST_F(TcShape, ParetoJitterIsSkewedToTheRight) {
    tardy_rule r = base(50 * kMs, 10 * kMs);
    r.dist = TARDY_DIST_PARETO;
    put_rule(r);
    auto d = delays_ms(4000);
    std::sort(d.begin(), d.end());
    double median = d[d.size() / 2], m = mean(d);
    std::printf("[ shape    ] pareto 50ms/10ms: min %.2f median %.2f mean %.2f max %.2f ms\n", d.front(), median, m,
                d.back());
    EXPECT_GE(d.front(), 50 - 0.67 * 10 - 0.1);  // the table's least entry is -5461 / 8192 jitters
    EXPECT_LT(median, m);                        // a long right tail
    EXPECT_GT(d.back(), 50 + 2 * 10);
}

TEST_F(TcShape, CorrelationTiesSuccessiveJitters) {
    tardy_rule r = base(50 * kMs, 10 * kMs);
    put_rule(r);
    double independent = lag1_correlation(delays_ms(2000));
    r.corr_ppm = 750000;  // 75%
    put_rule(r);
    auto d = delays_ms(2000);
    double correlated = lag1_correlation(d);
    std::printf("[ shape    ] lag-1 correlation of uniform jitter: %.3f independent, %.3f at 75%%\n", independent,
                correlated);
    EXPECT_LT(std::abs(independent), 0.1);
    EXPECT_GT(correlated, 0.6);
    for (double x : d) ASSERT_TRUE(x >= 40 - 0.1 && x <= 60 + 1) << x;
}

TEST_F(TcShape, DuplicateCountsItsShareAndPassesTheOriginal) {
    tardy_rule r = base();
    r.duplicate_ppm = 200000;  // 20%
    put_rule(r);
    constexpr int kPackets = 2000;
    auto pkt = make_packet(Family::V4, Proto::Udp);
    for (int i = 0; i < kPackets; i++) ASSERT_EQ(run(pkt).retval, kNext);
    auto c = counters(0);
    // sd = sqrt(.2 * .8 / 2000) = 0.0089
    EXPECT_NEAR(static_cast<double>(c.duplicated) / kPackets, 0.2, 0.045) << c.duplicated;
    EXPECT_EQ(c.dropped, 0u);
}

TEST_F(TcShape, ReorderedPacketsSkipTheDelay) {
    tardy_rule r = base(50 * kMs);
    r.reorder_ppm = 300000;  // 30%
    put_rule(r);
    constexpr int kPackets = 2000;
    auto d = delays_ms(kPackets);
    long now = std::count(d.begin(), d.end(), 0.0);
    long late = std::count_if(d.begin(), d.end(), [](double x) { return x >= 50; });
    EXPECT_EQ(now + late, kPackets);
    EXPECT_NEAR(static_cast<double>(now) / kPackets, 0.3, 0.05) << now;  // sd 0.010
    auto c = counters(0);
    EXPECT_EQ(c.reordered, static_cast<uint64_t>(now));
    EXPECT_EQ(c.delayed, static_cast<uint64_t>(late));
}

TEST_F(TcShape, RatePacesPacketsAndDropsBeyondItsQueue) {
    tardy_rule r = base();
    r.rate_bytes_per_s = 125000;  // 1mbit
    put_rule(r);
    auto pkt = make_packet(Family::V4, Proto::Udp);
    double cost_ns = pkt.size() * 1e9 / 125000;
    std::vector<uint64_t> stamps;
    uint64_t first = mono_ns();
    for (int i = 0; i < 100; i++) {
        auto out = run(pkt);
        ASSERT_EQ(out.retval, kNext);
        stamps.push_back(out.tstamp ? out.tstamp : first);
    }
    // Sent in a burst far faster than 1mbit: each leaves one packet's time after the last.
    for (size_t i = 2; i < stamps.size(); i++)
        ASSERT_NEAR(static_cast<double>(stamps[i] - stamps[i - 1]), cost_ns, 2) << i;
    EXPECT_GE(counters(0).paced, 98u);
    // At 64kbit the 1 s queue holds 8,000 bytes: the rest of a burst is dropped.
    r.rate_bytes_per_s = 8000;
    put_rule(r);
    int dropped = 0;
    for (int i = 0; i < 200; i++) dropped += run(pkt).retval == kDrop;
    int fits = static_cast<int>(8000 / pkt.size()) + 1;
    EXPECT_NEAR(200 - dropped, fits, 2) << pkt.size() << "-byte packets";
    EXPECT_EQ(counters(0).dropped, static_cast<uint64_t>(dropped));
}

TEST_F(TcShape, GemodelWithLossInTheGoodStateToo) {
    // netem's 4-parameter form: p 2%, r 20%, 1-h 80%, 1-k 1%.
    tardy_rule r = base();
    r.ge_p_ppm = 20000;
    r.ge_r_ppm = 200000;
    r.ge_bad_loss_ppm = 800000;
    r.ge_good_loss_ppm = 10000;
    put_rule(r);
    constexpr int kPackets = 20000;
    run(make_packet(Family::V6, Proto::Tcp), 0, kPackets);
    double bad = 0.02 / (0.02 + 0.2), want = bad * 0.8 + (1 - bad) * 0.01;
    double got = static_cast<double>(counters(0).dropped) / kPackets;
    std::printf("[ shape    ] gemodel 2%%,20%%,80%%,1%%: %.2f%% lost, the model's mean %.2f%%\n", 100 * got, 100 * want);
    EXPECT_NEAR(got, want, 0.02);
}

}  // namespace

// --corrupt: exactly one bit changes, in the checksum a receiver checks (the L4 one of TCP,
// UDP and ICMP, the IPv4 header's for a later fragment), and every packet damaged is counted.
TEST_F(TcShape, CorruptFlipsOneBitOfTheChecksumOnly) {
    tardy_rule r = base();
    r.corrupt_ppm = TARDY_PPM;
    put_rule(r);
    struct Case {
        Family f;
        Proto p;
        size_t at;  // the checksum's offset in the frame
        const char* what;
    };
    auto frag = make_packet(Family::V4, Proto::Udp);
    frag[14 + 6] = 0x00, frag[14 + 7] = 0x10;  // fragment offset 16 (x8 bytes): a later fragment
    auto icmp = make_packet(Family::V4, Proto::Udp);
    icmp[14 + 9] = 1;
    uint64_t n = 0;
    for (auto [pkt, at, what] : {std::tuple{make_packet(Family::V4, Proto::Udp), size_t{14 + 20 + 6}, "UDP/IPv4"},
                                 std::tuple{make_packet(Family::V4, Proto::Tcp), size_t{14 + 20 + 16}, "TCP/IPv4"},
                                 std::tuple{make_packet(Family::V6, Proto::Udp), size_t{14 + 40 + 6}, "UDP/IPv6"},
                                 std::tuple{make_packet(Family::V6, Proto::Tcp), size_t{14 + 40 + 16}, "TCP/IPv6"},
                                 std::tuple{icmp, size_t{14 + 20 + 2}, "ICMP"},
                                 std::tuple{frag, size_t{14 + 10}, "a later IPv4 fragment"}}) {
        for (int i = 0; i < 8; i++) {
            auto out = pkt;
            ASSERT_EQ(run_out(out), kNext) << what;
            ASSERT_EQ(out.size(), pkt.size()) << what;
            int bits = 0;
            for (size_t b = 0; b < pkt.size(); b++) {
                bits += __builtin_popcount(pkt[b] ^ out[b]);
                if (pkt[b] != out[b]) {
                    EXPECT_TRUE(b == at || b == at + 1) << what << ": byte " << b << " changed";
                }
            }
            EXPECT_EQ(bits, 1) << what;
            n++;
        }
    }
    EXPECT_EQ(counters(0).corrupted, n);
    // IPv6 with a protocol that has no checksum: untouched, not counted.
    auto other = make_packet(Family::V6, Proto::Udp);
    other[14 + 6] = 132;  // SCTP: its CRC is not a checksum tardy knows
    auto out = other;
    ASSERT_EQ(run_out(out), kNext);
    EXPECT_EQ(out, other);
    EXPECT_EQ(counters(0).corrupted, n);
}

TEST_F(TcShape, CorruptDamagesItsShare) {
    tardy_rule r = base();
    r.corrupt_ppm = 250000;  // 25%
    put_rule(r);
    constexpr int kPackets = 2000;
    auto pkt = make_packet(Family::V4, Proto::Udp);
    int damaged = 0;
    for (int i = 0; i < kPackets; i++) {
        auto out = pkt;
        ASSERT_EQ(run_out(out), kNext);
        damaged += out != pkt;
    }
    EXPECT_NEAR(static_cast<double>(damaged) / kPackets, 0.25, 0.04) << damaged;  // sd 0.0097
    EXPECT_EQ(counters(0).corrupted, static_cast<uint64_t>(damaged));
    EXPECT_EQ(counters(0).dropped, 0u);
}

// --reorder-gap, netem's gap: after a packet sent at once, the next gap - 1 are delayed
// whatever the draw. At 100% every gap-th packet leaves at once; at 50% with a gap of 3 no two
// early packets are closer than 3, and their share is netem's 1 / ((gap - 1) + 1 / p) = 25%.
TEST_F(TcShape, ReorderGapSpacesThePacketsSentAtOnce) {
    tardy_rule r = base(50 * kMs);
    r.reorder_ppm = TARDY_PPM;
    r.reorder_gap = 4;
    put_rule(r);
    auto d = delays_ms(20);
    for (int i = 0; i < 20; i++)
        EXPECT_EQ(d[i] == 0.0, i % 4 == 3) << "packet " << i << ": " << d[i] << " ms";
    r.reorder_ppm = 500000;
    r.reorder_gap = 3;
    put_rule(r);  // and a fresh counter (put_rule resets the slot's state)
    constexpr int kPackets = 2000;
    d = delays_ms(kPackets);
    int early = 0, last = -100;
    for (int i = 0; i < kPackets; i++) {
        if (d[i] != 0.0) continue;
        EXPECT_GE(i - last, 3) << "early packets " << last << " and " << i;
        last = i, early++;
    }
    EXPECT_NEAR(static_cast<double>(early) / kPackets, 0.25, 0.04) << early;  // sd about 0.008
}
