/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Earliest departure time. fq holds each packet until skb->tstamp (CLOCK_MONOTONIC).
 * TCP already stamps paced packets; starting from max(tstamp, now) keeps a flow's stamps
 * monotonic for a constant delay (both inputs are monotonic), so no per-flow state is
 * needed. Jitter reorders on purpose, as a real path would. */
#pragma once

/* Returns the departure time, or 0 when it lies beyond the horizon (the caller drops). */
static __always_inline __u64 tardy_departure(__u64 stamped, __u64 now, __u64 delay)
{
    __u64 base = stamped > now ? stamped : now;

    if (delay > TARDY_HORIZON_NS)
        return 0;
    base += delay;
    if (base - now > TARDY_HORIZON_NS)
        return 0;
    return base;
}
