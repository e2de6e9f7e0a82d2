/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The rule of the current task: the deepest cgroup (itself or an ancestor) that has an entry
 * in a rules map keyed by cgroup id, so the most specific rule wins. Macros, so each program
 * family passes its own maps. */
#pragma once

/* The ancestor walk: up to TARDY_MAX_CGROUP_LEVEL map lookups. 0 when no cgroup has a rule. */
#define TARDY_TASK_RULE_CGID(rules_map)                                      \
    ({                                                                       \
        __u64 found_ = 0;                                                    \
        for (int level_ = 0; level_ < TARDY_MAX_CGROUP_LEVEL; level_++) {    \
            __u64 id_ = bpf_get_current_ancestor_cgroup_id(level_);          \
            if (!id_)                                                        \
                break;                                                       \
            if (bpf_map_lookup_elem(rules_map, &id_))                        \
                found_ = id_;                                                \
        }                                                                    \
        found_;                                                              \
    })

/* A cache of the walk's answer per cgroup id, for hooks that every process on the host runs
 * (stall tracepoints, LSM hooks, socket hooks): one LRU lookup per call instead of a walk.
 * An entry is valid while its generation equals the control map's, which the agent bumps on
 * every rule change; the cgroup a task is in and the ids of its ancestors never change. */
#define TARDY_CG_CACHE(name)                                                 \
    struct {                                                                 \
        __uint(type, BPF_MAP_TYPE_LRU_HASH);                                 \
        __uint(max_entries, TARDY_CGROUP_CACHE);                             \
        __type(key, __u64);                                                  \
        __type(value, struct tardy_cg_match);                                \
    } name SEC(".maps")

#define TARDY_TASK_RULE_CGID_CACHED(cache_map, rules_map, generation_)      \
    ({                                                                       \
        __u64 cgid_ = bpf_get_current_cgroup_id(), rule_;                    \
        struct tardy_cg_match *m_ = bpf_map_lookup_elem(cache_map, &cgid_);  \
        if (m_ && m_->generation == (generation_)) {                          \
            rule_ = m_->rule_cgid;                                           \
        } else {                                                             \
            struct tardy_cg_match fresh_ = {};                               \
            fresh_.generation = (generation_);                              \
            fresh_.rule_cgid = TARDY_TASK_RULE_CGID(rules_map);              \
            bpf_map_update_elem(cache_map, &cgid_, &fresh_, BPF_ANY);        \
            rule_ = fresh_.rule_cgid;                                        \
        }                                                                    \
        rule_;                                                               \
    })
