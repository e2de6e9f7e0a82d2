/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Whose is an ICMP echo reply? TC ingress finds the receiver of TCP and UDP by a socket lookup,
 * but there is no lookup for ping sockets (nor for raw ones). The request went out first,
 * though, from the target's own socket: at egress, a cgroup whose rules include an ingress
 * delay records each echo request's peer and identifier with its rule cgroup; at ingress
 * the reply from that peer with that identifier finds it. Stamped with the control map's
 * generation, as the cgroup cache is: a rule change makes the entries stale until the next
 * request refreshes them. */
#pragma once

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, TARDY_ICMP_ECHOES);
    __type(key, struct tardy_echo_key);
    __type(value, struct tardy_cg_match);
} tardy_echoes SEC(".maps");

static __always_inline void tardy_echo_key_of(struct tardy_echo_key *k, const struct tardy_flow *f)
{
    __builtin_memcpy(k->peer_be, f->remote_be, 16);
    k->family_id = f->family << 16 | f->local_port;
}

/* At egress, for a packet of a cgroup whose rule cgroup is rule_cgid. A global function: its
 * stack is its own, not the egress program's. */
__noinline int tardy_learn_echo(const struct tardy_flow *f, __u64 rule_cgid, __u32 generation)
{
    struct tardy_echo_key k = {};
    struct tardy_cg_match v = {};

    if (!f || f->echo != TARDY_ECHO_REQUEST)
        return 0;
    tardy_echo_key_of(&k, f);
    v.generation = generation;
    v.rule_cgid = rule_cgid;
    bpf_map_update_elem(&tardy_echoes, &k, &v, BPF_ANY);
    return 0;
}

/* At TC ingress: the rule cgroup of the target that sent the request this reply answers, 0
 * for none (or a stale entry). */
__noinline __u64 tardy_echo_rule_cgid(const struct tardy_flow *f, __u32 generation)
{
    struct tardy_echo_key k = {};
    struct tardy_cg_match *m;

    if (!f || f->echo != TARDY_ECHO_REPLY)
        return 0;
    tardy_echo_key_of(&k, f);
    m = bpf_map_lookup_elem(&tardy_echoes, &k);
    return m && m->generation == generation ? m->rule_cgid : 0;
}
