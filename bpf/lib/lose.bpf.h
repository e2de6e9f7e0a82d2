/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Silent loss at TC egress.
 *
 * On a wire a lost packet leaves no trace at the sender. A TC verdict of TC_ACT_SHOT (and
 * TCX_DROP, the same value) does: sch_handle_egress() turns it into NET_XMIT_DROP, so UDP
 * senders with IP_RECVERR/IPV6_RECVERR (glibc's resolver, ping) get sendto() = -1 ENOBUFS
 * and give up in milliseconds, and TCP sees a local drop instead of a loss on the wire.
 *
 * - clsact: TC_ACT_STOLEN consumes the packet and reports NET_XMIT_SUCCESS.
 * - TCX: tcx_action_code() maps STOLEN to NEXT, so there is no such verdict. A redirect is
 *   reported as NET_XMIT_SUCCESS on egress whatever skb_do_redirect() then does, and a
 *   redirect to ifindex 0 (never a device) frees the packet there. Measured in
 *   tests/integration/loss_test.cpp (FaithfulLab.LossIsSilentToTheSender) on TCX and clsact kernels.
 */
#pragma once

static __always_inline int tardy_lose(bool clsact)
{
    if (clsact)
        return TARDY_TC_LOST_CLS;
    bpf_redirect(0, 0);
    return TARDY_TC_LOST_TCX;
}
