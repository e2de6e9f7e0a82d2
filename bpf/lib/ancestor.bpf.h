/* The deepest cgroup of the current task (itself or an ancestor) that has an entry in a
 * rules map keyed by cgroup id: the most specific rule wins. 0 when none has. A macro, so
 * each program family passes its own map. */
#pragma once

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
