// SPDX-License-Identifier: GPL-2.0
/* Syscall stalls. BPF cannot sleep, so a chosen syscall of the target is held by stopping
 * the process (SIGSTOP, delivered on its way back to user space) and the agent sends
 * SIGCONT at the due time. Every process runs these programs while attached (about 70 ns a
 * syscall), so the agent attaches them only while a stall rule exists. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "tardy/abi.h"
#include "lib/control.bpf.h"
#include "lib/rng.bpf.h"
#include "lib/ancestor.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define TARDY_SIGSTOP 19
/* -ERESTARTSYS .. -ERESTART_RESTARTBLOCK: the call will be restarted after the stop */
#define TARDY_ERESTART_MIN 512
#define TARDY_ERESTART_MAX 516

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, TARDY_MAX_RULES);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, __u64);
    __type(value, struct tardy_stall_rule);
} tardy_stall_rules SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, TARDY_MAX_RULES);
    __type(key, __u32);
    __type(value, struct tardy_stall_counters);
} tardy_stall_counters SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 256 * 1024);
} tardy_stall_events SEC(".maps");

/* Every process tardy stopped and has not resumed yet: pinned, so that the watchdog and
 * `tardy kill` can resume them when the agent is gone. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, TARDY_MAX_STALLED);
    __type(key, __u32);   /* tgid */
    __type(value, __u64); /* due_ns */
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} tardy_stalled SEC(".maps");

/* tardy's own processes (the agent, its watchdog): never stopped, whatever the target. A
 * stopped agent could not resume anyone, renew its lease or answer `tardy list`. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16);
    __type(key, __u32);  /* tgid */
    __type(value, __u8);
} tardy_exempt SEC(".maps");

/* Per task: the syscall just stalled, so that its restart after the stop is not stalled
 * again (a blocking call interrupted by SIGSTOP returns -ERESTART* and re-enters). */
struct tardy_once {
    __s64 nr;         /* -1: none */
    __u32 restarting; /* set at exit when the stalled call will restart */
    __u32 pad;
};

struct {
    __uint(type, BPF_MAP_TYPE_TASK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct tardy_once);
} tardy_once_map SEC(".maps");

static __always_inline struct tardy_stall_rule *tardy_stall_rule_of_task(void)
{
    __u64 found = TARDY_TASK_RULE_CGID(&tardy_stall_rules);

    return found ? bpf_map_lookup_elem(&tardy_stall_rules, &found) : NULL;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(tardy_sys_enter, struct pt_regs *regs, long id)
{
    struct tardy_control *c = tardy_armed_control();
    struct task_struct *task = bpf_get_current_task_btf();
    struct tardy_stall_counters *cnt;
    struct tardy_stall_rule *r;
    struct tardy_stall_event *ev;
    struct tardy_once *once;
    __u64 now, pid_tgid, due;
    __u32 slot, tgid;

    (void)regs;
    if (!c)
        return 0;
    r = tardy_stall_rule_of_task();
    if (!r)
        return 0;
    now = bpf_ktime_get_ns();
    if (!tardy_lease_valid(c, now) || now >= r->expires_ns)
        return 0;
    for (__u32 i = 0; i < TARDY_STALL_MAX; i++) {
        const struct tardy_stall_entry *s = &r->stalls[i];

        if (i >= r->n)
            break;
        if (s->nr != id)
            continue;
        once = bpf_task_storage_get(&tardy_once_map, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
        if (once && once->restarting && once->nr == id) {
            once->restarting = 0; /* the restart of a call already stalled */
            once->nr = -1;
            return 0;
        }
        slot = r->slot;
        cnt = bpf_map_lookup_elem(&tardy_stall_counters, &slot);
        if (cnt)
            cnt->seen++;
        if (!tardy_chance_ppm(s->ppm))
            return 0;
        pid_tgid = bpf_get_current_pid_tgid();
        tgid = pid_tgid >> 32;
        if (bpf_map_lookup_elem(&tardy_exempt, &tgid))
            return 0;
        due = now + s->delay_ns;
        /* Recorded before the stop, so nothing can stop a process that nobody will resume. */
        if (bpf_map_update_elem(&tardy_stalled, &tgid, &due, BPF_ANY))
            return 0;
        ev = bpf_ringbuf_reserve(&tardy_stall_events, sizeof(*ev), 0);
        if (!ev) {
            bpf_map_delete_elem(&tardy_stalled, &tgid);
            return 0;
        }
        ev->tgid = tgid;
        ev->tid = (__u32)pid_tgid;
        ev->due_ns = due;
        bpf_ringbuf_submit(ev, 0);
        if (once) {
            once->nr = id;
            once->restarting = 0;
        }
        bpf_send_signal_thread(TARDY_SIGSTOP);
        if (cnt)
            cnt->stalled++;
        return 0;
    }
    return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(tardy_sys_exit, struct pt_regs *regs, long ret)
{
    struct tardy_once *once;

    (void)regs;
    once = bpf_task_storage_get(&tardy_once_map, bpf_get_current_task_btf(), 0, 0);
    if (!once || once->nr < 0)
        return 0;
    if (ret <= -TARDY_ERESTART_MIN && ret >= -TARDY_ERESTART_MAX)
        once->restarting = 1;
    else
        once->nr = -1;
    return 0;
}
