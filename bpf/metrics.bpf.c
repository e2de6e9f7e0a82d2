// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Cohort metrics: what the TCP connections and the packets of an experiment or control cohort
 * did, measured where it happens. Linked (FD-owned) to the measured cohort cgroups only, so no
 * other process runs any of it. It changes nothing: every program lets everything through.
 *
 * Every link of these programs to a cgroup has its own record (per-CPU cgroup storage, shared
 * by the three programs linked to one cgroup), which the kernel hands the program with the
 * link: a packet or callback of a socket anywhere under the cohort counts in the cohort's
 * record without a lookup, and no cgroup id is read. Histograms are log-linear
 * (include/tardy/abi.h). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "tardy/abi.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TARDY_SKB_PASS 1
#define TARDY_ECONNREFUSED 111
#define TARDY_IPPROTO_TCP 6
#define TARDY_TCP_RST 0x04

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE);
    __type(key, __u64); /* the cgroup's id alone: one record for all of the cgroup's links */
    __type(value, struct tardy_cohort_record);
} tardy_cohort SEC(".maps");

/* Per socket: when its active open began. */
struct tardy_open {
    __u64 connect_ns;
};

struct {
    __uint(type, BPF_MAP_TYPE_SK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct tardy_open);
} tardy_opens SEC(".maps");

static __always_inline struct tardy_cohort_record *tardy_record(void)
{
    return bpf_get_local_storage(&tardy_cohort, 0);
}

/* The log-linear bucket of v microseconds (the layout is in abi.h; user/model/histogram.cpp
 * is its inverse). No clz in BPF: a binary search for the top bit. */
static __always_inline __u32 tardy_hist_bucket(__u64 v)
{
    __u32 g = 0;
    __u64 x;

    if (v > 0xffffffffull)
        v = 0xffffffffull;
    if (v < TARDY_HIST_SUB)
        return (__u32)v;
    x = v;
    if (x >> 16) { x >>= 16; g += 16; }
    if (x >> 8) { x >>= 8; g += 8; }
    if (x >> 4) { x >>= 4; g += 4; }
    if (x >> 2) { x >>= 2; g += 2; }
    if (x >> 1) { g += 1; }
    return (g - TARDY_HIST_SUB_BITS + 1) * TARDY_HIST_SUB +
           (__u32)((v >> (g - TARDY_HIST_SUB_BITS)) & (TARDY_HIST_SUB - 1));
}

static __always_inline void tardy_hist_add(struct tardy_cohort_record *r, __u32 kind, __u64 us)
{
    __u32 b = tardy_hist_bucket(us);

    /* Always below: said to the verifier, after a barrier that keeps clang from folding the
     * test into the index arithmetic. */
    asm volatile("" : "+r"(b));
    if (b >= TARDY_HIST_BUCKETS)
        return;
    _Static_assert(TARDY_HIST_KINDS == 2, "the mask below bounds the kind");
    r->hist[kind & 1][b]++;
}

#define TARDY_CB_FLAGS (BPF_SOCK_OPS_RTT_CB_FLAG | BPF_SOCK_OPS_RETRANS_CB_FLAG | \
                        BPF_SOCK_OPS_RTO_CB_FLAG | BPF_SOCK_OPS_STATE_CB_FLAG)

SEC("sockops")
int tardy_metrics_sockops(struct bpf_sock_ops *ops)
{
    struct tardy_cohort_record *r;
    struct tardy_cohort_counts *c;
    struct bpf_sock *sk;
    struct tardy_open *o;
    struct tcp_sock *tp;
    __u32 op = ops->op;
    int err;

    /* Most callbacks of a healthy connection record nothing: leave before any helper. */
    switch (op) {
    case BPF_SOCK_OPS_TCP_CONNECT_CB:
    case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
    case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
    case BPF_SOCK_OPS_RTT_CB:
    case BPF_SOCK_OPS_RETRANS_CB:
    case BPF_SOCK_OPS_RTO_CB:
        break;
    case BPF_SOCK_OPS_STATE_CB:
        if (ops->args[0] == BPF_TCP_SYN_SENT && ops->args[1] == BPF_TCP_CLOSE)
            break;
        return 1;
    default:
        return 1;
    }
    r = tardy_record();
    if (op == BPF_SOCK_OPS_RTT_CB) {
        /* args[0]: this ACK's RTT sample in us where the kernel passes it (-1: none); older
         * kernels pass nothing, and the smoothed RTT stands in. */
        if ((int)ops->args[0] > 0)
            tardy_hist_add(r, TARDY_HIST_RTT, ops->args[0]);
        else if (ops->args[0] == 0 && ops->srtt_us)
            tardy_hist_add(r, TARDY_HIST_RTT, ops->srtt_us >> 3);
        return 1;
    }
    sk = ops->sk;
    if (!sk)
        return 1;
    tp = bpf_skc_to_tcp_sock(sk);
    if (!tp)
        return 1;
    c = &r->counts;
    switch (op) {
    case BPF_SOCK_OPS_TCP_CONNECT_CB:
        c->connects++;
        o = bpf_sk_storage_get(&tardy_opens, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
        if (o)
            o->connect_ns = bpf_ktime_get_ns();
        bpf_sock_ops_cb_flags_set(ops, ops->bpf_sock_ops_cb_flags | TARDY_CB_FLAGS);
        break;
    case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
        c->established++;
        o = bpf_sk_storage_get(&tardy_opens, sk, 0, 0);
        if (o && o->connect_ns)
            tardy_hist_add(r, TARDY_HIST_CONNECT, (bpf_ktime_get_ns() - o->connect_ns) / 1000);
        /* Its failure can no longer happen: no state changes from here on. */
        bpf_sock_ops_cb_flags_set(ops, ops->bpf_sock_ops_cb_flags & ~BPF_SOCK_OPS_STATE_CB_FLAG);
        break;
    case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
        c->accepted++;
        bpf_sock_ops_cb_flags_set(ops, ops->bpf_sock_ops_cb_flags |
                                           (TARDY_CB_FLAGS & ~BPF_SOCK_OPS_STATE_CB_FLAG));
        break;
    case BPF_SOCK_OPS_RETRANS_CB:
        c->retransmits += ops->args[1] ? ops->args[1] : 1; /* segments */
        break;
    case BPF_SOCK_OPS_RTO_CB:
        c->rtos++;
        break;
    case BPF_SOCK_OPS_STATE_CB: /* SYN-SENT -> CLOSE: an active open failed */
        err = tp->inet_conn.icsk_inet.sk.sk_err;
        if (err == TARDY_ECONNREFUSED)
            c->failed_refused++;
        else if (err)
            c->failed_timeout++;
        else
            c->failed_abandoned++;
        break;
    }
    return 1;
}

/* Whether an IP packet (cgroup_skb data starts at the network header) is a TCP RST. Linux
 * sends RSTs without payload, so a packet longer than the largest header pair (IPv6's 40 and
 * TCP's 60 bytes) is none, and data packets cost one comparison. Headers are read in place;
 * IPv6 extension headers are not walked: their packets are not counted as resets. */
#define TARDY_RST_MAX_LEN 100
static __always_inline bool tardy_is_rst(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    __u8 *ip = data, *tcp;

    if (skb->len > TARDY_RST_MAX_LEN)
        return false;
    if (skb->protocol == (__u32)bpf_htons(0x0800)) {
        if ((void *)(ip + 20) > end || ip[9] != TARDY_IPPROTO_TCP)
            return false;
        tcp = ip + (ip[0] & 0xf) * 4;
    } else if (skb->protocol == (__u32)bpf_htons(0x86DD)) {
        if ((void *)(ip + 40) > end || ip[6] != TARDY_IPPROTO_TCP)
            return false;
        tcp = ip + 40;
    } else {
        return false;
    }
    if ((void *)(tcp + 14) > end)
        return false;
    return tcp[13] & TARDY_TCP_RST;
}

static __always_inline void tardy_count_skb(struct __sk_buff *skb, bool out)
{
    struct tardy_cohort_counts *c = &tardy_record()->counts;
    __u32 segs = skb->gso_segs ? skb->gso_segs : 1;

    if (out) {
        c->packets_out += segs;
        c->bytes_out += skb->len;
    } else {
        c->packets_in += segs;
        c->bytes_in += skb->len;
    }
    if (tardy_is_rst(skb)) {
        if (out)
            c->resets_sent++;
        else
            c->resets_received++;
    }
}

SEC("cgroup_skb/egress")
int tardy_metrics_egress(struct __sk_buff *skb)
{
    tardy_count_skb(skb, true);
    return TARDY_SKB_PASS;
}

SEC("cgroup_skb/ingress")
int tardy_metrics_ingress(struct __sk_buff *skb)
{
    tardy_count_skb(skb, false);
    return TARDY_SKB_PASS;
}
