/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Finds the rule set of a packet's cgroup or of its nearest ancestor. The answer is cached per
 * cgroup id (a per-CPU first level, then an LRU hash) and invalidated by the control map's
 * generation, so a packet costs an array access whatever the number of rules, and the
 * ancestor walk runs once per cgroup per rule change. */
#pragma once

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, TARDY_MAX_RULES);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, __u64);
    __type(value, struct tardy_rule_set);
} tardy_rules SEC(".maps");

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

/* The first level of the cache: per CPU and direct-mapped by the cgroup id's low bits, so a
 * hit is an array access the verifier inlines, where the LRU hash behind it costs a hash
 * lookup (about half a floor in `make bench`, for every packet on a device tardy is attached
 * to, bystanders' included). Per CPU, each entry is written only by the programs of its CPU,
 * which do not interleave there (TC egress runs with bottom halves off, the ingress hooks in
 * them); `check` binds the three fields together anyway, so an entry read half old and half
 * new (a preemptible kernel) is a miss, not a wrong answer. A collision costs a miss: the LRU
 * lookup of before. */
struct tardy_cg_l1 {
    __u64 cgid;
    __u64 rule_cgid;
    __u64 check; /* cgid ^ rule_cgid ^ tag of the generation it was computed in */
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, TARDY_CGROUP_L1);
    __type(key, __u32);
    __type(value, struct tardy_cg_l1);
} tardy_cg_l1 SEC(".maps");

static __always_inline struct tardy_rule_set *tardy_match_skb(struct __sk_buff *skb,
                                                          const struct tardy_control *c,
                                                          __u64 *rule_cgid)
{
    __u64 cgid = bpf_skb_cgroup_id(skb);
    __u32 generation = c->generation, slot;
    __u64 tag = (__u64)generation * 0x9e3779b97f4a7c15ULL, rule;
    struct tardy_cg_match *m, fresh = {};
    struct tardy_cg_l1 *l1;

    if (!cgid)
        return NULL; /* no socket: forwarded or kernel-generated traffic */
    slot = cgid & (TARDY_CGROUP_L1 - 1);
    l1 = bpf_map_lookup_elem(&tardy_cg_l1, &slot);
    if (l1 && l1->cgid == cgid && (l1->check ^ l1->rule_cgid ^ cgid) == tag) {
        rule = l1->rule_cgid;
    } else {
        m = bpf_map_lookup_elem(&tardy_cg_cache, &cgid);
        if (!m || m->generation != generation) {
            fresh.generation = generation;
            fresh.rule_cgid = tardy_walk_ancestors(skb);
            bpf_map_update_elem(&tardy_cg_cache, &cgid, &fresh, BPF_ANY);
            m = &fresh;
        }
        rule = m->rule_cgid;
        if (l1) {
            l1->cgid = cgid;
            l1->rule_cgid = rule;
            l1->check = cgid ^ rule ^ tag;
        }
    }
    if (!rule)
        return NULL;
    *rule_cgid = rule;
    return bpf_map_lookup_elem(&tardy_rules, rule_cgid);
}
