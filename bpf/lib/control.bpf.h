/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The kill switch and lease: read first by every program. */
#pragma once

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct tardy_control);
    /* mmap()ed by the agent (the generation counter, user/loader/generation.hpp) and by
     * `tardy kill` (disarm): defined here so that every object that shares the pin agrees */
    __uint(map_flags, BPF_F_MMAPABLE);
    __uint(pinning, LIBBPF_PIN_BY_NAME); /* under the agent's bpffs dir: `tardy kill` writes it */
} tardy_control SEC(".maps");

/* NULL when disarmed: the caller must then pass the packet untouched. */
static __always_inline struct tardy_control *tardy_armed_control(void)
{
    __u32 key = 0;
    struct tardy_control *c = bpf_map_lookup_elem(&tardy_control, &key);

    if (!c || !c->armed)
        return NULL;
    return c;
}

/* The lease is checked only once a packet matched, to keep bpf_ktime_get_ns() off the
 * path of everybody else's traffic. */
static __always_inline bool tardy_lease_valid(const struct tardy_control *c, __u64 now)
{
    return c->lease_deadline_ns == 0 || now < c->lease_deadline_ns;
}
