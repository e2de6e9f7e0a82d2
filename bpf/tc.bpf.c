// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Packet faults of target cgroups, filtered by peer, port, protocol and flow: loss and delay
 * at TC egress for what they send, loss at cgroup_skb ingress for what they receive. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "tardy/abi.h"
#include "lib/control.bpf.h"
#include "lib/rng.bpf.h"
#include "lib/match.bpf.h"
#include "lib/counters.bpf.h"
#include "lib/edt.bpf.h"
#include "lib/steal.bpf.h"
#include "lib/lose.bpf.h"
#include "lib/filter.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* One packet's walk through its cgroup's rule set (tardy_rule_step, by bpf_loop). */
struct tardy_walk {
    struct tardy_rule_set *set;
    struct tardy_flow flow;
    __u32 last_delaying; /* slot + 1 of the last rule that delayed: counts a departure beyond the horizon */
    __u32 pad;
    __u64 now;
    __u64 delay;
    __u32 len;
    __u32 lost;
    __u32 delayed;
    __u32 scope; /* TARDY_SCOPE_EGRESS or TARDY_SCOPE_INGRESS: where the packet is */
};

/* set->slots[i] for i already checked: masked after a barrier, so that the compiler keeps
 * the mask (it knows i < TARDY_RULES_PER_CGROUP) and the verifier sees a bounded index. */
static __always_inline __u32 tardy_slot_at(const struct tardy_rule_set *set, __u64 i)
{
    asm volatile("" : "+r"(i));
    return set->slots[i & (TARDY_RULES_PER_CGROUP - 1)];
}

/* Rule i of the set: a callback, so the verifier checks one rule's path once instead of
 * every combination of TARDY_RULES_PER_CGROUP unrolled rules. Returns 1 to stop. */
static long tardy_rule_step(__u32 i, void *ctx)
{
    struct tardy_walk *w = ctx;
    struct tardy_counters *cnt;
    const struct tardy_rule *r;

    __u32 slot;

    if (i >= TARDY_RULES_PER_CGROUP || i >= w->set->n)
        return 1;
    slot = tardy_slot_at(w->set, i);
    r = bpf_map_lookup_elem(&tardy_rule_of_slot, &slot);
    if (!r || w->now >= r->expires_ns)
        return 0;
    if (!((r->scope ? r->scope : TARDY_SCOPE_EGRESS) & w->scope))
        return 0;
    if ((r->scope & TARDY_SCOPE_SETUP) && !w->flow.syn)
        return 0;
    if (r->filtered && !tardy_filter_matches(&r->filter, &w->flow))
        return 0;
    if (!tardy_flow_chosen(r, &w->flow))
        return 0;
    cnt = tardy_counters_of(r);
    if (cnt) {
        cnt->matched++;
        cnt->bytes += w->len;
    }
    if (tardy_chance_ppm(r->loss_ppm)) {
        if (cnt)
            cnt->dropped++;
        w->lost = 1;
        return 1;
    }
    if (r->delay_ns && w->scope == TARDY_SCOPE_EGRESS) { /* no delay at ingress (the agent refuses it) */
        w->delay += tardy_jittered_delay(r);
        w->delayed = 1;
        w->last_delaying = r->slot + 1;
        if (cnt)
            cnt->delayed++;
    }
    return 0;
}

/* Rules 1.. of the set, after rule 0 was taken inline. */
static long tardy_rule_step_next(__u32 i, void *ctx)
{
    return tardy_rule_step(i + 1, ctx);
}

/* A packet goes through every live rule of its cgroup's set whose scope (direction, setup)
 * and filter (and flow draw) it matches, in order, as through stages in series: each counts
 * it, a loss in any loses it, and the delays of the rules it passes add up to one departure
 * time. The packet is parsed only when some rule filters; a set of unfiltered rules costs no
 * header read. Returns false when no rule set applies. */
static __always_inline bool tardy_walk_rules(struct __sk_buff *skb, struct tardy_walk *w, __u32 scope)
{
    struct tardy_control *c = tardy_armed_control();
    __u64 rule_cgid = 0;

    if (!c)
        return false;
    w->set = tardy_match_skb(skb, c, &rule_cgid);
    if (!w->set)
        return false;
    w->now = bpf_ktime_get_ns();
    if (!tardy_lease_valid(c, w->now))
        return false;
    w->len = skb->len;
    w->scope = scope;
    if (w->set->parse)
        tardy_parse(skb, &w->flow, scope == TARDY_SCOPE_INGRESS);
    /* Most cgroups have one rule: it costs a call, not a loop (bpf_loop's setup measured
     * 100 ns a packet); the others go through bpf_loop. */
    if (tardy_rule_step(0, w) == 0 && w->set->n > 1)
        bpf_loop(TARDY_RULES_PER_CGROUP - 1, tardy_rule_step_next, w, 0);
    return true;
}

static __always_inline int tardy_egress(struct __sk_buff *skb, bool can_steal)
{
    struct tardy_walk w = {};
    __u64 t;

    if (!tardy_walk_rules(skb, &w, TARDY_SCOPE_EGRESS))
        return TARDY_TC_NEXT;
    if (w.lost)
        return tardy_lose(can_steal);
    if (!w.delayed)
        return TARDY_TC_NEXT;
    t = tardy_departure(skb->tstamp, w.now, w.delay);
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
    return tardy_hand_to_fq(skb, can_steal);
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

/* Attached to the target cgroups with ingress rules (one link per topmost such cgroup), so
 * it runs for the packets their sockets receive and for no one else's. Dropping here is a
 * loss on the wire as the receiver sees it: TCP and UDP discard the packet silently after
 * the IP layer, the sender retransmits. 0 drops, 1 passes. */
SEC("cgroup_skb/ingress")
int tardy_cg_ingress(struct __sk_buff *skb)
{
    struct tardy_walk w = {};

    if (!tardy_walk_rules(skb, &w, TARDY_SCOPE_INGRESS))
        return 1;
    return w.lost ? 0 : 1;
}
