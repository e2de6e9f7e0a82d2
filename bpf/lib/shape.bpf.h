/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* netem's shapes for one rule: correlated draws, jitter distributions, Gilbert-Elliott burst
 * loss, and rate pacing. The draws follow sch_netem.c so that the same parameters give the
 * same statistics (docs/faults.md says where they differ); what a rule remembers between
 * packets lives in tardy_rule_state, by slot, shared by the CPUs (a race between two CPUs
 * only blurs a correlation or a pacing slot, as netem's own per-qdisc state would under a
 * multi-queue device). */
#pragma once

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, TARDY_MAX_RULES);
    __type(key, __u32);
    __type(value, struct tardy_rule_state);
} tardy_rule_states SEC(".maps");

/* Filled by the agent at load: the inverse cumulative functions, by TARDY_DIST_*. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, TARDY_DISTS);
    __type(key, __u32);
    __type(value, struct tardy_dist_table);
} tardy_dists SEC(".maps");

static __always_inline struct tardy_rule_state *tardy_state_of(const struct tardy_rule *r)
{
    __u32 slot = r->slot;

    return bpf_map_lookup_elem(&tardy_rule_states, &slot);
}

/* ppm as a fraction of 2^32, as netem keeps its probabilities. */
static __always_inline __u64 tardy_ppm_to_u32_scale(__u32 ppm)
{
    return ((__u64)ppm << 32) / TARDY_PPM;
}

/* netem's get_crandom(): a uniform 32-bit draw, pulled towards the previous one of the same
 * kind by the correlation (0: independent). */
static __always_inline __u32 tardy_crandom(const struct tardy_rule *r, struct tardy_rule_state *st, int kind)
{
    __u32 value = tardy_rand32();
    __u64 rho;
    __u32 answer, *last;

    if (!r->corr_ppm || !st)
        return value;
    last = kind == TARDY_DRAW_CORRUPT ? &st->last_corrupt : &st->last[kind & 3];
    rho = tardy_ppm_to_u32_scale(r->corr_ppm);
    if (rho > 0xffffffffull)
        rho = 0xffffffffull;
    rho += 1;
    answer = (__u32)(((__u64)value * ((1ull << 32) - rho) + (__u64)*last * rho) >> 32);
    *last = answer;
    return answer;
}

/* true with probability ppm / 1e6, correlated as netem's "PCT CORR" */
static __always_inline bool tardy_cchance(const struct tardy_rule *r, struct tardy_rule_state *st, int kind,
                                          __u32 ppm)
{
    if (ppm == 0)
        return false;
    if (ppm >= TARDY_PPM)
        return true;
    if (!r->corr_ppm)
        return tardy_chance_ppm(ppm);
    return tardy_crandom(r, st, kind) < tardy_ppm_to_u32_scale(ppm);
}

/* Does this delayed packet skip the delay (--reorder)? netem's test, in its order: with a gap of
 * N, the N - 1 packets after a reordered one are delayed whatever the draw, and only then is
 * each packet drawn for; netem's counter counts the delayed ones. */
static __always_inline bool tardy_reorders(const struct tardy_rule *r, struct tardy_rule_state *st)
{
    if (r->reorder_gap <= 1)
        return tardy_cchance(r, st, TARDY_DRAW_REORDER, r->reorder_ppm);
    if (!st)
        return false;
    if (st->gap_count < r->reorder_gap - 1 || !tardy_cchance(r, st, TARDY_DRAW_REORDER, r->reorder_ppm)) {
        st->gap_count++;
        return false;
    }
    st->gap_count = 0;
    return true;
}

/* Is this packet lost? Independent (or correlated) loss_ppm, or netem's Gilbert-Elliott
 * model: the state moves first (good -> bad with p, bad -> good with r), and the packet is
 * lost with the loss of the state it found (1-k in good, 1-h in bad), as in sch_netem.c. */
static __always_inline bool tardy_loses(const struct tardy_rule *r, struct tardy_rule_state *st)
{
    bool bad;

    if (!r->ge_p_ppm)
        return tardy_cchance(r, st, TARDY_DRAW_LOSS, r->loss_ppm);
    if (!st)
        return false;
    bad = st->ge_bad;
    if (bad) {
        if (tardy_chance_ppm(r->ge_r_ppm))
            st->ge_bad = 0;
        return tardy_chance_ppm(r->ge_bad_loss_ppm);
    }
    if (tardy_chance_ppm(r->ge_p_ppm))
        st->ge_bad = 1;
    return tardy_chance_ppm(r->ge_good_loss_ppm);
}

/* One rule's delay for this packet: netem's tabledist(). Uniform: delay ± jitter; a table:
 * delay + jitter * table[draw] / SCALE, rounded half away from zero; never below zero (netem
 * sends such a packet at once as well). */
static __always_inline __u64 tardy_shaped_delay(const struct tardy_rule *r, struct tardy_rule_state *st)
{
    __u64 delay = r->delay_ns, j = r->jitter_ns, mag;
    struct tardy_dist_table *tab;
    __u32 rnd, key;
    __s32 t;

    if (!j)
        return delay;
    if (r->dist == TARDY_DIST_UNIFORM && !r->corr_ppm) {
        if (j > delay)
            j = delay;
        return delay - j + tardy_rand_below(2 * j + 1);
    }
    rnd = tardy_crandom(r, st, TARDY_DRAW_JITTER);
    if (r->dist == TARDY_DIST_UNIFORM) {
        if (j > delay)
            j = delay;
        return delay - j + (((__u64)rnd * (2 * j + 1)) >> 32);
    }
    key = r->dist;
    tab = bpf_map_lookup_elem(&tardy_dists, &key);
    if (!tab)
        return delay;
    t = tab->v[rnd & (TARDY_DIST_SIZE - 1)];
    if (t >= 0)
        return delay + (((__u64)t * j + TARDY_DIST_SCALE / 2) / TARDY_DIST_SCALE);
    mag = ((__u64)(-t) * j + TARDY_DIST_SCALE / 2) / TARDY_DIST_SCALE;
    return mag >= delay ? 0 : delay - mag;
}

/* --rate: the packet's slot on the rule's timeline, as a bandwidth manager paces (EDT): it
 * leaves no earlier than the slot before it ended, and its own length moves the line on.
 * Returns the slot's start (>= now), or 0 when it lies beyond TARDY_RATE_HORIZON_NS: the
 * caller drops the packet, which does not move the line (a queue that is full). */
static __always_inline __u64 tardy_rate_slot(const struct tardy_rule *r, struct tardy_rule_state *st, __u64 now,
                                             __u32 len)
{
    __u64 next, start;

    if (!st)
        return now;
    next = st->rate_next_ns;
    start = next > now ? next : now;
    if (start - now > TARDY_RATE_HORIZON_NS)
        return 0;
    st->rate_next_ns = start + (__u64)len * 1000000000ull / r->rate_bytes_per_s;
    return start;
}
