/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Why a delayed packet leaves as a clone.
 *
 * A packet that waits in fq still belongs to its socket: TCP small queues (TSQ) allow only
 * about a millisecond of a flow's data below the socket, so a 20 ms wait throttles a TCP
 * stream to a few packets per delay (measured on 6.1: 2 Mbit/s against netem's 460). netem
 * avoids this by orphaning the skb. A BPF program cannot orphan, but a clone carries no
 * socket: send the stamped clone to the same device's egress (our program sees it again,
 * finds no socket, passes it to fq) and consume the original with TC_ACT_STOLEN, which
 * tells the sender "transmitted". TCX has no STOLEN verdict (tcx_action_code() maps it to
 * NEXT), so the agent attaches the program through clsact wherever a delay is injected,
 * also on kernels that have TCX, and the TCX variant (can_steal false) only stamps.
 */
#pragma once

#define TARDY_TC_ACT_STOLEN 4

static __always_inline int tardy_hand_to_fq(struct __sk_buff *skb, bool can_steal)
{
    if (!can_steal)
        return TARDY_TC_NEXT;
    if (bpf_clone_redirect(skb, skb->ifindex, 0) != 0)
        return TARDY_TC_NEXT; /* no clone: the original is delayed just the same */
    return TARDY_TC_ACT_STOLEN;
}
