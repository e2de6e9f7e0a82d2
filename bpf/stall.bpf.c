// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Syscall stalls. BPF cannot sleep, so a chosen syscall of the target is held by stopping
 * the process (SIGSTOP, delivered on its way back to user space) and the agent sends
 * SIGCONT at the due time. Every process runs these programs while attached (a cgroup cache
 * lookup per syscall, docs/benchmarks.md), so the agent attaches them only while a stall rule
 * exists. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "lib/kernel.bpf.h"
#include "tardy/abi.h"
#include "lib/control.bpf.h"
#include "lib/rng.bpf.h"
#include "lib/ancestor.bpf.h"
#include "lib/fd_file.bpf.h"
#define TARDY_FILTER_UNROLLED
#include "lib/filter.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

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

/* `make bench` only: find the rule by the ancestor walk on every call, as before the cache,
 * to measure what the cache saves a bystander. The verifier drops the unused branch. */
const volatile __u32 cfg_walk_always = 0;

TARDY_CG_CACHE(tardy_stall_cg_cache);

static __always_inline struct tardy_stall_rule *tardy_stall_rule_of_task(const struct tardy_control *c)
{
    __u64 found;

    if (cfg_walk_always)
        found = TARDY_TASK_RULE_CGID(&tardy_stall_rules);
    else
        found = TARDY_TASK_RULE_CGID_CACHED(&tardy_stall_cg_cache, &tardy_stall_rules, c->generation);
    return found ? bpf_map_lookup_elem(&tardy_stall_rules, &found) : NULL;
}

/* This architecture's numbers of connect(2) and sendto(2), whose address argument names the
 * remote end of a call on a socket not connected (yet); set by the agent before load. */
const volatile long cfg_nr_connect = -1;
const volatile long cfg_nr_sendto = -1;

/* The address a connect() (argument 2) or sendto() (argument 5, may be NULL) names. */
static __always_inline bool tardy_call_addr(struct pt_regs *regs, long id, struct tardy_flow *a)
{
    struct sockaddr_in6 sa = {}; /* sockaddr_in is its prefix: family, port, IPv4 address */
    void *p;

    if (id == cfg_nr_connect)
        p = (void *)PT_REGS_PARM2_CORE_SYSCALL(regs);
    else if (id == cfg_nr_sendto)
        p = (void *)PT_REGS_PARM5_CORE_SYSCALL(regs);
    else
        return false;
    if (!p || bpf_probe_read_user(&sa, sizeof(sa.sin6_family) + sizeof(sa.sin6_port) + 4, p))
        return false;
    a->remote_port = bpf_ntohs(sa.sin6_port);
    if (sa.sin6_family == TARDY_AF_INET) {
        a->family = TARDY_AF_INET;
        a->remote_be[0] = sa.sin6_flowinfo; /* where sockaddr_in has sin_addr */
        return true;
    }
    if (sa.sin6_family == TARDY_AF_INET6 && !bpf_probe_read_user(&sa, sizeof(sa), p)) {
        a->family = TARDY_AF_INET6;
        __builtin_memcpy(a->remote_be, &sa.sin6_addr, 16);
        return true;
    }
    return false;
}

/* The remote end of a call on the socket behind f: the call's own address if it has one,
 * else the socket's peer. */
static __always_inline void tardy_socket_flow(struct file *f, struct pt_regs *regs, long id, struct tardy_flow *a)
{
    struct socket *sock = BPF_CORE_READ(f, private_data);
    struct sock *sk = BPF_CORE_READ(sock, sk);
    __u16 proto;

    if (!sk)
        return;
    proto = BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol);
    a->proto = proto == 6 ? TARDY_PROTO_TCP : proto == 17 ? TARDY_PROTO_UDP
             : (proto == 1 || proto == 58) ? TARDY_PROTO_ICMP : 0;
    if (tardy_call_addr(regs, id, a))
        return;
    a->remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
    if (BPF_CORE_READ(sk, __sk_common.skc_family) == TARDY_AF_INET) {
        a->family = TARDY_AF_INET;
        a->remote_be[0] = BPF_CORE_READ(sk, __sk_common.skc_daddr);
    } else if (BPF_CORE_READ(sk, __sk_common.skc_family) == TARDY_AF_INET6) {
        a->family = TARDY_AF_INET6;
        BPF_CORE_READ_INTO(&a->remote_be, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr32);
    }
}

/* --on and --path: the call's first argument is the fd it acts on (syscalls.hpp). */
static __always_inline bool tardy_scope_matches(const struct tardy_stall_rule *r, const struct tardy_stall_entry *s,
                                                struct task_struct *task, struct pt_regs *regs)
{
    struct file *f;

    if (s->on == TARDY_STALL_ON_ANY && !r->path_ino)
        return true;
    f = tardy_fd_file(task, PT_REGS_PARM1_CORE_SYSCALL(regs));
    if (!f)
        return false;
    if (s->on != TARDY_STALL_ON_ANY && tardy_file_kind(f) != s->on)
        return false;
    return !r->path_ino || tardy_file_under(f, r->path_dev, r->path_ino);
}

/* The filter of a filtered rule (whose stalls are all on sockets, the agent sees to it)
 * against the remote end of the socket call. Inlined, and the filter unrolled: a program
 * with a BPF-to-BPF call made the --path walk match files outside the path on 6.1 and
 * 6.12 (StallScope.OnFilesOnSocketsAndPath in the VM; 6.18 was right). */
static __always_inline bool tardy_stall_filter_matches(const struct tardy_stall_rule *r, struct pt_regs *regs, long id)
{
    struct tardy_flow a = {};
    struct file *f;

    if (!r)
        return false;
    f = tardy_fd_file(bpf_get_current_task_btf(), PT_REGS_PARM1_CORE_SYSCALL(regs));
    if (!f)
        return false;
    tardy_socket_flow(f, regs, id, &a);
    return tardy_filter_matches(&r->filter, &a);
}

/* Stops the calling process: recorded first, so nothing stops a process nobody resumes. */
static __always_inline bool tardy_stop(__u64 due)
{
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    __u32 tgid = pid_tgid >> 32;
    struct tardy_stall_event *ev;

    if (bpf_map_lookup_elem(&tardy_exempt, &tgid))
        return false;
    if (bpf_map_update_elem(&tardy_stalled, &tgid, &due, BPF_ANY))
        return false;
    ev = bpf_ringbuf_reserve(&tardy_stall_events, sizeof(*ev), 0);
    if (!ev) {
        bpf_map_delete_elem(&tardy_stalled, &tgid);
        return false;
    }
    ev->tgid = tgid;
    ev->tid = (__u32)pid_tgid;
    ev->due_ns = due;
    bpf_ringbuf_submit(ev, 0);
    bpf_send_signal_thread(TARDY_SIGSTOP);
    return true;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(tardy_sys_enter, struct pt_regs *regs, long id)
{
    struct tardy_control *c = tardy_armed_control();
    struct task_struct *task = bpf_get_current_task_btf();
    const struct tardy_stall_entry *s;
    struct tardy_stall_counters *cnt;
    struct tardy_stall_rule *r;
    struct tardy_once *once;
    __u32 slot, idx;
    __u64 now, nr;

    if (!c)
        return 0;
    r = tardy_stall_rule_of_task(c);
    if (!r || id < 0 || id >= TARDY_STALL_NR_MAX)
        return 0;
    /* The masks bound the indexes for the verifier; barrier_var() keeps clang from dropping
     * them as redundant after the checks (6.1's verifier then loses the bound on a reload
     * from the stack: "math between map_value pointer and register with unbounded min"). */
    nr = id;
    barrier_var(nr);
    idx = r->entry_of_nr[nr & (TARDY_STALL_NR_MAX - 1)];
    if (idx == 0 || idx > TARDY_STALL_MAX || tardy_compat_syscall(task))
        return 0;
    barrier_var(idx);
    s = &r->stalls[(idx - 1) & (TARDY_STALL_MAX - 1)];
    now = bpf_ktime_get_ns();
    if (!tardy_lease_valid(c, now) || now >= r->expires_ns)
        return 0;
    once = bpf_task_storage_get(&tardy_once_map, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (once && once->restarting && once->nr == id) {
        once->restarting = 0; /* the restart of a call already stalled */
        once->nr = -1;
        return 0;
    }
    if (!tardy_scope_matches(r, s, task, regs))
        return 0;
    if (r->filtered && !tardy_stall_filter_matches(r, regs, id))
        return 0;
    slot = r->slot;
    cnt = bpf_map_lookup_elem(&tardy_stall_counters, &slot);
    if (cnt)
        cnt->seen++;
    if (!tardy_chance_ppm(s->ppm))
        return 0;
    if (once) {
        once->nr = id;
        once->restarting = 0;
    }
    if (tardy_stop(now + s->delay_ns) && cnt)
        cnt->stalled++;
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
