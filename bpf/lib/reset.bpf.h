/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* --reset: a share of the target's established TCP connections reset, as a crashed peer or a
 * middlebox does. The connection is chosen once, by a hash of its addresses and ports (so
 * every packet of it gets the same answer); the next segment the target sends on it with
 * data or a FIN, or a pure ACK once data came in (not before: the handshake's last ACK is
 * one), becomes two resets: one
 * to the peer (the segment itself, RST set, its sequence
 * number the one the peer expects next), and one to the target (a copy turned around:
 * addresses, ports, MACs and the sequence and acknowledgment numbers swapped, so its
 * sequence number is the one the target's socket expects), redirected to the device's
 * ingress. Both ends see an in-window RST and drop the connection: the target's next call on
 * it fails with ECONNRESET, and the peer keeps no half-open connection behind.
 *
 * Checksums: setting the flags is one incremental fix; the swaps leave the ones' complement
 * sums as they were. A GSO packet (up to 64 KiB of data at TC) is cut to its headers first
 * (a GSO packet's TCP checksum is always left for the device to finish, so only the pseudo
 * header's length changes); a single segment keeps its data, which a receiver of a RST
 * ignores (RFC 9293 3.5.3). */
#pragma once

#define TARDY_RESET_PASS 0
#define TARDY_RESET_SENT 1 /* reset both ways: return TARDY_TC_ACT_REDIRECT */
#define TARDY_RESET_DROP 2 /* changed half way (a helper failed): neither segment nor reset */

#define TARDY_TCP_FIN 0x01
#define TARDY_TCP_SYN 0x02
#define TARDY_TCP_RST 0x04
#define TARDY_TCP_ACK 0x10

/* The TCP header's fields this fault reads and writes, from byte 0. */
struct tardy_tcp_head {
    __u16 sport, dport;
    __u32 seq, ack_seq;
    __u16 doff_flags; /* network order: data offset (4 bits), reserved, flags (8 bits) */
};

/* Whether the connection of these addresses and ports is one of the rule's share. */
static __always_inline bool tardy_reset_chosen(const struct tardy_rule *r, const __u32 *addrs, int words,
                                               __u32 ports)
{
    __u32 h = r->flow_seed ^ 0x52535421u; /* apart from --flows' draw on the same seed */

    for (int i = 0; i < 8; i++)
        if (i < words)
            h = tardy_mix(h, addrs[i]);
    h = tardy_mix(h, ports);
    return tardy_scale32(tardy_fmix(h), TARDY_PPM) < r->reset_ppm;
}

/* Whether the sending socket has received data (bytes_received: the handshake's SYN-ACK is
 * not counted). No full TCP socket (a request or timewait socket, none at all): no. */
static __always_inline bool tardy_has_received(struct __sk_buff *skb)
{
    struct bpf_sock *sk = skb->sk;
    struct bpf_tcp_sock *tp;

    if (!sk)
        return false;
    sk = bpf_sk_fullsock(sk);
    if (!sk)
        return false;
    tp = bpf_tcp_sock(sk);
    return tp && tp->bytes_received > 0;
}

/* The reset fault of rule r on a packet the target sends (a global function: checked once
 * by the verifier, whatever its caller). */
__noinline int tardy_reset_fault(struct __sk_buff *skb, const struct tardy_rule *r)
{
    struct tardy_counters *cnt;
    struct tardy_tcp_head th;
    struct tardy_l4_at at;
    __u32 addrs[8] = {}, l4, hdr_len;
    __u16 flags_old, flags_new;
    int words;
    bool v4;

    if (!skb || !r || !r->reset_ppm)
        return TARDY_RESET_PASS;
    if (!tardy_l4_of(skb, 6, &at))
        return TARDY_RESET_PASS;
    l4 = at.l4;
    v4 = at.v4;
    words = v4 ? 2 : 8;
    if (v4 ? bpf_skb_load_bytes(skb, at.addr_off, addrs, 8) : bpf_skb_load_bytes(skb, at.addr_off, addrs, 32))
        return TARDY_RESET_PASS;
    if (l4 > 14 + 60 || bpf_skb_load_bytes(skb, l4, &th, sizeof(th)))
        return TARDY_RESET_PASS;
    flags_old = th.doff_flags;
    if (bpf_ntohs(flags_old) & (TARDY_TCP_SYN | TARDY_TCP_RST) || !(bpf_ntohs(flags_old) & TARDY_TCP_ACK))
        return TARDY_RESET_PASS; /* not (yet) an established connection's segment */
    hdr_len = l4 + (bpf_ntohs(flags_old) >> 12) * 4;
    /* A pure ACK passes while its socket has received no data: the handshake's last ACK is
     * one (resetting it would fail the connect(), not an established connection). Once data
     * came in, a pure ACK acknowledges it, and is reset like data or a FIN: so a connection
     * on which the target only receives (a download, a subscription) is reset too. */
    if (skb->len <= hdr_len && !(bpf_ntohs(flags_old) & TARDY_TCP_FIN) && !tardy_has_received(skb))
        return TARDY_RESET_PASS;
    if (!tardy_reset_chosen(r, addrs, words, ((__u32)th.sport << 16) | th.dport))
        return TARDY_RESET_PASS;
    if (skb->gso_segs > 1 && skb->len > hdr_len) {
        __u32 old_l4 = bpf_htonl(skb->len - l4), new_l4 = bpf_htonl(hdr_len - l4);

        if (bpf_skb_change_tail(skb, hdr_len, 0))
            return TARDY_RESET_DROP; /* the data may be gone: the peer's TCP retransmits */
        if (v4) {
            __u16 old_tot, new_tot = bpf_htons(hdr_len - 14);

            if (bpf_skb_load_bytes(skb, 14 + 2, &old_tot, 2) ||
                bpf_l3_csum_replace(skb, 14 + 10, old_tot, new_tot, 2) ||
                bpf_skb_store_bytes(skb, 14 + 2, &new_tot, 2, 0))
                return TARDY_RESET_DROP;
        } else {
            __u16 new_payload = bpf_htons(hdr_len - l4);

            if (bpf_skb_store_bytes(skb, 14 + 4, &new_payload, 2, 0))
                return TARDY_RESET_DROP;
        }
        if (bpf_l4_csum_replace(skb, l4 + 16, old_l4, new_l4, BPF_F_PSEUDO_HDR | 4))
            return TARDY_RESET_DROP;
    }
    flags_new = (flags_old & bpf_htons(0xf000)) | bpf_htons(TARDY_TCP_RST | TARDY_TCP_ACK);
    if (bpf_l4_csum_replace(skb, l4 + 16, flags_old, flags_new, 2) ||
        bpf_skb_store_bytes(skb, l4 + 12, &flags_new, 2, 0))
        return TARDY_RESET_DROP;
    cnt = tardy_counters_of(r);
    if (cnt)
        cnt->resets++;
    /* The peer's reset leaves as it is, a copy without a socket (our program passes it). */
    bpf_clone_redirect(skb, skb->ifindex, 0);
    /* The target's: the same segment, turned around. */
    if (tardy_turn_around(skb, &at) || tardy_swap(skb, l4 + 4, l4 + 8, 4))
        return TARDY_RESET_DROP; /* the peer got its reset; this half-turned copy must not leave */
    bpf_redirect(skb->ifindex, BPF_F_INGRESS);
    return TARDY_RESET_SENT;
}
