// SPDX-License-Identifier: Apache-2.0
// --reset in the TC egress program (bpf/lib/reset.bpf.h) by BPF_PROG_TEST_RUN on crafted TCP
// segments: an established connection's segment with data or a FIN becomes a RST turned around to the target
// (addresses, ports, MACs and sequence numbers swapped, checksum still valid) and redirected;
// setup segments, pure ACKs, resets and UDP pass untouched; the choice is per connection; a GSO packet
// is cut to its headers.
#include "tc_fixture.hpp"

using namespace tardy;
using namespace tardy::test;

namespace {

constexpr uint32_t kRedirect = 7;
constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10;

uint32_t be32(const std::vector<uint8_t>& p, size_t at) {
    return (uint32_t{p[at]} << 24) | (uint32_t{p[at + 1]} << 16) | (uint32_t{p[at + 2]} << 8) | p[at + 3];
}

void put32(std::vector<uint8_t>& p, size_t at, uint32_t v) {
    for (int i = 0; i < 4; i++) p[at + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}

uint16_t tcp_sum(Family f, const std::vector<uint8_t>& p) { return l4_sum(f, p, 6); }

// A segment of the connection sport -> 7007 with these flags and numbers, checksum valid.
std::vector<uint8_t> segment(Family f, uint8_t flags, uint32_t seq, uint32_t ack, size_t payload = 100,
                             uint16_t sport = 40000) {
    auto p = make_packet(f, Proto::Tcp, payload, nullptr, 7007, sport);
    size_t l4 = l4_off(f);
    put32(p, l4 + 4, seq);
    put32(p, l4 + 8, ack);
    p[l4 + 13] = flags;
    p[l4 + 14] = 0x01;  // a window
    for (size_t i = l4 + 20; i < p.size(); i++) p[i] = static_cast<uint8_t>(i * 7);
    if (f == Family::V4) {  // the IPv4 header's checksum too
        uint32_t sum = 0;
        for (size_t i = 14; i < 34; i += 2) sum += (p[i] << 8) | p[i + 1];
        while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
        p[24] = static_cast<uint8_t>(~sum >> 8), p[25] = static_cast<uint8_t>(~sum);
    }
    p[l4 + 16] = p[l4 + 17] = 0;
    uint16_t s = static_cast<uint16_t>(~tcp_sum(f, p));
    p[l4 + 16] = static_cast<uint8_t>(s >> 8), p[l4 + 17] = static_cast<uint8_t>(s);
    return p;
}

class TcReset : public TcProg {
protected:
    void put_reset(uint32_t ppm, uint32_t seed = 7) {
        tardy_rule r{};
        r.expires_ns = ~0ULL;
        r.reset_ppm = ppm;
        r.flow_seed = seed;
        ASSERT_TRUE(obj_->reset_counters(0));
        tardy_rule_set set{};
        set.n = 1;
        ASSERT_TRUE(obj_->put_slot_rule(r));
        ASSERT_TRUE(obj_->put_rules(leaf_id_, set));
    }
};

TEST_F(TcReset, SegmentBecomesAResetFromThePeer) {
    put_reset(TARDY_PPM);
    for (auto f : {Family::V4, Family::V6}) {
        const char* fam = f == Family::V4 ? "IPv4" : "IPv6";
        auto s = segment(f, kAck | kPsh, 1000, 5000);
        auto r = s;
        ASSERT_EQ(run_out(r), kRedirect) << fam;
        ASSERT_EQ(r.size(), s.size()) << fam << ": one segment keeps its length";
        size_t l4 = l4_off(f);
        EXPECT_EQ(r[l4 + 13], kRst | kAck) << fam;
        EXPECT_EQ(r[l4 + 12], s[l4 + 12]) << fam << ": the data offset is kept";
        EXPECT_EQ(be32(r, l4 + 4), 5000u) << fam << ": the sequence number the target expects next";
        EXPECT_EQ(be32(r, l4 + 8), 1000u) << fam;
        EXPECT_EQ(r[l4], s[l4 + 2]);
        EXPECT_EQ(r[l4 + 1], s[l4 + 3]) << fam << ": from the peer's port";
        size_t alen = f == Family::V4 ? 4 : 16, src = f == Family::V4 ? 26 : 22;
        EXPECT_TRUE(std::equal(r.begin() + static_cast<long>(src), r.begin() + static_cast<long>(src + alen),
                               s.begin() + static_cast<long>(src + alen)))
            << fam << ": from the peer's address";
        EXPECT_TRUE(std::equal(r.begin(), r.begin() + 6, s.begin() + 6)) << fam << ": MACs swapped";
        EXPECT_EQ(tcp_sum(f, r), 0xffff) << fam << ": the TCP checksum no longer holds";
    }
    EXPECT_EQ(counters(0).resets, 2u);
}

TEST_F(TcReset, SetupPureAcksResetsAndOtherProtocolsPassUntouched) {
    put_reset(TARDY_PPM);
    for (uint8_t flags : {kSyn, uint8_t(kSyn | kAck), kRst, uint8_t(kRst | kAck), uint8_t(0)}) {
        auto s = segment(Family::V4, flags, 1, 0, 0);
        auto before = s;
        EXPECT_EQ(run_out(s), kNext) << "flags " << int(flags);
        EXPECT_EQ(s, before);
    }
    auto pure_ack = segment(Family::V4, kAck, 1, 1, 0);  // the handshake's last segment is one
    auto ack_before = pure_ack;
    EXPECT_EQ(run_out(pure_ack), kNext) << "a pure ACK";
    EXPECT_EQ(pure_ack, ack_before);
    auto udp = make_packet(Family::V6, Proto::Udp, 80);
    auto before = udp;
    EXPECT_EQ(run_out(udp), kNext);
    EXPECT_EQ(udp, before);
    EXPECT_EQ(counters(0).resets, 0u);
    auto fin = segment(Family::V6, kFin | kAck, 9, 9, 0);  // an established connection's FIN is reset too
    EXPECT_EQ(run_out(fin), kRedirect);
}

TEST_F(TcReset, ConnectionsAreChosenOnceForTheirLife) {
    put_reset(250'000);
    int chosen = 0;
    constexpr int kConns = 2000;
    std::vector<bool> hit(kConns);
    for (int c = 0; c < kConns; c++) {
        uint16_t sport = static_cast<uint16_t>(20000 + c);
        auto a = segment(Family::V4, kAck, 1, 1, 10, sport);
        hit[c] = run_out(a) == kRedirect;
        auto b = segment(Family::V4, kAck | kPsh, 11, 1, 300, sport);
        EXPECT_EQ(run_out(b) == kRedirect, hit[c]) << "connection from port " << sport << " chosen only sometimes";
        chosen += hit[c];
    }
    EXPECT_NEAR(chosen / double(kConns), 0.25, 0.04);  // sd 0.0097
    EXPECT_EQ(counters(0).resets, 2u * chosen);
    // Another injection (seed) chooses independently: a quarter of the first's quarter.
    put_reset(250'000, 8);
    int both = 0;
    for (int c = 0; c < kConns; c++) {
        auto a = segment(Family::V4, kAck, 1, 1, 10, static_cast<uint16_t>(20000 + c));
        both += (run_out(a) == kRedirect) && hit[c];
    }
    EXPECT_NEAR(both / double(kConns), 0.0625, 0.025);  // sd 0.0054
}

TEST_F(TcReset, GsoPacketIsCutToItsHeaders) {
    put_reset(TARDY_PPM);
    for (auto f : {Family::V4, Family::V6}) {
        auto s = segment(f, kAck | kPsh, 1000, 5000, 3000);
        auto r = s;
        ASSERT_EQ(run_out(r, 3, 1000), kRedirect);
        size_t l4 = l4_off(f);
        ASSERT_EQ(r.size(), l4 + 20) << "a GSO packet's reset carries no data";
        if (f == Family::V4) {
            EXPECT_EQ((r[16] << 8) | r[17], 40) << "IPv4 total length";
            uint32_t sum = 0;
            for (size_t i = 14; i < 34; i += 2) sum += (r[i] << 8) | r[i + 1];
            while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
            EXPECT_EQ(sum, 0xffffu) << "IPv4 header checksum";
        } else {
            EXPECT_EQ((r[18] << 8) | r[19], 20) << "IPv6 payload length";
        }
        EXPECT_EQ(r[l4 + 13], kRst | kAck);
        EXPECT_EQ(be32(r, l4 + 4), 5000u);
    }
}

}  // namespace
