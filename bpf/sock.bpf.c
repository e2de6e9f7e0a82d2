// SPDX-License-Identifier: GPL-2.0
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

char LICENSE[] SEC("license") = "GPL";

#define TARDY_AF_INET 2
#define TARDY_AF_INET6 10
/* cgroup sock_addr verdicts */
#define TARDY_ALLOW 1
#define TARDY_REJECT 0

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, TARDY_MAX_RULES);
    __type(key, __u32);
    __type(value, struct tardy_sock_counters);
} tardy_sock_counters SEC(".maps");

/* The 32-bit word of a prefix comparison: mask of the first `bits` bits, network order. */
static __always_inline bool tardy_word_matches(__u32 a_be, __u32 p_be, int bits)
{
    __u32 mask;

    if (bits <= 0)
        return true;
    mask = bits >= 32 ? 0xffffffffu : ~(0xffffffffu >> bits);
    return (bpf_ntohl(a_be) & mask) == (bpf_ntohl(p_be) & mask);
}

/* The call's address, read by the entry program: the verifier allows a v4 program only the
 * v4 fields of its context and refuses loads through a computed context pointer. */
struct tardy_call_addr {
    __u32 family;
    __u32 addr_be[4];
    __u16 port; /* host order */
};

static __always_inline bool tardy_peer_matches(const struct tardy_sock_rule *r, const struct tardy_call_addr *a)
{
    if (r->n_peers == 0)
        return true;
    for (__u32 i = 0; i < TARDY_SOCK_MAX_PEERS; i++) {
        const struct tardy_peer *p = &r->peers[i];
        int bits = p->prefix_len;
        bool ok = true;

        if (i >= r->n_peers)
            break;
        if (p->family != a->family)
            continue;
        for (int w = 0; w < 4; w++) {
            if (a->family == TARDY_AF_INET && w > 0)
                break;
            ok = ok && tardy_word_matches(a->addr_be[w], p->addr_be[w], bits - 32 * w);
        }
        if (ok)
            return true;
    }
    return false;
}

static __always_inline bool tardy_port_matches(const struct tardy_sock_rule *r, __u16 port)
{
    if (r->port_lo == 0 && r->port_hi == 0)
        return true;
    return port >= r->port_lo && port <= r->port_hi;
}

/* a is NULL for socket(): no address to filter on. */
static __always_inline int tardy_sock_fault(__u32 op, const struct tardy_call_addr *a)
{
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
    if (a && (!tardy_peer_matches(r, a) || !tardy_port_matches(r, a->port)))
        return TARDY_ALLOW;
    slot = r->slot;
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
        bpf_set_retval(-(int)f->err);
        return TARDY_REJECT;
    }
    return TARDY_ALLOW;
}

static __always_inline int tardy_v4(__u32 op, struct bpf_sock_addr *ctx)
{
    struct tardy_call_addr a = {.family = TARDY_AF_INET};

    a.addr_be[0] = ctx->user_ip4;
    a.port = bpf_ntohs((__u16)ctx->user_port);
    return tardy_sock_fault(op, &a);
}

static __always_inline int tardy_v6(__u32 op, struct bpf_sock_addr *ctx)
{
    struct tardy_call_addr a = {.family = TARDY_AF_INET6};

    a.addr_be[0] = ctx->user_ip6[0];
    a.addr_be[1] = ctx->user_ip6[1];
    a.addr_be[2] = ctx->user_ip6[2];
    a.addr_be[3] = ctx->user_ip6[3];
    a.port = bpf_ntohs((__u16)ctx->user_port);
    return tardy_sock_fault(op, &a);
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
    if (sk->family != TARDY_AF_INET && sk->family != TARDY_AF_INET6)
        return TARDY_ALLOW;
    return tardy_sock_fault(TARDY_OP_SOCKET, NULL);
}
