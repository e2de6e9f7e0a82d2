/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The one definition of every map key, value, enum and limit shared by the BPF programs
 * (bpf/) and user space (user/). It defines no integer types itself: each side includes
 * its own __u32/__u64 first (vmlinux.h in BPF, <linux/types.h> in C++).
 *
 * Units and byte order are in the field names; every struct is padded explicitly so both
 * compilers agree on the layout (user space checks sizes and offsets with static_assert).
 */
#ifndef TARDY_ABI_H
#define TARDY_ABI_H

/* Limits. */
#define TARDY_MAX_RULES 16384        /* active injections, and target cgroups of each kind */
#define TARDY_CGROUP_CACHE 65536     /* cgroup id -> matching rule, LRU */
#define TARDY_CGROUP_L1 1024         /* per CPU, direct-mapped, in front of it; a power of two */
#define TARDY_MAX_CGROUP_LEVEL 32    /* ancestors walked on a cache miss */
#define TARDY_ICMP_ECHOES 4096       /* echo requests of cgroups with ingress delay, LRU (bpf/lib/echo.bpf.h) */
#define TARDY_PPM 1000000u           /* loss_ppm of 100% */
#define TARDY_MAX_DELAY_NS 5000000000ull   /* delay + jitter accepted by the CLI (5 s) */
#define TARDY_HORIZON_NS 8000000000ull     /* a departure further out is dropped (fq's is 10 s) */

/* Verdicts. TCX_NEXT (-1) lets later TC programs run; it is also TC_ACT_UNSPEC for clsact. */
#define TARDY_TC_NEXT (-1)
/* A lost packet must vanish the way it does on a wire: the sender's call succeeds and
 * nothing reaches its error queue. TC_ACT_SHOT/TCX_DROP do not: the qdisc layer returns
 * NET_XMIT_DROP and a socket with IP_RECVERR gets ENOBUFS at once (bpf/lib/lose.bpf.h). */
#define TARDY_TC_LOST_CLS 4 /* TC_ACT_STOLEN: consumed, the sender is told "transmitted" */
#define TARDY_TC_LOST_TCX 7 /* TCX_REDIRECT to no device: freed, the sender is told "transmitted" */

/* Pinned control map: one entry at key 0. Every program reads it before anything else. */
struct tardy_control {
    __u32 armed;             /* 0: every program passes everything untouched (kill switch) */
    __u32 generation;        /* bumped by the agent on any rule change: invalidates the cache */
    __u64 lease_deadline_ns; /* CLOCK_MONOTONIC; past it the agent is presumed hung: pass */
};

/* ---- Filters: which traffic of the target an injection's faults apply to ---- */

#define TARDY_FILTER_MAX_PEERS 8 /* --peer and --except-peer prefixes together; a power of two */

/* A peer: an IPv4 or IPv6 prefix, addresses in network byte order. */
struct tardy_peer {
    __u32 family;     /* AF_INET (2) or AF_INET6 (10) */
    __u32 prefix_len; /* 0..32 or 0..128 */
    __u32 addr_be[4]; /* IPv4 in addr_be[0] */
};

/* Protocols of --proto, as bits of tardy_filter.protos. */
#define TARDY_PROTO_TCP 1u
#define TARDY_PROTO_UDP 2u
#define TARDY_PROTO_ICMP 4u /* ICMP and ICMPv6 */

/* One filter per injection, for its packet and socket faults alike. Exclusions win over
 * inclusions. The remote end is the destination of an egress packet or of a call. */
struct tardy_filter {
    __u32 n_peers;        /* peers[0, n_peers): inclusions; 0: any peer */
    __u32 n_except;       /* peers[n_peers, n_peers + n_except): exclusions */
    __u16 port_lo;        /* remote port, host byte order; 0 and 0: any port */
    __u16 port_hi;
    __u16 except_port_lo; /* 0 and 0: no exclusion */
    __u16 except_port_hi;
    __u32 protos;         /* TARDY_PROTO_* bits; 0: any protocol */
    __u32 pad;
    struct tardy_peer peers[TARDY_FILTER_MAX_PEERS];
};

/* ---- Packet faults (bpf/tc.bpf.c): TC egress ---- */

#define TARDY_RULES_PER_CGROUP 8 /* injections with packet faults on one cgroup; a power of two */
#define TARDY_DNS_NAME_MAX 128    /* --dns-name in wire form; a power of two */

/* One injection's packet faults. */
struct tardy_rule {
    __u32 slot;       /* index of this rule's counters */
    __u32 loss_ppm;   /* 0..TARDY_PPM */
    __u64 delay_ns;
    __u64 jitter_ns;  /* uniform in [-jitter_ns, +jitter_ns] around delay_ns */
    __u64 expires_ns; /* CLOCK_MONOTONIC; the rule is ignored from then on */
    __u32 flows_ppm;  /* share of flows the rule applies to (a sticky draw per 5-tuple);
                         0 or TARDY_PPM: every flow */
    __u32 flow_seed;  /* the draw's seed, one per injection */
    __u32 filtered;   /* 0: the filter is empty (every packet matches, nothing parsed) */
    __u32 scope;      /* TARDY_SCOPE_* bits; 0 is TARDY_SCOPE_EGRESS */
    /* netem's shapes (docs/faults.md): each draw below is netem's, correlated with the
     * rule's previous draw of the same kind by corr_ppm (netem's "correlation"). */
    __u32 dist;             /* TARDY_DIST_*: the shape of the jitter around delay_ns */
    __u32 corr_ppm;         /* 0: independent draws */
    __u32 ge_p_ppm;         /* Gilbert-Elliott loss: good -> bad per packet; 0: loss_ppm, independent */
    __u32 ge_r_ppm;         /* bad -> good per packet (1 / mean burst length) */
    __u32 ge_bad_loss_ppm;  /* loss in the bad state (netem's 1-h) */
    __u32 ge_good_loss_ppm; /* loss in the good state (netem's 1-k) */
    __u32 duplicate_ppm;    /* share of packets sent twice */
    __u32 reorder_ppm;      /* share of packets that skip the delay (leave before those sent earlier) */
    __u64 rate_bytes_per_s; /* 0: no rate; else the target's packets are paced to it */
    /* --dns: the target's DNS queries (UDP to port 53) answered at once with an error, or lost */
    __u32 dns_rcode;    /* 0: no DNS fault; TARDY_DNS_TIMEOUT: the query is lost; else the answer's RCODE */
    __u32 dns_ppm;      /* share of matching queries */
    __u32 dns_name_len; /* 0: any name; else dns_name[0, len) is the suffix a query's name must end in */
    __u32 reset_ppm;    /* --reset: share of the target's TCP connections reset (a sticky draw per connection) */
    __u8 dns_name[TARDY_DNS_NAME_MAX]; /* wire form (length-prefixed labels, the root's 0 last), lower case */
    struct tardy_filter filter;
    __u32 corrupt_ppm; /* --corrupt: share of packets whose checksum the receiver rejects (lib/corrupt.bpf.h) */
    __u32 reorder_gap; /* netem's gap: after a reordered packet, the next gap - 1 are delayed; 0 or 1: none */
};

#define TARDY_DNS_TIMEOUT 256 /* tardy_rule.dns_rcode: no answer at all */

/* Shapes of the jitter (tardy_rule.dist): netem's distribution tables. */
#define TARDY_DIST_UNIFORM 0      /* uniform in delay ± jitter */
#define TARDY_DIST_NORMAL 1       /* jitter is the standard deviation */
#define TARDY_DIST_PARETO 2
#define TARDY_DIST_PARETONORMAL 3
#define TARDY_DISTS 4
#define TARDY_DIST_SIZE 4096      /* entries per table, a power of two */
#define TARDY_DIST_SCALE 8192     /* a table entry of TARDY_DIST_SCALE is one jitter (netem's NETEM_DIST_SCALE) */

/* Value of the distribution map, indexed by TARDY_DIST_*: the inverse of the distribution's
 * cumulative function at TARDY_DIST_SIZE evenly spaced points, in units of jitter / SCALE. */
struct tardy_dist_table {
    __s16 v[TARDY_DIST_SIZE];
};

/* What a rule remembers between packets, by slot (shared by the CPUs: races only blur it). */
struct tardy_rule_state {
    __u32 last[4];      /* the previous draw of each correlated kind (TARDY_DRAW_*) */
    __u32 ge_bad;       /* Gilbert-Elliott: in the bad state */
    __u32 last_corrupt; /* the previous draw of TARDY_DRAW_CORRUPT */
    __u64 rate_next_ns; /* --rate: the earliest departure of the next packet */
    __u32 gap_count;    /* --reorder-gap: packets delayed since the last reordered one (netem's counter) */
    __u32 pad;
};

#define TARDY_DRAW_JITTER 0
#define TARDY_DRAW_LOSS 1
#define TARDY_DRAW_DUPLICATE 2
#define TARDY_DRAW_REORDER 3
#define TARDY_DRAW_CORRUPT 4 /* remembered in last_corrupt */
#define TARDY_RATE_HORIZON_NS 1000000000ull /* --rate: a packet that would wait longer is dropped */

/* Where a rule applies (tardy_rule.scope). */
#define TARDY_SCOPE_EGRESS 1u  /* packets the target sends (TC egress) */
#define TARDY_SCOPE_INGRESS 2u /* packets for the target's sockets (cgroup_skb ingress): loss only */
#define TARDY_SCOPE_SETUP 4u   /* TCP connection setup only: packets with SYN set (SYN, SYN-ACK) */
/* Never in a rule: the stage of a walk at TC ingress, where an ingress rule's delay is applied
 * (its loss and counts stay with the cgroup hook, which every such packet meets afterwards). */
#define TARDY_SCOPE_TC_INGRESS 8u

/* Ingress delay: TC ingress redirects a delayed packet, stamped with its departure, to the
 * egress of an ifb device, whose fq holds it until then and which hands it back to the
 * receiving device's ingress. The agent creates one ifb in each network namespace that needs
 * it, always under this index (an ifindex is unique per namespace only, and a TC program
 * cannot tell namespaces apart), so bpf_redirect() finds the ifb of the packet's own one. */
#define TARDY_IFB_IFINDEX 0x7a4d1 /* 500945: far above the indexes the kernel hands out */
#define TARDY_IFB_NAME "tardy-ifb"

/* Value of the rules map, keyed by the target's cgroup id (__u64): the packet faults of
 * every injection on that cgroup, as the slots of their rules (the rules map by slot holds
 * each struct tardy_rule). A packet goes through each live rule whose filter it matches,
 * in order, as through stages in series: a loss in any of them loses it, and the delays of
 * those it passes add up (docs/faults.md). */
struct tardy_rule_set {
    __u32 n;
    __u32 slots[TARDY_RULES_PER_CGROUP];
    __u32 parse; /* some rule filters or draws flows: read the packet's headers */
    /* rules[i] is the rule of slots[i], copied in: one lookup gives a packet every rule it can
     * meet, and a change to any of them replaces the set whole (a packet sees the old set or
     * the new one, never half a rule). */
    struct tardy_rule rules[TARDY_RULES_PER_CGROUP];
};

/* Per-CPU counters, indexed by tardy_rule.slot. */
struct tardy_counters {
    __u64 matched; /* packets of the target seen while the rule was live */
    __u64 delayed; /* packets given a later departure time */
    __u64 dropped; /* packets dropped by loss or by the horizon */
    __u64 bytes;   /* bytes of matched packets */
    __u64 duplicated; /* packets sent twice */
    __u64 reordered;  /* packets that skipped the delay (--reorder) */
    __u64 paced;      /* packets given a later departure by --rate */
    __u64 dns;        /* DNS queries answered with an error or lost by --dns */
    __u64 resets;     /* TCP connections reset by --reset (one per segment turned into resets) */
    __u64 corrupted;  /* packets given a checksum the receiver rejects (--corrupt) */
};

/* Value of the cgroup cache, keyed by a packet's cgroup id. */
struct tardy_cg_match {
    __u32 generation; /* tardy_control.generation when computed */
    __u32 pad;
    __u64 rule_cgid;  /* the cgroup id whose rule applies (itself or an ancestor), 0: none */
};

/* Key of the echo map (bpf/lib/echo.bpf.h): an ICMP echo request a target sent, by its peer
 * and identifier; the value is a struct tardy_cg_match. */
struct tardy_echo_key {
    __u32 peer_be[4]; /* IPv4 in [0] */
    __u32 family_id;  /* address family << 16 | echo identifier */
};

/* ---- Socket syscall faults (bpf/sock.bpf.c): cgroup sock_addr and sock_create hooks ---- */

#define TARDY_SOCK_MAX_FAULTS 8

/* The syscalls a socket fault can fail. */
enum tardy_sock_op {
    TARDY_OP_CONNECT = 1, /* connect(2), IPv4 and IPv6 */
    TARDY_OP_SENDMSG = 2, /* sendto/sendmsg with a destination address (unconnected UDP) */
    TARDY_OP_BIND = 3,    /* bind(2) */
    TARDY_OP_SOCKET = 4,  /* socket(2) for AF_INET/AF_INET6 */
};

struct tardy_sock_fault {
    __u32 op;       /* enum tardy_sock_op */
    __u32 err;      /* positive errno, returned as -err */
    __u32 ppm;      /* share of matching calls that fail, 0..TARDY_PPM */
    __u32 pad;
};

/* Value of the socket rules map, keyed by the target's cgroup id (__u64). */
struct tardy_sock_rule {
    __u64 expires_ns;
    __u32 slot;      /* index of this rule's counters */
    __u32 n_faults;
    struct tardy_sock_fault faults[TARDY_SOCK_MAX_FAULTS];
    struct tardy_filter filter; /* the injection's; its peers and ports need an addressed call */
};

struct tardy_sock_counters {
    __u64 seen;   /* calls of a faulted syscall that matched the filters */
    __u64 failed; /* of those, failed on purpose */
    __u64 connects_refused; /* of those, connect() calls failed at once (never reached TCP) */
};

/* ---- Syscall stalls (bpf/stall.bpf.c): raw tracepoints at syscall entry and exit ---- */

#define TARDY_STALL_MAX 8       /* --stall options per rule */
#define TARDY_STALL_NR_MAX 512  /* syscall numbers a rule can name: 0..511 (x86_64 has ~470) */
#define TARDY_MAX_STALLED 4096 /* processes stopped at once */
#define TARDY_STALL_PATH_DEPTH 32 /* directories walked up from a file to find --path */

/* Which fds a stall of an fd-based call (read, write, fsync, ...) applies to. */
enum tardy_stall_on {
    TARDY_STALL_ON_ANY = 0,
    TARDY_STALL_ON_FILES = 1,   /* regular files, directories, block devices */
    TARDY_STALL_ON_SOCKETS = 2, /* sockets of any family */
};

struct tardy_stall_entry {
    __u32 ppm;      /* share of calls stalled */
    __u32 on;       /* enum tardy_stall_on; with path_ino also the fd's file must be under the path */
    __u64 delay_ns;
};

/* Value of the stall rules map, keyed by the target's cgroup id (__u64). A syscall number
 * nr (< TARDY_STALL_NR_MAX) is stalled by stalls[entry_of_nr[nr] - 1]; 0 means not at all,
 * so a call costs one index whatever the number of syscalls a --stall name covers. */
struct tardy_stall_rule {
    __u64 expires_ns;
    __u32 slot;
    __u32 n;
    __u64 path_ino; /* 0: any path; else the fd's file must be this inode or below it */
    __u32 path_dev; /* the kernel's dev_t of that inode's superblock: major << 20 | minor */
    __u32 filtered; /* the filter is not empty: only calls on sockets whose remote end matches */
    struct tardy_stall_entry stalls[TARDY_STALL_MAX];
    __u8 entry_of_nr[TARDY_STALL_NR_MAX];
    /* The injection's: the remote end is connect()'s or sendto()'s address when the call has
     * one, else the socket's peer (a connected socket's; none for a listener) */
    struct tardy_filter filter;
};

/* Ring buffer event: stop sent to tgid, resume it at due_ns (CLOCK_MONOTONIC). */
struct tardy_stall_event {
    __u32 tgid;
    __u32 tid;
    __u64 due_ns;
};

struct tardy_stall_counters {
    __u64 seen;    /* calls of a stalled syscall by the target */
    __u64 stalled; /* of those, stalled */
};

/* ---- File faults (bpf/file.bpf.c): BPF LSM file_open and file_permission ---- */

#define TARDY_FILE_MAX_FAULTS 4
#define TARDY_PATH_MAX 256 /* a power of two: the programs mask indexes with it */

enum tardy_file_op {
    TARDY_FOP_OPEN = 1,  /* open/openat: the file_open check */
    TARDY_FOP_READ = 2,  /* read permission checks (read, readv, pread, ...) */
    TARDY_FOP_WRITE = 3, /* write permission checks (write, writev, pwrite, ...) */
};

/* Value of the file rules map, keyed by the target's cgroup id (__u64). Faults reuse
 * struct tardy_sock_fault with op from enum tardy_file_op; counters struct
 * tardy_sock_counters. */
struct tardy_file_rule {
    __u64 expires_ns;
    __u32 slot;
    __u32 n_faults;
    struct tardy_sock_fault faults[TARDY_FILE_MAX_FAULTS];
    __u32 prefix_len; /* 0: any path */
    __u32 pad;
    char prefix[TARDY_PATH_MAX];
};

/* ---- Cohort metrics (bpf/metrics.bpf.c): what a cohort's TCP connections and packets did ----
 * Programs linked to every measured cohort cgroup; each link has its own record (struct
 * tardy_cohort_record, per-CPU cgroup storage), which counts the sockets of that cgroup and of
 * every cgroup below it. */

/* Log-linear histograms of microseconds: values below 2^SUB_BITS have a bucket each; above,
 * every power of two is cut into 2^SUB_BITS buckets, so a bucket is at most 1/64 (1.6%) of its
 * lower bound wide and its middle is within 0.8% of any value in it (0.4 ms at 50 ms). */
#define TARDY_HIST_SUB_BITS 6
#define TARDY_HIST_SUB (1u << TARDY_HIST_SUB_BITS)
#define TARDY_HIST_MAX_LOG2 31 /* values are capped at 2^32 - 1 us (71 minutes) */
#define TARDY_HIST_BUCKETS ((TARDY_HIST_MAX_LOG2 - TARDY_HIST_SUB_BITS + 2) * TARDY_HIST_SUB)

enum tardy_hist_kind {
    TARDY_HIST_CONNECT = 0, /* active open: connect() to established, us */
    TARDY_HIST_RTT = 1,     /* every RTT sample TCP takes (per ACK), us */
};

/* Per linked cohort cgroup, per CPU (user space sums the CPUs). */
struct tardy_cohort_counts {
    __u64 connects;        /* TCP active opens: a SYN about to leave (BPF_SOCK_OPS_TCP_CONNECT_CB) */
    __u64 established;     /* of those, established (ACTIVE_ESTABLISHED_CB) */
    __u64 accepted;        /* passive opens established (PASSIVE_ESTABLISHED_CB) */
    __u64 failed_refused;  /* active opens closed from SYN-SENT with ECONNREFUSED (a RST) */
    __u64 failed_timeout;  /* ... with ETIMEDOUT (SYN retries ran out) or another error */
    __u64 failed_abandoned;/* ... with no error: the client closed it first (its own timeout) */
    __u64 retransmits;     /* segments retransmitted (RETRANS_CB), SYNs included */
    __u64 rtos;            /* retransmission timer expiries (RTO_CB) */
    __u64 resets_sent;     /* TCP segments with RST leaving the cohort's sockets */
    __u64 resets_received; /* TCP segments with RST delivered to the cohort's sockets */
    __u64 packets_out;     /* IP packets leaving the cohort's sockets (GSO segments counted) */
    __u64 bytes_out;
    __u64 packets_in;      /* IP packets delivered to the cohort's sockets */
    __u64 bytes_in;
};

#define TARDY_HIST_KINDS 2

/* The value of the cgroup storage map tardy_cohort (key: the linked cgroup's id, __u64, so the
 * sock_ops and cgroup_skb links of one cgroup share it): found by the program through its
 * link, with no lookup. Per-CPU values of a cgroup storage are at most 32 KiB
 * (PCPU_MIN_UNIT_SIZE); this is 27,760 bytes. */
struct tardy_cohort_record {
    struct tardy_cohort_counts counts;
    __u64 hist[TARDY_HIST_KINDS][TARDY_HIST_BUCKETS]; /* [enum tardy_hist_kind][bucket] */
};

#endif /* TARDY_ABI_H */
