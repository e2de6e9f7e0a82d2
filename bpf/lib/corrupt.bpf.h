/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* --corrupt: a share of the target's packets arrive damaged, and the receiver's checksum
 * rejects them (netem's corrupt flips a random bit of the packet after computing its
 * checksum). Here one bit of the checksum field itself is flipped, the only damage that is
 * rejected whatever the packet's checksum state at TC egress:
 * - a checksum already complete (UDP without offload, ICMP, ICMPv6, the IPv4 header's) is
 *   then wrong for the data it covers;
 * - a checksum left for the device to finish (CHECKSUM_PARTIAL: TCP, and UDP with offload)
 *   holds only the pseudo header's sum at TC, which the device (or skb_checksum_help(), on a
 *   device without checksum offload) adds the payload to: flipping a bit of that seed makes
 *   the finished checksum wrong in the same way, for every segment of a GSO packet.
 * Flipping a payload bit instead would be accepted wherever the checksum is finished later,
 * delivering damaged data as good: never done. A veth hands a CHECKSUM_PARTIAL packet to its
 * peer unfinished and the receiver trusts it, so the agent turns the checksum offload of a
 * veth it corrupts on off while the fault lasts (docs/design.md).
 *
 * What is damaged: TCP, UDP and ICMP checksums of IPv4 first fragments, ICMPv6, TCP and UDP
 * of IPv6; the header checksum of other IPv4 packets (later fragments, other protocols), which
 * every IPv4 receiver and router checks. IPv6 packets of other protocols carry no checksum
 * and pass untouched, as do packets on devices without an Ethernet header; neither is counted. */
#pragma once

/* Where the checksum of a packet sent on an Ethernet device is, or 0 when it has none. */
static __always_inline __u32 tardy_checksum_at(struct __sk_buff *skb)
{
    __u16 eth_proto;

    if (bpf_skb_load_bytes(skb, 12, &eth_proto, 2) || eth_proto != skb->protocol)
        return 0;
    if (skb->protocol == bpf_htons(TARDY_ETH_P_IP)) {
        struct iphdr ip;
        __u32 l4;

        if (bpf_skb_load_bytes(skb, 14, &ip, sizeof(ip)) || ip.version != 4)
            return 0;
        l4 = 14 + ip.ihl * 4;
        if (ip.frag_off & bpf_htons(0x1fff))
            return 14 + 10; /* a later fragment: its header's checksum */
        if (ip.protocol == 6)
            return l4 + 16;
        if (ip.protocol == 17)
            return l4 + 6;
        if (ip.protocol == 1)
            return l4 + 2;
        return 14 + 10;
    }
    if (skb->protocol == bpf_htons(TARDY_ETH_P_IPV6)) {
        __u8 next;

        if (bpf_skb_load_bytes(skb, 14 + 6, &next, 1))
            return 0;
        if (next == 6)
            return 14 + 40 + 16;
        if (next == 17)
            return 14 + 40 + 6;
        if (next == 58)
            return 14 + 40 + 2;
    }
    return 0;
}

/* Damages the packet for the rule in slot (a global function: verified once). Returns 1 when
 * it did. */
__noinline int tardy_corrupt(struct __sk_buff *skb, __u32 slot)
{
    struct tardy_counters *cnt;
    __u32 at;
    __u16 sum;

    if (!skb)
        return 0;
    at = tardy_checksum_at(skb);
    if (!at || at > 14 + 60 + 16 || bpf_skb_load_bytes(skb, at, &sum, 2))
        return 0;
    /* One bit, picked at random, so that a receiver cannot learn a fixed pattern. An IPv4
     * UDP checksum of 0 ("none") becomes one that is checked, and wrong. */
    sum ^= bpf_htons(1u << (tardy_rand32() & 15));
    if (bpf_skb_store_bytes(skb, at, &sum, 2, 0))
        return 0;
    cnt = bpf_map_lookup_elem(&tardy_counters, &slot);
    if (cnt)
        cnt->corrupted++;
    return 1;
}
