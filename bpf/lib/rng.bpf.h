/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Random source for loss and jitter. Production uses the kernel's per-CPU prandom;
 * tests set cfg_rng_seed before load to get a reproducible xorshift64* sequence. */
#pragma once

const volatile __u64 cfg_rng_seed = 0;

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} tardy_rng_state SEC(".maps");

static __always_inline __u32 tardy_rand32(void)
{
    __u32 key = 0;
    __u64 *s, x;

    if (!cfg_rng_seed)
        return bpf_get_prandom_u32();
    s = bpf_map_lookup_elem(&tardy_rng_state, &key);
    if (!s)
        return bpf_get_prandom_u32();
    x = *s ? *s : cfg_rng_seed;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return (__u32)((x * 0x2545F4914F6CDD1DULL) >> 32);
}

/* A 32-bit draw scaled to [0, n): a multiply and a shift, where `%` is a division (the
 * slowest instruction on a packet's path); its bias is as small as the modulo's, n / 2^32. */
static __always_inline __u32 tardy_scale32(__u32 x, __u32 n)
{
    return (__u32)(((__u64)x * n) >> 32);
}

/* true with probability ppm / 1e6 */
static __always_inline bool tardy_chance_ppm(__u32 ppm)
{
    if (ppm == 0)
        return false;
    if (ppm >= TARDY_PPM)
        return true;
    return tardy_scale32(tardy_rand32(), TARDY_PPM) < ppm;
}

/* uniform in [0, n) for n up to 2^63 */
static __always_inline __u64 tardy_rand_below(__u64 n)
{
    __u64 r = ((__u64)tardy_rand32() << 32) | tardy_rand32();

    return n ? r % n : 0;
}
