// SPDX-License-Identifier: Apache-2.0
// --dns in the TC egress program (bpf/lib/dns.bpf.h) by BPF_PROG_TEST_RUN on crafted DNS
// queries: the query turned into an answer (QR, RA, RCODE; question kept; addresses, ports
// and MACs swapped; UDP checksum still valid) and redirected, or lost; names matched by
// suffix at a label boundary, ignoring case; other packets untouched.
#include <array>

#include "model/net_shape.hpp"
#include "tc_fixture.hpp"

using namespace tardy;
using namespace tardy::test;

namespace {

constexpr uint32_t kRedirect = 7;

// A DNS query for name (dotted) with an EDNS OPT record, to port 53.
std::vector<uint8_t> dns_query(Family f, const std::string& name, uint16_t dport = 53) {
    std::vector<uint8_t> dns = {0x12, 0x34, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 1};  // RD, AD; 1 question, 1 additional
    size_t start = 0;
    while (start <= name.size()) {
        size_t dot = name.find('.', start);
        if (dot == std::string::npos) dot = name.size();
        dns.push_back(static_cast<uint8_t>(dot - start));
        for (size_t i = start; i < dot; i++) dns.push_back(static_cast<uint8_t>(name[i]));
        start = dot + 1;
    }
    dns.push_back(0);
    for (uint8_t b : {0, 1, 0, 1}) dns.push_back(b);                     // A, IN
    for (uint8_t b : {0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0}) dns.push_back(b);  // OPT, 1232 bytes, no options
    auto pkt = make_packet(f, Proto::Udp, dns.size(), nullptr, dport, 40053);
    size_t off = pkt.size() - dns.size();
    std::copy(dns.begin(), dns.end(), pkt.begin() + static_cast<long>(off));
    return pkt;
}

uint16_t udp_sum(Family f, const std::vector<uint8_t>& p) { return l4_sum(f, p, 17); }

void set_udp_checksum(Family f, std::vector<uint8_t>& p) {
    size_t c = l4_off(f) + 6;
    p[c] = p[c + 1] = 0;
    uint16_t s = static_cast<uint16_t>(~udp_sum(f, p));
    p[c] = static_cast<uint8_t>(s >> 8), p[c + 1] = static_cast<uint8_t>(s);
}

class TcDns : public TcProg {
protected:
    void put_dns(uint32_t rcode, uint32_t ppm = TARDY_PPM, const std::string& suffix = "") {
        tardy_rule r{};
        r.expires_ns = ~0ULL;
        r.dns_rcode = rcode;
        r.dns_ppm = ppm;
        if (!suffix.empty()) {
            auto w = dns_wire_name(suffix);
            ASSERT_TRUE(w) << w.error().message;
            r.dns_name_len = static_cast<uint32_t>(w->size());
            std::copy(w->begin(), w->end(), r.dns_name);
        }
        ASSERT_TRUE(obj_->reset_counters(0));
        tardy_rule_set set{};
        set.n = 1;
        set.parse = 1;
        ASSERT_TRUE(obj_->put_slot_rule(r));
        ASSERT_TRUE(obj_->put_rules(leaf_id_, set));
    }
};

TEST_F(TcDns, QueryBecomesAnErrorAnswerFromTheServer) {
    put_dns(3);  // NXDOMAIN
    for (auto f : {Family::V4, Family::V6}) {
        auto q = dns_query(f, "www.Example.com");
        set_udp_checksum(f, q);
        auto a = q;
        ASSERT_EQ(run_out(a), kRedirect) << (f == Family::V4 ? "IPv4" : "IPv6");
        ASSERT_EQ(a.size(), q.size()) << "the answer keeps the query's length";
        size_t l4 = l4_off(f), dns = l4 + 8;
        EXPECT_EQ(a[dns + 2], 0x81) << "QR set, RD kept";  // QR | RD
        EXPECT_EQ(a[dns + 3], 0x83) << "RA, NXDOMAIN";       // RA | rcode 3 (AD not kept)
        EXPECT_EQ(a[dns], 0x12);
        EXPECT_EQ(a[dns + 1], 0x34) << "the id is the query's";
        EXPECT_TRUE(std::equal(a.begin() + static_cast<long>(dns) + 4, a.end(), q.begin() + static_cast<long>(dns) + 4))
            << "the question and the OPT record are the query's";
        size_t alen = f == Family::V4 ? 4 : 16, src = f == Family::V4 ? 26 : 22;
        EXPECT_TRUE(std::equal(a.begin() + static_cast<long>(src), a.begin() + static_cast<long>(src + alen),
                               q.begin() + static_cast<long>(src + alen)))
            << "the answer comes from the server";
        EXPECT_EQ(a[l4], q[l4 + 2]);
        EXPECT_EQ(a[l4 + 1], q[l4 + 3]) << "from port 53";
        EXPECT_TRUE(std::equal(a.begin(), a.begin() + 6, q.begin() + 6)) << "MACs swapped";
        EXPECT_EQ(udp_sum(f, a), 0xffff) << "the UDP checksum no longer holds";
    }
    EXPECT_EQ(counters(0).dns, 2u);
}

TEST_F(TcDns, TimeoutLosesTheQuerySilently) {
    put_dns(TARDY_DNS_TIMEOUT);
    auto q = dns_query(Family::V4, "db.internal");
    EXPECT_EQ(run_out(q), static_cast<uint32_t>(TARDY_TC_LOST_TCX));
    EXPECT_EQ(counters(0).dns, 1u);
}

TEST_F(TcDns, NameSuffixMatchesWholeLabelsIgnoringCase) {
    put_dns(2, TARDY_PPM, "Example.COM");  // SERVFAIL
    struct Case {
        const char* name;
        bool hit;
    } cases[] = {{"example.com", true},     {"www.example.com", true}, {"A.B.EXAMPLE.com", true},
                 {"badexample.com", false}, {"example.co", false},     {"example.com.evil", false},
                 {"com", false},            {"example.org", false}};
    for (const auto& c : cases) {
        auto q = dns_query(Family::V6, c.name);
        uint32_t v = run_out(q);
        EXPECT_EQ(v, c.hit ? kRedirect : kNext) << c.name;
    }
}

TEST_F(TcDns, OtherTrafficAndAnswersPassUntouched) {
    put_dns(5, TARDY_PPM);  // REFUSED
    auto other = dns_query(Family::V4, "www.example.com", 5353);  // not port 53
    auto before = other;
    EXPECT_EQ(run_out(other), kNext);
    EXPECT_EQ(other, before);
    auto answer = dns_query(Family::V4, "www.example.com");
    answer[l4_off(Family::V4) + 8 + 2] |= 0x80;  // QR: an answer, not a query
    EXPECT_EQ(run_out(answer), kNext);
    auto tcp = make_packet(Family::V4, Proto::Tcp, 40, nullptr, 53);
    EXPECT_EQ(run_out(tcp), kNext);
    EXPECT_EQ(counters(0).dns, 0u);
}

TEST_F(TcDns, AShareOfQueries) {
    put_dns(3, 250'000);
    int answered = 0;
    for (int i = 0; i < 2000; i++) {
        auto q = dns_query(Family::V4, "x.example.com");
        answered += run_out(q) == kRedirect;
    }
    EXPECT_NEAR(answered / 2000.0, 0.25, 0.05);  // sd 0.0097
    EXPECT_EQ(counters(0).dns, static_cast<uint64_t>(answered));
}

}  // namespace
