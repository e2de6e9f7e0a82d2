// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* TC programs: egress loss and delay for the packets of target cgroups. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "tardy/abi.h"
#include "lib/control.bpf.h"
#include "lib/rng.bpf.h"
#include "lib/match.bpf.h"
#include "lib/counters.bpf.h"
#include "lib/edt.bpf.h"
#include "lib/steal.bpf.h"
#include "lib/lose.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline int tardy_egress(struct __sk_buff *skb, bool can_steal)
{
    struct tardy_control *c = tardy_armed_control();
    struct tardy_counters *cnt;
    struct tardy_rule *r;
    __u64 rule_cgid = 0, now, t;

    if (!c)
        return TARDY_TC_NEXT;
    r = tardy_match_skb(skb, c, &rule_cgid);
    if (!r)
        return TARDY_TC_NEXT;
    now = bpf_ktime_get_ns();
    if (!tardy_lease_valid(c, now) || now >= r->expires_ns)
        return TARDY_TC_NEXT;

    cnt = tardy_counters_of(r);
    if (cnt) {
        cnt->matched++;
        cnt->bytes += skb->len;
    }
    if (tardy_chance_ppm(r->loss_ppm))
        goto drop;
    if (r->delay_ns) {
        t = tardy_departure(skb->tstamp, now, r);
        if (!t)
            goto drop;
        /* As a delivery time in CLOCK_MONOTONIC (the kernel's mono_delivery_time), so that
         * the redirect of the clone below keeps it: a plain tstamp write is taken as a
         * receive time and cleared on redirect. 1 is BPF_SKB_TSTAMP_DELIVERY_MONO (5.18),
         * renamed BPF_SKB_CLOCK_MONOTONIC in 6.11. */
        bpf_skb_set_tstamp(skb, t, 1);
        if (cnt)
            cnt->delayed++;
        return tardy_hand_to_fq(skb, can_steal);
    }
    return TARDY_TC_NEXT;
drop:
    if (cnt)
        cnt->dropped++;
    return tardy_lose(can_steal);
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
