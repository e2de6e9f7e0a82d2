/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Finds the socket rule of the current task's cgroup or its nearest ancestor; cached per
 * cgroup id like match.bpf.h, invalidated by the control map's generation. */
#pragma once

#include "ancestor.bpf.h"

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, TARDY_MAX_RULES);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, __u64);
    __type(value, struct tardy_sock_rule);
} tardy_sock_rules SEC(".maps");

TARDY_CG_CACHE(tardy_task_cg_cache);

static __always_inline struct tardy_sock_rule *tardy_match_task(const struct tardy_control *c)
{
    __u64 found = TARDY_TASK_RULE_CGID_CACHED(&tardy_task_cg_cache, &tardy_sock_rules, c->generation);

    return found ? bpf_map_lookup_elem(&tardy_sock_rules, &found) : NULL;
}
