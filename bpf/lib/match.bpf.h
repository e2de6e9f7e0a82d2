/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Finds the rule set of a packet's cgroup or of its nearest ancestor. The answer is cached per
 * cgroup id and invalidated by the control map's generation, so a packet costs one LRU
 * lookup whatever the number of rules, and the ancestor walk runs once per cgroup per
 * rule change. */
#pragma once

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, TARDY_MAX_RULES);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, __u64);
    __type(value, struct tardy_rule_set);
} tardy_rules SEC(".maps");

/* The rules themselves, by counter slot (one per injection): looked up one by one, so each
 * is a pointer the verifier knows the bounds of. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, TARDY_MAX_RULES);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, __u32);
    __type(value, struct tardy_rule);
} tardy_rule_of_slot SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, TARDY_CGROUP_CACHE);
    __type(key, __u64);
    __type(value, struct tardy_cg_match);
} tardy_cg_cache SEC(".maps");

static __always_inline __u64 tardy_walk_ancestors(struct __sk_buff *skb)
{
    __u64 found = 0;

    for (int level = 0; level < TARDY_MAX_CGROUP_LEVEL; level++) {
        __u64 id = bpf_skb_ancestor_cgroup_id(skb, level);

        if (!id)
            break;
        if (bpf_map_lookup_elem(&tardy_rules, &id))
            found = id; /* keep walking: the deepest (most specific) rule wins */
    }
    return found;
}

static __always_inline struct tardy_rule_set *tardy_match_skb(struct __sk_buff *skb,
                                                          const struct tardy_control *c,
                                                          __u64 *rule_cgid)
{
    __u64 cgid = bpf_skb_cgroup_id(skb);
    struct tardy_cg_match *m, fresh = {};

    if (!cgid)
        return NULL; /* no socket: forwarded or kernel-generated traffic */
    m = bpf_map_lookup_elem(&tardy_cg_cache, &cgid);
    if (!m || m->generation != c->generation) {
        fresh.generation = c->generation;
        fresh.rule_cgid = tardy_walk_ancestors(skb);
        bpf_map_update_elem(&tardy_cg_cache, &cgid, &fresh, BPF_ANY);
        m = &fresh;
    }
    if (!m->rule_cgid)
        return NULL;
    *rule_cgid = m->rule_cgid;
    return bpf_map_lookup_elem(&tardy_rules, rule_cgid);
}
