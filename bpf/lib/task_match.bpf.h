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

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, TARDY_CGROUP_CACHE);
    __type(key, __u64);
    __type(value, struct tardy_cg_match);
} tardy_task_cg_cache SEC(".maps");

static __always_inline struct tardy_sock_rule *tardy_match_task(const struct tardy_control *c)
{
    __u64 cgid = bpf_get_current_cgroup_id(), found;
    struct tardy_cg_match *m, fresh = {};

    m = bpf_map_lookup_elem(&tardy_task_cg_cache, &cgid);
    if (!m || m->generation != c->generation) {
        fresh.generation = c->generation;
        fresh.rule_cgid = TARDY_TASK_RULE_CGID(&tardy_sock_rules);
        bpf_map_update_elem(&tardy_task_cg_cache, &cgid, &fresh, BPF_ANY);
        m = &fresh;
    }
    if (!m->rule_cgid)
        return NULL;
    found = m->rule_cgid;
    return bpf_map_lookup_elem(&tardy_sock_rules, &found);
}
