/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* A packet the target sends, turned into one it receives from its peer (--dns's answers,
 * --reset's resets): where its IP addresses and L4 header are, and the swaps that turn it
 * around. Swapping fields leaves every ones' complement sum as it was, so no checksum
 * changes. */
#pragma once

#define TARDY_TC_ACT_REDIRECT 7 /* TC_ACT_REDIRECT, and TCX_REDIRECT */

/* Where a frame's fields are, from its first byte. */
struct tardy_l4_at {
    __u32 l4;       /* the L4 header */
    __u32 addr_off; /* the source address; the destination follows it */
    __u32 v4;       /* IPv4 (4-byte addresses), else IPv6 */
};

/* A frame with an Ethernet header in front (veth, physical devices, lo: a frame turned
 * around must be received on the device) over IPv4 (not a fragment) or IPv6, whose L4
 * protocol is `proto` (6 TCP, 17 UDP). */
static __always_inline bool tardy_l4_of(struct __sk_buff *skb, __u8 proto, struct tardy_l4_at *at)
{
    __u16 eth_proto;

    if (bpf_skb_load_bytes(skb, 12, &eth_proto, 2) || eth_proto != skb->protocol)
        return false;
    if (skb->protocol == bpf_htons(TARDY_ETH_P_IP)) {
        struct iphdr ip;

        if (bpf_skb_load_bytes(skb, 14, &ip, sizeof(ip)) || ip.version != 4 || ip.protocol != proto ||
            (ip.frag_off & bpf_htons(0x3fff)))
            return false;
        at->l4 = 14 + ip.ihl * 4;
        at->addr_off = 14 + 12;
        at->v4 = 1;
        return true;
    }
    if (skb->protocol == bpf_htons(TARDY_ETH_P_IPV6)) {
        struct ipv6hdr ip6;

        if (bpf_skb_load_bytes(skb, 14, &ip6, sizeof(ip6)) || ip6.nexthdr != proto)
            return false;
        at->l4 = 14 + sizeof(ip6);
        at->addr_off = 14 + 8;
        at->v4 = 0;
        return true;
    }
    return false;
}

/* Swaps two equal-sized fields of the packet (addresses, ports, MACs). */
static __always_inline int tardy_swap(struct __sk_buff *skb, __u32 a, __u32 b, const __u32 size)
{
    __u8 x[16], y[16];

    if (bpf_skb_load_bytes(skb, a, x, size) || bpf_skb_load_bytes(skb, b, y, size))
        return -1;
    if (bpf_skb_store_bytes(skb, a, y, size, 0) || bpf_skb_store_bytes(skb, b, x, size, 0))
        return -1;
    return 0;
}

/* The addresses, the ports (the L4 header's first two fields) and the MACs swapped: the
 * packet now comes from the peer. */
static __always_inline int tardy_turn_around(struct __sk_buff *skb, const struct tardy_l4_at *at)
{
    if (at->v4 ? tardy_swap(skb, at->addr_off, at->addr_off + 4, 4) : tardy_swap(skb, at->addr_off, at->addr_off + 16, 16))
        return -1;
    if (tardy_swap(skb, at->l4, at->l4 + 2, 2) || tardy_swap(skb, 0, 6, 6))
        return -1;
    return 0;
}
