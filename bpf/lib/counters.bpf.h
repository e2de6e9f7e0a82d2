/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#pragma once

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, TARDY_MAX_RULES);
    __type(key, __u32);
    __type(value, struct tardy_counters);
} tardy_counters SEC(".maps");

static __always_inline struct tardy_counters *tardy_counters_of(const struct tardy_rule *r)
{
    __u32 slot = r->slot;

    return bpf_map_lookup_elem(&tardy_counters, &slot);
}
