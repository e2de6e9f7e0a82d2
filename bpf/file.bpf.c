// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* File syscall faults through the BPF LSM: open, read and write permission checks fail with
 * a chosen errno for the target's processes, optionally only under a path prefix (for read
 * and write: files opened under it while the rule was live). LSM programs run for every
 * process while attached, so the agent attaches them only while a file rule exists. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "tardy/abi.h"
#include "lib/control.bpf.h"
#include "lib/rng.bpf.h"
#include "lib/ancestor.bpf.h"
#include "lib/kernel.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, TARDY_MAX_RULES);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, __u64);
    __type(value, struct tardy_file_rule);
} tardy_file_rules SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, TARDY_MAX_RULES);
    __type(key, __u32);
    __type(value, struct tardy_sock_counters);
} tardy_file_counters SEC(".maps");

struct tardy_path_buf {
    char p[TARDY_PATH_MAX];
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct tardy_path_buf);
} tardy_path_scratch SEC(".maps");

/* Files opened under a rule's path prefix, by address: bpf_d_path() is allowed only in
 * sleepable LSM hooks such as file_open, not in file_permission, so the path is judged once
 * at open and remembered until the file is freed. */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 65536);
    __type(key, __u64);  /* struct file * */
    __type(value, __u8);
} tardy_files_under_prefix SEC(".maps");

TARDY_CG_CACHE(tardy_file_cg_cache);

static __always_inline struct tardy_file_rule *tardy_file_rule_of_task(const struct tardy_control *c)
{
    __u64 found = TARDY_TASK_RULE_CGID_CACHED(&tardy_file_cg_cache, &tardy_file_rules, c->generation);

    return found ? bpf_map_lookup_elem(&tardy_file_rules, &found) : NULL;
}

static __always_inline bool tardy_path_matches(const struct tardy_file_rule *r, struct file *file)
{
    __u32 zero = 0;
    struct tardy_path_buf *buf;
    long n;

    if (r->prefix_len == 0)
        return true;
    buf = bpf_map_lookup_elem(&tardy_path_scratch, &zero);
    if (!buf)
        return false;
    n = bpf_d_path((struct path *)&file->f_path, buf->p, sizeof(buf->p));
    if (n <= 0)
        return false;
    for (__u32 i = 0; i < TARDY_PATH_MAX; i++) {
        if (i >= r->prefix_len)
            break;
        if (buf->p[i] != r->prefix[i])
            return false;
    }
    /* "/var/lib/app" covers "/var/lib/app" and "/var/lib/app/x", not "/var/lib/apple" */
    if (r->prefix_len < TARDY_PATH_MAX) {
        char next = buf->p[r->prefix_len & (TARDY_PATH_MAX - 1)];
        return next == '\0' || next == '/' || r->prefix[(r->prefix_len - 1) & (TARDY_PATH_MAX - 1)] == '/';
    }
    return true;
}

/* The fault of this op in the rule, or NULL. */
static __always_inline const struct tardy_sock_fault *tardy_fault_for(const struct tardy_file_rule *r, __u32 op)
{
    for (__u32 i = 0; i < TARDY_FILE_MAX_FAULTS; i++) {
        if (i >= r->n_faults)
            break;
        if (r->faults[i].op == op)
            return &r->faults[i];
    }
    return NULL;
}

static __always_inline struct tardy_file_rule *tardy_live_rule(void)
{
    struct tardy_control *c = tardy_armed_control();
    struct tardy_file_rule *r;
    __u64 now;

    if (!c)
        return NULL;
    r = tardy_file_rule_of_task(c);
    if (!r)
        return NULL;
    now = bpf_ktime_get_ns();
    if (!tardy_lease_valid(c, now) || now >= r->expires_ns)
        return NULL;
    return r;
}

/* An LSM program's return value, in the range a verifier can prove: since 6.x (seen on
 * Debian's 6.12) it refuses a program whose return value may lie outside [-MAX_ERRNO, 0],
 * and an errno read from a map, or the verdict of the LSM before us, is any scalar to it.
 * barrier_var() keeps the compiler from folding the checks away. */
static __always_inline int tardy_lsm_ret(int v)
{
    barrier_var(v);
    if (v > 0)
        return 0;
    if (v < -4095)
        return -4095;
    return v;
}

static __always_inline int tardy_apply(const struct tardy_file_rule *r, const struct tardy_sock_fault *f)
{
    struct tardy_sock_counters *cnt;
    __u32 slot = r->slot;

    cnt = bpf_map_lookup_elem(&tardy_file_counters, &slot);
    if (cnt)
        cnt->seen++;
    if (!tardy_chance_ppm(f->ppm))
        return 0;
    if (cnt)
        cnt->failed++;
    return tardy_lsm_ret(-(int)f->err);
}

SEC("lsm.s/file_open")
int BPF_PROG(tardy_file_open, struct file *file, int ret)
{
    const struct tardy_sock_fault *f;
    struct tardy_file_rule *r;
    __u64 key = (__u64)file;
    __u8 one = 1;

    if (ret)
        return tardy_lsm_ret(ret);
    /* A file the kernel opens for itself, such as overlayfs opening the real file beneath the
     * one the user opened: the user's call was already judged on its own file, so a fault
     * must not apply twice (a 30% open fault failed 44% of opens on overlayfs without this). */
    if (tardy_file_is_internal(file))
        return 0;
    r = tardy_live_rule();
    if (!r || !tardy_path_matches(r, file))
        return 0;
    if (r->prefix_len && (tardy_fault_for(r, TARDY_FOP_READ) || tardy_fault_for(r, TARDY_FOP_WRITE)))
        bpf_map_update_elem(&tardy_files_under_prefix, &key, &one, BPF_ANY);
    f = tardy_fault_for(r, TARDY_FOP_OPEN);
    return f ? tardy_apply(r, f) : 0;
}

SEC("lsm/file_permission")
int BPF_PROG(tardy_file_permission, struct file *file, int mask, int ret)
{
    const struct tardy_sock_fault *f;
    struct tardy_file_rule *r;
    __u64 key = (__u64)file;

    if (ret)
        return tardy_lsm_ret(ret);
    if (tardy_file_is_internal(file))
        return 0;
    r = tardy_live_rule();
    if (!r)
        return 0;
    if (r->prefix_len && !bpf_map_lookup_elem(&tardy_files_under_prefix, &key))
        return 0;
    if (mask & TARDY_MAY_WRITE)
        f = tardy_fault_for(r, TARDY_FOP_WRITE);
    else if (mask & TARDY_MAY_READ)
        f = tardy_fault_for(r, TARDY_FOP_READ);
    else
        return 0;
    return f ? tardy_apply(r, f) : 0;
}

SEC("lsm/file_free_security")
int BPF_PROG(tardy_file_free, struct file *file)
{
    __u64 key = (__u64)file;

    bpf_map_delete_elem(&tardy_files_under_prefix, &key);
    return 0;
}
