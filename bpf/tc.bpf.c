// SPDX-License-Identifier: GPL-2.0
/* TC programs: egress loss and delay for the packets of target cgroups. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "tardy/abi.h"
#include "lib/control.bpf.h"
#include "lib/rng.bpf.h"
#include "lib/match.bpf.h"
#include "lib/counters.bpf.h"
#include "lib/edt.bpf.h"

char LICENSE[] SEC("license") = "GPL";

SEC("tc")
int tardy_tc_egress(struct __sk_buff *skb)
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
        skb->tstamp = t;
        if (cnt)
            cnt->delayed++;
    }
    return TARDY_TC_NEXT;
drop:
    if (cnt)
        cnt->dropped++;
    return TARDY_TC_DROP;
}
