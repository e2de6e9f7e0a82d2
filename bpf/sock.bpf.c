// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Socket syscall faults: cgroup hooks that fail connect, sendmsg, bind and socket with a
 * chosen errno. Attached to the target cgroup only (FD-owned links), so no other process
 * runs them at all. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "tardy/abi.h"
#include "lib/control.bpf.h"
#include "lib/rng.bpf.h"
#include "lib/task_match.bpf.h"
#include "lib/filter.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* cgroup sock_addr verdicts */
#define TARDY_ALLOW 1
#define TARDY_REJECT 0
/* cgroup_skb egress: 2 drops the packet and tells the sender NET_XMIT_CN, which TCP and UDP
 * both report as success (net_xmit_eval), so the loss is silent */
#define TARDY_SKB_PASS 1
#define TARDY_SKB_LOSE 2
#define TARDY_ETIMEDOUT 110
#define TARDY_SOL_SOCKET 1
#define TARDY_SO_ERROR 4

/* Per socket: what its first connect() drew. A real refusal belongs to the connection, not
 * to the call: a non-blocking client (hiredis) calls connect() again on the same socket to
 * learn the outcome, and must hear the same answer instead of a second draw. */
struct tardy_connect_verdict {
    __u64 expires_ns; /* with slot: the rule that decided; another rule draws afresh */
    __u32 slot;
    __u32 err;        /* 0: let through; else every connect() of the socket fails with it */
    __u32 blackhole;  /* ETIMEDOUT: connect() goes ahead and every packet of the socket is lost */
    __u32 reported;   /* getsockopt(SO_ERROR) reported err once, as the kernel clears sk_err */
};

struct {
    __uint(type, BPF_MAP_TYPE_SK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct tardy_connect_verdict);
} tardy_connect_verdicts SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, TARDY_MAX_RULES);
    __type(key, __u32);
    __type(value, struct tardy_sock_counters);
} tardy_sock_counters SEC(".maps");

static __always_inline __u32 tardy_proto_bit(__u32 ipproto)
{
    if (ipproto == 6)
        return TARDY_PROTO_TCP;
    if (ipproto == 17)
        return TARDY_PROTO_UDP;
    if (ipproto == 1 || ipproto == 58)
        return TARDY_PROTO_ICMP;
    return 0;
}

/* a: the call's remote end and protocol, read by the entry program (the verifier allows a v4
 * program only the v4 fields of its context); family 0 for socket(), which has no address.
 * sk: the socket of a connect(). */
static __always_inline int tardy_sock_fault(__u32 op, const struct tardy_flow *a, struct bpf_sock *sk)
{
    struct tardy_connect_verdict *v = NULL;
    struct tardy_control *c = tardy_armed_control();
    struct tardy_sock_counters *cnt;
    struct tardy_sock_rule *r;
    __u64 now;
    __u32 slot;

    if (!c)
        return TARDY_ALLOW;
    r = tardy_match_task(c);
    if (!r)
        return TARDY_ALLOW;
    now = bpf_ktime_get_ns();
    if (!tardy_lease_valid(c, now) || now >= r->expires_ns)
        return TARDY_ALLOW;
    if (!tardy_filter_matches(&r->filter, a))
        return TARDY_ALLOW;
    slot = r->slot;
    if (op == TARDY_OP_CONNECT && sk) {
        v = bpf_sk_storage_get(&tardy_connect_verdicts, sk, 0, 0);
        if (v && v->slot == slot && v->expires_ns == r->expires_ns) {
            if (!v->err || v->blackhole)
                return TARDY_ALLOW;
            bpf_set_retval(-(int)v->err);
            return TARDY_REJECT;
        }
        v = bpf_sk_storage_get(&tardy_connect_verdicts, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
        if (v) {
            v->slot = slot;
            v->expires_ns = r->expires_ns;
            v->err = 0;
            v->blackhole = 0;
            v->reported = 0;
        }
    }
    cnt = bpf_map_lookup_elem(&tardy_sock_counters, &slot);
    for (__u32 i = 0; i < TARDY_SOCK_MAX_FAULTS; i++) {
        const struct tardy_sock_fault *f = &r->faults[i];

        if (i >= r->n_faults)
            break;
        if (f->op != op)
            continue;
        if (cnt)
            cnt->seen++;
        if (!tardy_chance_ppm(f->ppm))
            return TARDY_ALLOW;
        if (cnt)
            cnt->failed++;
        if (op == TARDY_OP_CONNECT && f->err == TARDY_ETIMEDOUT) {
            /* A timeout takes time: the connection is let through and its SYNs vanish
             * (tardy_blackhole), so the client's own timeout, or the kernel's SYN retries,
             * end it as on a real network. Without storage there is nothing to mark: the
             * connect goes through. */
            if (v)
                v->blackhole = 1;
            return TARDY_ALLOW;
        }
        if (v)
            v->err = f->err;
        if (cnt && op == TARDY_OP_CONNECT)
            cnt->connects_refused++;
        bpf_set_retval(-(int)f->err);
        return TARDY_REJECT;
    }
    return TARDY_ALLOW;
}

static __always_inline int tardy_v4(__u32 op, struct bpf_sock_addr *ctx)
{
    struct tardy_flow a = {.family = TARDY_AF_INET};

    a.remote_be[0] = ctx->user_ip4;
    a.remote_port = bpf_ntohs((__u16)ctx->user_port);
    a.proto = tardy_proto_bit(ctx->protocol);
    return tardy_sock_fault(op, &a, op == TARDY_OP_CONNECT ? ctx->sk : NULL);
}

static __always_inline int tardy_v6(__u32 op, struct bpf_sock_addr *ctx)
{
    struct tardy_flow a = {.family = TARDY_AF_INET6};

    a.remote_be[0] = ctx->user_ip6[0];
    a.remote_be[1] = ctx->user_ip6[1];
    a.remote_be[2] = ctx->user_ip6[2];
    a.remote_be[3] = ctx->user_ip6[3];
    a.remote_port = bpf_ntohs((__u16)ctx->user_port);
    a.proto = tardy_proto_bit(ctx->protocol);
    return tardy_sock_fault(op, &a, op == TARDY_OP_CONNECT ? ctx->sk : NULL);
}

SEC("cgroup/connect4")
int tardy_connect4(struct bpf_sock_addr *ctx) { return tardy_v4(TARDY_OP_CONNECT, ctx); }

SEC("cgroup/connect6")
int tardy_connect6(struct bpf_sock_addr *ctx) { return tardy_v6(TARDY_OP_CONNECT, ctx); }

SEC("cgroup/sendmsg4")
int tardy_sendmsg4(struct bpf_sock_addr *ctx) { return tardy_v4(TARDY_OP_SENDMSG, ctx); }

SEC("cgroup/sendmsg6")
int tardy_sendmsg6(struct bpf_sock_addr *ctx) { return tardy_v6(TARDY_OP_SENDMSG, ctx); }

SEC("cgroup/bind4")
int tardy_bind4(struct bpf_sock_addr *ctx) { return tardy_v4(TARDY_OP_BIND, ctx); }

SEC("cgroup/bind6")
int tardy_bind6(struct bpf_sock_addr *ctx) { return tardy_v6(TARDY_OP_BIND, ctx); }

SEC("cgroup/sock_create")
int tardy_sock_create(struct bpf_sock *sk)
{
    struct tardy_flow a = {};

    if (sk->family != TARDY_AF_INET && sk->family != TARDY_AF_INET6)
        return TARDY_ALLOW;
    a.proto = tardy_proto_bit(sk->protocol); /* no address: the model refuses peers and ports here */
    return tardy_sock_fault(TARDY_OP_SOCKET, &a, NULL);
}

/* The packets of a socket whose connect() drew ETIMEDOUT, SYN retries included (these leave
 * from a timer, in no task's context: the mark is on the socket). Attached with the connect
 * hooks, to the target cgroup only. Ends with the rule's expiry, the kill switch and the
 * lease; `tardy stop` detaches it. */
SEC("cgroup_skb/egress")
int tardy_blackhole(struct __sk_buff *skb)
{
    struct tardy_control *c = tardy_armed_control();
    struct tardy_connect_verdict *v;
    struct bpf_sock *sk = skb->sk;
    __u64 now;

    if (!c || !sk)
        return TARDY_SKB_PASS;
    sk = bpf_sk_fullsock(sk);
    if (!sk)
        return TARDY_SKB_PASS;
    v = bpf_sk_storage_get(&tardy_connect_verdicts, sk, 0, 0);
    if (!v || !v->blackhole)
        return TARDY_SKB_PASS;
    now = bpf_ktime_get_ns();
    if (!tardy_lease_valid(c, now) || now >= v->expires_ns)
        return TARDY_SKB_PASS;
    return TARDY_SKB_LOSE;
}

/* getsockopt(SO_ERROR) of a refused socket says so once, as after a real refusal, for
 * clients that ask it rather than trust connect()'s return. */
SEC("cgroup/getsockopt")
int tardy_getsockopt(struct bpf_sockopt *ctx)
{
    struct tardy_connect_verdict *v;
    struct bpf_sock *sk = ctx->sk;
    int *optval = ctx->optval;

    if (ctx->level != TARDY_SOL_SOCKET || ctx->optname != TARDY_SO_ERROR || !sk)
        return TARDY_ALLOW;
    if ((void *)(optval + 1) > ctx->optval_end)
        return TARDY_ALLOW;
    v = bpf_sk_storage_get(&tardy_connect_verdicts, sk, 0, 0);
    if (!v || !v->err || v->reported || ctx->retval != 0 || *optval != 0)
        return TARDY_ALLOW;
    *optval = (int)v->err;
    v->reported = 1;
    return TARDY_ALLOW;
}
