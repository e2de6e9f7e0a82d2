// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Packet faults of target cgroups, filtered by peer, port, protocol and flow: loss, delay,
 * duplication, corruption, reordering, rate, DNS errors and TCP resets at TC egress for what they send, loss at
 * cgroup_skb ingress for what they receive, delay at TC ingress (through an ifb) for it too. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "tardy/abi.h"
#include "lib/control.bpf.h"
#include "lib/rng.bpf.h"
#include "lib/match.bpf.h"
#include "lib/counters.bpf.h"
#include "lib/edt.bpf.h"
#include "lib/steal.bpf.h"
#include "lib/lose.bpf.h"
#include "lib/filter.bpf.h"
#include "lib/shape.bpf.h"
#include "lib/turn.bpf.h"
#include "lib/dns.bpf.h"
#include "lib/reset.bpf.h"
#include "lib/corrupt.bpf.h"
#include "lib/echo.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* One packet's walk through its cgroup's rule set (tardy_rule_step, by bpf_loop). */
struct tardy_walk {
    struct tardy_rule_set *set;
    struct tardy_flow flow;
    __u32 last_delaying; /* slot + 1 of the last rule that delayed: counts a departure beyond the horizon */
    __u32 corrupt_slot;  /* slot + 1 of the first rule whose --corrupt drew this packet */
    __u64 now;
    __u64 delay;
    __u32 len;
    __u64 rate_start; /* the latest --rate slot of the rules it passes: no departure before */
    __u32 lost;
    __u32 delayed;
    __u32 duplicate; /* send it twice */
    __u32 dns_rule;   /* index + 1 in the set of the first rule with a DNS fault that a UDP packet to port 53 met */
    __u32 reset_rule; /* index + 1 in the set of the first rule with --reset the packet met */
    __u32 scope; /* TARDY_SCOPE_EGRESS or TARDY_SCOPE_INGRESS: where the packet is */
};

/* What one rule does to a packet that matched it (tardy_apply_rule). */
struct tardy_verdict {
    __u64 delay;      /* added to the packet's departure */
    __u64 rate_start; /* 0, or its --rate slot: no departure before */
    __u32 delayed;    /* delay or rate_start holds it back */
    /* 16 bits each: the verdict stays 24 bytes. Debian 6.1's verifier counts the stack of the
     * ingress program's call chain in 32-byte steps, and 4 bytes more took it to 544 of 512. */
    __u16 duplicate;
    __u16 corrupt;
};

/* One matching rule's faults on a packet: counts it, then loss, rate, duplication, reorder
 * and delay. Returns 1 when the packet is lost. A global function: the verifier checks it
 * once, on its own, instead of once for every path of its callers through the shapes' many
 * branches (inlined, they made each TC program's load 15 times slower). */
__noinline int tardy_apply_rule(const struct tardy_rule *r, struct tardy_verdict *v, __u64 now, __u32 len,
                                __u32 scope)
{
    struct tardy_counters *cnt;
    struct tardy_rule_state *st;

    if (!r || !v)
        return 0;
    cnt = tardy_counters_of(r);
    if (scope & TARDY_SCOPE_TC_INGRESS) { /* the delay only: the cgroup hook counts and loses */
        if (!r->delay_ns)
            return 0;
        v->delay = tardy_shaped_delay(r, r->corr_ppm ? tardy_state_of(r) : NULL);
        v->delayed = 1;
        if (cnt)
            cnt->delayed++;
        return 0;
    }
    if (cnt) {
        cnt->matched++;
        cnt->bytes += len;
    }
    /* Only the shapes that remember something read the shared state: a plain rule skips the
     * lookup (every user of st takes NULL as "no memory"). */
    st = r->corr_ppm || r->ge_p_ppm || r->rate_bytes_per_s || r->reorder_gap > 1 ? tardy_state_of(r) : NULL;
    if (tardy_loses(r, st)) {
        if (cnt)
            cnt->dropped++;
        return 1;
    }
    if (scope != TARDY_SCOPE_EGRESS) /* the rest acts on departures: egress only (the agent refuses it at ingress) */
        return 0;
    if (r->rate_bytes_per_s) {
        __u64 start = tardy_rate_slot(r, st, now, len);

        if (!start) { /* the rate's queue is full */
            if (cnt)
                cnt->dropped++;
            return 1;
        }
        if (start > now) {
            v->rate_start = start;
            v->delayed = 1;
            if (cnt)
                cnt->paced++;
        }
    }
    if (r->duplicate_ppm && tardy_cchance(r, st, TARDY_DRAW_DUPLICATE, r->duplicate_ppm)) {
        v->duplicate = 1;
        if (cnt)
            cnt->duplicated++;
    }
    if (r->corrupt_ppm && tardy_cchance(r, st, TARDY_DRAW_CORRUPT, r->corrupt_ppm))
        v->corrupt = 1; /* counted where it is done: some packets have no checksum to damage */
    if (r->delay_ns) {
        if (r->reorder_ppm && tardy_reorders(r, st)) {
            if (cnt) /* leaves at once, ahead of the delayed packets sent before it */
                cnt->reordered++;
            return 0;
        }
        v->delay = tardy_shaped_delay(r, st);
        v->delayed = 1;
        if (cnt)
            cnt->delayed++;
    }
    return 0;
}

/* Whether a packet's flow passes a rule's filter. A global function for the same reason as
 * tardy_apply_rule: Debian's 6.1 verifier walked the peer scan's callback again for every
 * path of its callers (69,000 of the ingress program's 97,000 checked instructions, and
 * 2 s of load per TC program under TCG); verified once on its own, it costs ~1,000. */
__noinline int tardy_rule_filter(const struct tardy_filter *f, const struct tardy_flow *a)
{
    if (!f || !a)
        return 0;
    return tardy_filter_matches(f, a);
}

/* &set->rules[i] for i already checked: masked after a barrier, so that the compiler keeps
 * the mask (it knows i < TARDY_RULES_PER_CGROUP) and the verifier sees a bounded offset. The
 * rules are copies in the set's own value (include/tardy/abi.h): no lookup per rule. */
static __always_inline const struct tardy_rule *tardy_rule_at(const struct tardy_rule_set *set, __u64 i)
{
    asm volatile("" : "+r"(i));
    return &set->rules[i & (TARDY_RULES_PER_CGROUP - 1)];
}

/* Rule i of the set. Returns 1 to stop. Rule 0 is taken inline; the others through
 * tardy_rule_step_next, a callback of bpf_loop, so the verifier checks one rule's path once
 * instead of every combination of TARDY_RULES_PER_CGROUP unrolled rules. */
static __always_inline long tardy_rule_step_inline(__u32 i, struct tardy_walk *w)
{
    struct tardy_verdict v = {};
    const struct tardy_rule *r;
    __u32 slot;

    if (i >= TARDY_RULES_PER_CGROUP || i >= w->set->n)
        return 1;
    r = tardy_rule_at(w->set, i);
    slot = r->slot;
    if (w->now >= r->expires_ns)
        return 0;
    if (!((r->scope ? r->scope : TARDY_SCOPE_EGRESS) & w->scope))
        return 0;
    if ((r->scope & TARDY_SCOPE_SETUP) && !w->flow.syn)
        return 0;
    if (r->filtered && !tardy_rule_filter(&r->filter, &w->flow))
        return 0;
    if (!tardy_flow_chosen(r, &w->flow))
        return 0;
    if (r->dns_rcode && !w->dns_rule && w->flow.proto == TARDY_PROTO_UDP && w->flow.remote_port == TARDY_DNS_PORT)
        w->dns_rule = i + 1;
    if (r->reset_ppm && !w->reset_rule)
        w->reset_rule = i + 1;
    if (tardy_apply_rule(r, &v, w->now, w->len, w->scope)) {
        w->lost = 1;
        return 1;
    }
    if (v.delayed) {
        w->delay += v.delay;
        w->delayed = 1;
        w->last_delaying = slot + 1;
    }
    if (v.rate_start > w->rate_start)
        w->rate_start = v.rate_start;
    w->duplicate |= v.duplicate;
    if (v.corrupt && !w->corrupt_slot)
        w->corrupt_slot = slot + 1;
    return 0;
}

/* Rules 1.. of the set, after rule 0 was taken inline: bpf_loop's callback. */
static long tardy_rule_step_next(__u32 i, void *ctx)
{
    return tardy_rule_step_inline(i + 1, ctx);
}

/* The bytes a packet takes on the wire. A GSO packet (a TCP send on a veth or with TSO is
 * one packet at TC for up to 64 KiB) leaves as gso_segs frames, each with its own headers:
 * counted as qdisc_pkt_len_init() counts it for tbf and fq. Without this --rate let TCP
 * through 4% above the rate (9.97 Mbit/s of payload at 10mbit against tbf's 9.48). */
static __always_inline __u32 tardy_wire_len(struct __sk_buff *skb)
{
    __u32 segs = skb->gso_segs, len = skb->len, protocol = skb->protocol, hdr = 0, l4;
    __u16 eth_proto;
    __u8 b;

    /* each field read once, as a value: the compiler would otherwise address the context
     * with an offset, which the verifier refuses */
    asm volatile("" : "+r"(protocol), "+r"(len));
    if (segs <= 1)
        return len;
    if (!bpf_skb_load_bytes(skb, 12, &eth_proto, 2) && eth_proto == protocol)
        hdr = 14;
    if (protocol == bpf_htons(TARDY_ETH_P_IP)) {
        if (bpf_skb_load_bytes_relative(skb, 0, &b, 1, BPF_HDR_START_NET))
            return len;
        l4 = (b & 0xf) * 4;
        if (bpf_skb_load_bytes_relative(skb, 9, &b, 1, BPF_HDR_START_NET))
            return len;
    } else if (protocol == bpf_htons(TARDY_ETH_P_IPV6)) {
        l4 = 40;
        if (bpf_skb_load_bytes_relative(skb, 6, &b, 1, BPF_HDR_START_NET))
            return len;
    } else {
        return len;
    }
    hdr += l4;
    if (b == 6) { /* TCP: its header's own length */
        if (bpf_skb_load_bytes_relative(skb, l4 + 12, &b, 1, BPF_HDR_START_NET))
            return len;
        hdr += (b >> 4) * 4;
    } else {
        hdr += 8; /* UDP */
    }
    return len + (segs - 1) * hdr;
}

/* A packet goes through every live rule of its cgroup's set whose scope (direction, setup)
 * and filter (and flow draw) it matches, in order, as through stages in series: each counts
 * it, a loss in any loses it, and the delays of the rules it passes add up to one departure
 * time. The packet is parsed only when some rule filters; a set of unfiltered rules costs no
 * header read. Returns false when no rule set applies. */
static __always_inline bool tardy_walk_rules(struct __sk_buff *skb, struct tardy_walk *w, __u32 scope)
{
    struct tardy_control *c = tardy_armed_control();
    struct tardy_rule_set *set;
    __u64 rule_cgid = 0, now;

    if (!c)
        return false;
    set = tardy_match_skb(skb, c, &rule_cgid);
    if (!set)
        return false;
    now = bpf_ktime_get_ns();
    if (!tardy_lease_valid(c, now))
        return false;
    /* zeroed only now: a packet no rule set applies to (a bystander's) does not pay for it */
    __builtin_memset(w, 0, sizeof(*w));
    w->set = set;
    w->now = now;
    w->len = tardy_wire_len(skb);
    w->scope = scope;
    if (w->set->parse) {
        tardy_parse(skb, &w->flow, scope == TARDY_SCOPE_INGRESS);
        if (w->flow.echo == TARDY_ECHO_REQUEST && scope == TARDY_SCOPE_EGRESS)
            tardy_learn_echo(&w->flow, rule_cgid, c->generation);
    }
    /* Most cgroups have one rule: it is taken inline, neither a loop (bpf_loop's setup
     * measured 100 ns a packet) nor a call; the others go through bpf_loop. */
    if (tardy_rule_step_inline(0, w) == 0 && w->set->n > 1)
        bpf_loop(TARDY_RULES_PER_CGROUP - 1, tardy_rule_step_next, w, 0);
    return true;
}

static __always_inline int tardy_egress(struct __sk_buff *skb, bool can_steal)
{
    struct tardy_walk w; /* zeroed by tardy_walk_rules() once a rule set applies */
    __u64 t;

    if (!tardy_walk_rules(skb, &w, TARDY_SCOPE_EGRESS))
        return TARDY_TC_NEXT;
    if (w.lost)
        return tardy_lose(can_steal);
    if (w.reset_rule) {
        int d = tardy_reset_fault(skb, tardy_rule_at(w.set, w.reset_rule - 1));

        if (d == TARDY_RESET_SENT)
            return TARDY_TC_ACT_REDIRECT;
        if (d == TARDY_RESET_DROP)
            return tardy_lose(can_steal);
    }
    if (w.dns_rule && w.scope == TARDY_SCOPE_EGRESS) {
        int d = tardy_dns_fault(skb, tardy_rule_at(w.set, w.dns_rule - 1));

        if (d == TARDY_DNS_ANSWERED)
            return TARDY_TC_ACT_REDIRECT;
        if (d == TARDY_DNS_LOST)
            return tardy_lose(can_steal);
    }
    if (!w.delayed) {
        if (w.duplicate) /* the copy carries no socket: our program passes it untouched */
            bpf_clone_redirect(skb, skb->ifindex, 0);
        if (w.corrupt_slot) /* after the copy, which stays whole (as in netem) */
            tardy_corrupt(skb, w.corrupt_slot - 1);
        return TARDY_TC_NEXT;
    }
    t = tardy_departure(skb->tstamp > w.rate_start ? skb->tstamp : w.rate_start, w.now, w.delay);
    if (!t) { /* beyond the horizon: fq would drop it anyway */
        __u32 slot = w.last_delaying - 1;
        struct tardy_counters *cnt = w.last_delaying ? bpf_map_lookup_elem(&tardy_counters, &slot) : NULL;

        if (cnt)
            cnt->dropped++;
        return tardy_lose(can_steal);
    }
    /* As a delivery time in CLOCK_MONOTONIC (the kernel's mono_delivery_time), so that
     * the redirect of the clone below keeps it: a plain tstamp write is taken as a
     * receive time and cleared on redirect. 1 is BPF_SKB_TSTAMP_DELIVERY_MONO (5.18),
     * renamed BPF_SKB_CLOCK_MONOTONIC in 6.11. */
    bpf_skb_set_tstamp(skb, t, 1);
    if (w.duplicate) /* the copy keeps the departure time: both are delayed, as in netem */
        bpf_clone_redirect(skb, skb->ifindex, 0);
    if (w.corrupt_slot)
        tardy_corrupt(skb, w.corrupt_slot - 1);
    /* Paced only (--rate): the packet stays its socket's, so TCP small queues and the socket's
     * send buffer hold the sender back as a slow link would. */
    return w.delay ? tardy_hand_to_fq(skb, can_steal) : TARDY_TC_NEXT;
}

/* For TCX links: TCX has no STOLEN verdict (lib/steal.bpf.h, lib/lose.bpf.h). */
SEC("tc")
int tardy_tc_egress(struct __sk_buff *skb)
{
    return tardy_egress(skb, false);
}

/* For clsact filters: delayed packets leave as socket-less clones (lib/steal.bpf.h). The
 * agent attaches this one wherever a delay is injected, on every kernel. */
SEC("tc")
int tardy_tc_egress_cls(struct __sk_buff *skb)
{
    return tardy_egress(skb, true);
}

/* The cgroup of a socket found by a lookup, or NULL. A TC program may not call
 * bpf_sk_cgroup_id(), and the BTF casts (bpf_skc_to_tcp_sock() and the like) cover TCP and
 * IPv6 UDP but not IPv4 UDP; so the socket's address is taken as a number (read back from
 * the stack by bpf_probe_read_kernel(), which the agent's CAP_PERFMON allows) and the fields
 * are read with CO-RE through bpf_probe_read_kernel(), which cannot fault. The caller holds
 * the lookup's reference while this runs. */
static __always_inline struct cgroup *tardy_sock_cgroup(struct bpf_sock *sk)
{
    struct bpf_sock *slot[1] = {sk};
    struct sock *raw = NULL;

    if (bpf_probe_read_kernel(&raw, sizeof(raw), slot) || !raw)
        return NULL;
    return BPF_CORE_READ(raw, sk_cgrp_data.cgroup);
}

/* The rule cgroup of the socket that will receive a packet (its own cgroup or the nearest
 * ancestor with rules), found by a socket lookup in the receiving device's network namespace;
 * 0 for none. TCP and UDP by their sockets; an ICMP echo reply by the request its target
 * sent (lib/echo.bpf.h); any other packet, or one for no socket, is not delayed. A SYN finds its listener, the handshake's last ACK the listener too (the lookup
 * returns full sockets). Cached by cgroup id as at egress. */
static __always_inline __u64 tardy_receiver_rule_cgid(struct __sk_buff *skb, const struct tardy_flow *f,
                                                      const struct tardy_control *c)
{
    struct bpf_sock_tuple t = {};
    struct tardy_cg_match *m, fresh = {};
    struct cgroup *cg;
    struct bpf_sock *sk;
    __u64 cgid, found = 0;
    __u32 size;

    if (f->family == TARDY_AF_INET) {
        t.ipv4.saddr = f->remote_be[0];
        t.ipv4.daddr = f->local_be[0];
        t.ipv4.sport = bpf_htons(f->remote_port);
        t.ipv4.dport = bpf_htons(f->local_port);
        size = sizeof(t.ipv4);
    } else if (f->family == TARDY_AF_INET6) {
        __builtin_memcpy(t.ipv6.saddr, f->remote_be, 16);
        __builtin_memcpy(t.ipv6.daddr, f->local_be, 16);
        t.ipv6.sport = bpf_htons(f->remote_port);
        t.ipv6.dport = bpf_htons(f->local_port);
        size = sizeof(t.ipv6);
    } else {
        return 0;
    }
    if (f->proto == TARDY_PROTO_TCP)
        sk = bpf_sk_lookup_tcp(skb, &t, size, BPF_F_CURRENT_NETNS, 0);
    else if (f->proto == TARDY_PROTO_UDP)
        sk = bpf_sk_lookup_udp(skb, &t, size, BPF_F_CURRENT_NETNS, 0);
    else if (f->proto == TARDY_PROTO_ICMP)
        return tardy_echo_rule_cgid(f, c->generation); /* lib/echo.bpf.h */
    else
        return 0;
    if (!sk)
        return 0;
    cg = tardy_sock_cgroup(sk);
    cgid = cg ? BPF_CORE_READ(cg, kn, id) : 0;
    m = cgid ? bpf_map_lookup_elem(&tardy_cg_cache, &cgid) : NULL;
    if (m && m->generation == c->generation) {
        found = m->rule_cgid;
    } else if (cgid) {
        /* up from the socket's cgroup: the first with rules is the deepest, as at egress */
        for (int level = 0; level < TARDY_MAX_CGROUP_LEVEL && cg; level++) {
            __u64 id = BPF_CORE_READ(cg, kn, id);

            if (bpf_map_lookup_elem(&tardy_rules, &id)) {
                found = id;
                break;
            }
            cg = (struct cgroup *)BPF_CORE_READ(cg, self.parent); /* self is a cgroup's first member */
        }
        fresh.generation = c->generation;
        fresh.rule_cgid = found;
        bpf_map_update_elem(&tardy_cg_cache, &cgid, &fresh, BPF_ANY);
    }
    bpf_sk_release(sk);
    return found;
}

/* On the devices of a target's network namespace where an injection delays what the target
 * receives (--direction ingress|both with --delay): the packets for the sockets of a cgroup
 * with such a rule are stamped with their departure and handed to the namespace's ifb, whose
 * fq holds each until then (TARDY_IFB_IFINDEX); everything else passes. Attached as a clsact
 * ingress filter that is NOT direct-action, with act_mirred as its action: 0 is "no match",
 * the packet goes on; -1 is a match, and mirred redirects it to the ifb's egress (a
 * bpf_redirect() reaches an ifb only from Linux 6.4). The ifb hands the packet back to this
 * device's ingress marked to skip TC, so it is seen once; its departure stamp is a
 * CLOCK_MONOTONIC delivery time, which the redirect keeps. */
#define TARDY_CLS_NO_MATCH 0
#define TARDY_CLS_MATCH (-1) /* the filter's own class: its actions run */

SEC("tc")
int tardy_tc_ingress(struct __sk_buff *skb)
{
    struct tardy_control *c = tardy_armed_control();
    struct tardy_walk w = {};
    __u64 rule_cgid, t;

    if (!c)
        return TARDY_CLS_NO_MATCH;
    tardy_parse(skb, &w.flow, true);
    rule_cgid = tardy_receiver_rule_cgid(skb, &w.flow, c);
    if (!rule_cgid)
        return TARDY_CLS_NO_MATCH;
    w.set = bpf_map_lookup_elem(&tardy_rules, &rule_cgid);
    if (!w.set)
        return TARDY_CLS_NO_MATCH;
    w.now = bpf_ktime_get_ns();
    if (!tardy_lease_valid(c, w.now))
        return TARDY_CLS_NO_MATCH;
    w.len = skb->len;
    w.scope = TARDY_SCOPE_INGRESS | TARDY_SCOPE_TC_INGRESS;
    if (tardy_rule_step_inline(0, &w) == 0 && w.set->n > 1)
        bpf_loop(TARDY_RULES_PER_CGROUP - 1, tardy_rule_step_next, &w, 0);
    if (!w.delay)
        return TARDY_CLS_NO_MATCH;
    t = tardy_departure(w.now, w.now, w.delay);
    if (!t) /* beyond the horizon: never, the agent caps delays far below it */
        return TARDY_CLS_NO_MATCH;
    bpf_skb_set_tstamp(skb, t, 1); /* BPF_SKB_TSTAMP_DELIVERY_MONO */
    return TARDY_CLS_MATCH;
}

/* Attached to the target cgroups with ingress rules (one link per topmost such cgroup), so
 * it runs for the packets their sockets receive and for no one else's. Dropping here is a
 * loss on the wire as the receiver sees it: TCP and UDP discard the packet silently after
 * the IP layer, the sender retransmits. 0 drops, 1 passes. */
SEC("cgroup_skb/ingress")
int tardy_cg_ingress(struct __sk_buff *skb)
{
    struct tardy_walk w; /* zeroed by tardy_walk_rules() once a rule set applies */

    if (!tardy_walk_rules(skb, &w, TARDY_SCOPE_INGRESS))
        return 1;
    return w.lost ? 0 : 1;
}
