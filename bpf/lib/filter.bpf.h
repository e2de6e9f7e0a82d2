/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* An injection's filter (struct tardy_filter) against a packet or a call, and the sticky
 * per-flow draw of --flows. Shared by the TC programs and the socket hooks. */
#pragma once

#define TARDY_AF_INET 2
#define TARDY_AF_INET6 10

/* What a filter looks at: the remote end (a packet's destination at egress, a call's
 * address), the local end for the flow draw, and the protocol. */
struct tardy_flow {
    __u32 family;       /* TARDY_AF_INET or TARDY_AF_INET6; 0: not IP (matches no peer) */
    __u32 proto;        /* a TARDY_PROTO_* bit; 0: another protocol */
    __u32 remote_be[4]; /* IPv4 in [0] */
    __u32 local_be[4];
    __u16 remote_port;  /* host order; 0: none (ICMP, a later fragment) */
    __u16 local_port;   /* an ICMP echo's identifier: a ping socket's "port" */
    __u8 syn;           /* a TCP segment with SYN set (connection setup) */
    __u8 echo;          /* TARDY_ECHO_REQUEST, TARDY_ECHO_REPLY, or 0 */
    __u16 pad;
};

#define TARDY_ECHO_REQUEST 1
#define TARDY_ECHO_REPLY 2

/* The mask of a prefix's `bits` first bits within 32-bit word w, in network byte order. */
static __always_inline __u32 tardy_word_mask(int bits, int w)
{
    int b = bits - 32 * w;

    if (b <= 0)
        return 0;
    if (b >= 32)
        return 0xffffffffu;
    return bpf_htonl(~(0xffffffffu >> b));
}

/* Whole words compared under masks, without early exits inside an address: few paths for
 * the verifier. An IPv4 flow and prefix have zeros in words 1-3, which a /32 or shorter masks
 * out anyway. In the scan by bpf_loop (checked once, whatever its branches) another family
 * returns at once and an IPv4 address is one word: a quarter of the work for most peers. The
 * unrolled scan (stalls) keeps one path per peer: the branches made the verifier check
 * its eight peers' combinations (134,000 instructions on 6.18, against the 130,000 its test allows). */
static __always_inline bool tardy_peer_matches(const struct tardy_peer *p, const struct tardy_flow *a)
{
    int bits = p->prefix_len;
    __u32 diff = 0;

#ifndef TARDY_FILTER_UNROLLED
    if (p->family != a->family)
        return false;
    if (a->family == TARDY_AF_INET)
        return ((a->remote_be[0] ^ p->addr_be[0]) & tardy_word_mask(bits, 0)) == 0;
#endif
    for (int w = 0; w < 4; w++)
        diff |= (a->remote_be[w] ^ p->addr_be[w]) & tardy_word_mask(bits, w);
    return p->family == a->family && diff == 0;
}

/* One step of the peer scan (by bpf_loop: the verifier checks one peer's path, not eight
 * unrolled ones, which cost it 30 times more at load). */
struct tardy_peer_scan {
    const struct tardy_filter *f;
    struct tardy_flow a; /* a copy: the scan runs in a callback frame of its own */
    __u32 hit;
    __u32 excluded;
};

#ifndef TARDY_FILTER_UNROLLED
static long tardy_peer_step(__u32 i, void *ctx)
{
    struct tardy_peer_scan *s = ctx;
    const struct tardy_filter *f = s->f;
    __u64 k = i;

    if (i >= TARDY_FILTER_MAX_PEERS || i >= f->n_peers + f->n_except)
        return 1;
    asm volatile("" : "+r"(k)); /* keep the mask: the verifier must see the index bounded */
    if (!tardy_peer_matches(&f->peers[k & (TARDY_FILTER_MAX_PEERS - 1)], &s->a))
        return 0;
    if (i >= f->n_peers) {
        s->excluded = 1; /* exclusions win */
        return 1;
    }
    s->hit = 1;
    return 0;
}
#endif

/* Exclusions win: a flow to an excluded peer or port never matches. */
static __always_inline bool tardy_filter_matches(const struct tardy_filter *f, const struct tardy_flow *a)
{
    struct tardy_peer_scan s = {.f = f, .a = *a};

    if (f->protos && !(f->protos & a->proto))
        return false;
    if (f->port_lo && (a->remote_port < f->port_lo || a->remote_port > f->port_hi))
        return false;
    if (f->except_port_lo && a->remote_port >= f->except_port_lo && a->remote_port <= f->except_port_hi)
        return false;
    if (f->n_peers + f->n_except == 0)
        return true;
    s.hit = f->n_peers == 0;
#ifdef TARDY_FILTER_UNROLLED
    /* For programs that check one filter (stalls): unrolled, no bpf_loop and so no callback
     * subprogram. In the stall program on Debian's 6.1 and 6.12 any subprogram (a bpf_loop
     * callback or a noinline function) made its --path walk match files outside the path,
     * and once a guest soft-locked; 6.18 was right. Without one, every kernel is. */
    for (__u32 i = 0; i < TARDY_FILTER_MAX_PEERS; i++) {
        if (i >= f->n_peers + f->n_except)
            break;
        if (!tardy_peer_matches(&f->peers[i], a))
            continue;
        if (i >= f->n_peers)
            return false; /* exclusions win */
        s.hit = 1;
    }
#else
    bpf_loop(TARDY_FILTER_MAX_PEERS, tardy_peer_step, &s, 0);
#endif
    return s.hit && !s.excluded;
}

static __always_inline __u32 tardy_mix(__u32 h, __u32 x)
{
    h ^= x;
    h *= 0x9e3779b1u;
    return h ^ (h >> 15);
}

/* murmur3's finaliser: every input bit reaches every output bit (the sticky draws per flow). */
static __always_inline __u32 tardy_fmix(__u32 h)
{
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    return h ^ (h >> 16);
}

/* --flows: whether the rule applies to this flow, decided by a hash of the 5-tuple and the
 * injection's seed, so every packet of a connection gets the same answer for its life. */
static __always_inline bool tardy_flow_chosen(const struct tardy_rule *r, const struct tardy_flow *a)
{
    __u32 h = r->flow_seed;

    if (r->flows_ppm == 0)
        return true;
    for (int w = 0; w < 4; w++) {
        h = tardy_mix(h, a->remote_be[w]);
        h = tardy_mix(h, a->local_be[w]);
    }
    h = tardy_mix(h, ((__u32)a->remote_port << 16) | a->local_port);
    h = tardy_mix(h, a->proto);
    return tardy_scale32(tardy_fmix(h), TARDY_PPM) < r->flows_ppm;
}

#define TARDY_ETH_P_IP 0x0800
#define TARDY_ETH_P_IPV6 0x86dd

/* An ICMP error (destination unreachable, time exceeded, parameter problem; ICMPv6's packet
 * too big as well) quotes the start of the packet that caused it, which its receiver sent: the
 * error's flow is that packet's, seen from the receiver (remote = the quoted destination, the
 * ports the quoted ones), so that an ingress delay finds the socket an error is for as it finds
 * the socket of an answer, and a filter judges the flow the error is about. icmp_at: the ICMP
 * header's offset from the network header. Returns 1 when f holds the quoted TCP or UDP flow,
 * 0 (f unchanged) otherwise. A global function: its stack is its own, not its caller's. */
__noinline int tardy_parse_icmp_error(struct __sk_buff *skb, struct tardy_flow *f, __u32 icmp_at, __u32 v6)
{
    __u32 in = icmp_at + 8, l4, proto;
    __u16 ports[2];

    if (!skb || !f)
        return 0;
    if (!v6) {
        struct iphdr ip;

        if (bpf_skb_load_bytes_relative(skb, in, &ip, sizeof(ip), BPF_HDR_START_NET) || ip.version != 4 ||
            (ip.frag_off & bpf_htons(0x1fff)))
            return 0;
        proto = ip.protocol;
        l4 = in + ip.ihl * 4;
        if ((proto != 6 && proto != 17) ||
            bpf_skb_load_bytes_relative(skb, l4, ports, sizeof(ports), BPF_HDR_START_NET))
            return 0;
        f->remote_be[0] = ip.daddr;
        f->local_be[0] = ip.saddr;
    } else {
        struct ipv6hdr ip6;

        if (bpf_skb_load_bytes_relative(skb, in, &ip6, sizeof(ip6), BPF_HDR_START_NET))
            return 0;
        proto = ip6.nexthdr;
        if ((proto != 6 && proto != 17) ||
            bpf_skb_load_bytes_relative(skb, in + sizeof(ip6), ports, sizeof(ports), BPF_HDR_START_NET))
            return 0;
        __builtin_memcpy(f->remote_be, &ip6.daddr, 16);
        __builtin_memcpy(f->local_be, &ip6.saddr, 16);
    }
    f->proto = proto == 6 ? TARDY_PROTO_TCP : TARDY_PROTO_UDP;
    f->local_port = bpf_ntohs(ports[0]);
    f->remote_port = bpf_ntohs(ports[1]);
    return 1;
}

/* The flow of a packet, read relative to its network header (so devices with and without a
 * link-layer header, and cgroup_skb programs, alike). The remote end is the destination of
 * a packet the target sends and the source of one it receives; a received ICMP error is the
 * flow it quotes (tardy_parse_icmp_error). Leaves family 0 for what is not IPv4 or IPv6. */
static __always_inline void tardy_parse(struct __sk_buff *skb, struct tardy_flow *f, bool ingress)
{
    __u32 l4 = 0, *dst = ingress ? f->local_be : f->remote_be, *src = ingress ? f->remote_be : f->local_be;
    __u8 proto = 0;
    struct {
        __u16 ports[2];
        __u32 seq, ack;
        __u8 doff, flags;
    } l4h;

    if (skb->protocol == bpf_htons(TARDY_ETH_P_IP)) {
        struct iphdr ip;

        if (bpf_skb_load_bytes_relative(skb, 0, &ip, sizeof(ip), BPF_HDR_START_NET))
            return;
        f->family = TARDY_AF_INET;
        dst[0] = ip.daddr;
        src[0] = ip.saddr;
        proto = ip.protocol;
        /* a later fragment carries no ports */
        l4 = (ip.frag_off & bpf_htons(0x1fff)) ? 0 : ip.ihl * 4;
    } else if (skb->protocol == bpf_htons(TARDY_ETH_P_IPV6)) {
        struct ipv6hdr ip6;

        if (bpf_skb_load_bytes_relative(skb, 0, &ip6, sizeof(ip6), BPF_HDR_START_NET))
            return;
        f->family = TARDY_AF_INET6;
        __builtin_memcpy(dst, &ip6.daddr, 16);
        __builtin_memcpy(src, &ip6.saddr, 16);
        proto = ip6.nexthdr; /* extension headers are not followed: such a packet has no ports */
        l4 = sizeof(ip6);
    } else {
        return;
    }
    if (proto == 6)
        f->proto = TARDY_PROTO_TCP;
    else if (proto == 17)
        f->proto = TARDY_PROTO_UDP;
    else if (proto == 1 || proto == 58)
        f->proto = TARDY_PROTO_ICMP;
    if (l4 && (proto == 1 || proto == 58)) {
        __u8 icmp[6]; /* type, code, checksum, identifier */

        if (bpf_skb_load_bytes_relative(skb, l4, icmp, sizeof(icmp), BPF_HDR_START_NET))
            return;
        if (icmp[0] == (proto == 1 ? 8 : 128))
            f->echo = TARDY_ECHO_REQUEST;
        else if (icmp[0] == (proto == 1 ? 0 : 129))
            f->echo = TARDY_ECHO_REPLY;
        if (f->echo)
            f->local_port = (__u16)icmp[4] << 8 | icmp[5];
        else if (ingress && (proto == 1 ? icmp[0] == 3 || icmp[0] == 11 || icmp[0] == 12 : icmp[0] >= 1 && icmp[0] <= 4))
            tardy_parse_icmp_error(skb, f, l4, proto == 58);
        return;
    }
    if (!l4 || (proto != 6 && proto != 17))
        return;
    if (bpf_skb_load_bytes_relative(skb, l4, &l4h, proto == 6 ? 14 : 4, BPF_HDR_START_NET))
        return;
    /* [0] is the source port: the local one of a packet sent, the remote one of a packet received */
    f->local_port = bpf_ntohs(l4h.ports[ingress ? 1 : 0]);
    f->remote_port = bpf_ntohs(l4h.ports[ingress ? 0 : 1]);
    f->syn = proto == 6 && (l4h.flags & 0x02);
}
