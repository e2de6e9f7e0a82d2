// SPDX-License-Identifier: Apache-2.0
// Crafted packets for BPF_PROG_TEST_RUN: Ethernet + IPv4/IPv6 + UDP/TCP. The TC program
// matches by socket cgroup, not by headers, but every family and protocol must pass
// through it the same way.
#pragma once

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace tardy::test {

enum class Family { V4, V6 };
enum class Proto { Udp, Tcp };

// To the lab's server address of the family on port 7007 unless told otherwise; `dst` is an
// address of the packet's family.
inline std::vector<uint8_t> make_packet(Family f, Proto p, size_t payload = 64, const char* dst = nullptr,
                                        uint16_t dport = 7007, uint16_t sport = 40000) {
    size_t l3 = f == Family::V4 ? sizeof(iphdr) : sizeof(ipv6hdr);
    size_t l4 = p == Proto::Udp ? sizeof(udphdr) : sizeof(tcphdr);
    std::vector<uint8_t> pkt(sizeof(ethhdr) + l3 + l4 + payload, 0);
    auto* eth = reinterpret_cast<ethhdr*>(pkt.data());
    std::memset(eth->h_dest, 0x02, ETH_ALEN);
    std::memset(eth->h_source, 0x04, ETH_ALEN);
    uint8_t proto = p == Proto::Udp ? IPPROTO_UDP : IPPROTO_TCP;
    uint8_t* l4p = pkt.data() + sizeof(ethhdr) + l3;
    if (f == Family::V4) {
        eth->h_proto = htons(ETH_P_IP);
        auto* ip = reinterpret_cast<iphdr*>(pkt.data() + sizeof(ethhdr));
        ip->version = 4;
        ip->ihl = 5;
        ip->ttl = 64;
        ip->protocol = proto;
        ip->tot_len = htons(static_cast<uint16_t>(l3 + l4 + payload));
        inet_pton(AF_INET, "198.18.0.1", &ip->saddr);
        inet_pton(AF_INET, dst ? dst : "198.18.0.2", &ip->daddr);
    } else {
        eth->h_proto = htons(ETH_P_IPV6);
        auto* ip6 = reinterpret_cast<ipv6hdr*>(pkt.data() + sizeof(ethhdr));
        ip6->version = 6;
        ip6->nexthdr = proto;
        ip6->hop_limit = 64;
        ip6->payload_len = htons(static_cast<uint16_t>(l4 + payload));
        inet_pton(AF_INET6, "fd00:7a7d::1", &ip6->saddr);
        inet_pton(AF_INET6, dst ? dst : "fd00:7a7d::2", &ip6->daddr);
    }
    if (p == Proto::Udp) {
        auto* u = reinterpret_cast<udphdr*>(l4p);
        u->source = htons(sport);
        u->dest = htons(dport);
        u->len = htons(static_cast<uint16_t>(l4 + payload));
    } else {
        auto* t = reinterpret_cast<tcphdr*>(l4p);
        t->source = htons(sport);
        t->dest = htons(dport);
        t->doff = 5;
        t->syn = 1;
    }
    return pkt;
}

// Where the L4 header of make_packet()'s packets starts.
inline size_t l4_off(Family f) { return 14 + (f == Family::V4 ? 20 : 40); }

// The ones' complement sum of the pseudo header and the L4 segment (protocol `proto`, 6 or 17)
// of a make_packet() packet, its checksum field included: 0xffff when the checksum is valid.
inline uint16_t l4_sum(Family f, const std::vector<uint8_t>& p, uint8_t proto) {
    uint32_t sum = 0;
    auto add = [&](const uint8_t* b, size_t n) {
        for (size_t i = 0; i + 1 < n; i += 2) sum += (b[i] << 8) | b[i + 1];
        if (n % 2) sum += b[n - 1] << 8;
    };
    size_t l4 = l4_off(f), len = p.size() - l4;
    if (f == Family::V4) add(&p[14 + 12], 8);
    else add(&p[14 + 8], 32);
    sum += proto + static_cast<uint32_t>(len);
    add(&p[l4], len);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(sum);
}

inline std::string describe(Family f, Proto p) {
    return std::string(f == Family::V4 ? "IPv4" : "IPv6") + (p == Proto::Udp ? "/UDP" : "/TCP");
}

}  // namespace tardy::test
