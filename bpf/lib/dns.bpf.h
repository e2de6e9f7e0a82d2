/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* --dns: a DNS query the target sends (UDP to port 53, IPv4 or IPv6, on a device with an
 * Ethernet header) answered at once with an error RCODE, or lost, without any DNS server
 * taking part. The answer is the query itself turned around: QR and RA set, the RCODE
 * written, addresses, ports and MACs swapped, and redirected to the same device's ingress,
 * so the resolver's socket receives it from the server it asked. The question and any EDNS
 * OPT record stay as they were (a server echoes the question; an OPT record in an answer is
 * what EDNS servers send), so no length changes and the only bytes the checksums see change
 * are the flags: one incremental fix (swapping addresses or ports leaves a ones' complement
 * sum as it was). */
#pragma once

#define TARDY_DNS_PORT 53

/* What tardy_dns_fault() did. */
#define TARDY_DNS_PASS 0
#define TARDY_DNS_ANSWERED 1 /* turned into an answer and redirected: return TARDY_TC_ACT_REDIRECT */
#define TARDY_DNS_LOST 2

struct tardy_dns_hdr {
    __u16 id;
    __u16 flags; /* network order */
    __u16 qdcount, ancount, nscount, arcount;
};

/* A query's name, as read from the packet. */
struct tardy_dns_name {
    __u8 b[256];
    __u32 len; /* bytes read (the name is within them when it is well formed) */
};

/* Scratch for the name, per CPU: 260 bytes would not fit the stack beside the caller's. */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct tardy_dns_name);
} tardy_dns_scratch SEC(".maps");

/* Step of the label walk (bpf_loop): stops at the root label; records the name's length and
 * whether the suffix would start on a label boundary. */
struct tardy_label_walk {
    struct tardy_dns_name *n;
    __u32 at;        /* offset of the current label's length byte */
    __u32 qlen;      /* the name's length with its root label, once found; 0: not well formed */
    __u32 boundary;  /* the offset the suffix must start at */
    __u32 on_boundary;
};

static long tardy_label_step(__u32 i, void *ctx)
{
    struct tardy_label_walk *w = ctx;
    __u32 at = w->at;
    __u8 len;

    __u64 idx = at;

    if (at >= w->n->len || at >= 255)
        return 1;
    if (at == w->boundary)
        w->on_boundary = 1;
    asm volatile("" : "+r"(idx));
    len = w->n->b[idx & 0xff];
    if (len == 0) {
        w->qlen = at + 1;
        return 1;
    }
    if (len > 63) /* a pointer or a reserved type: no query name uses them */
        return 1;
    w->at = at + 1 + len;
    return 0;
}

/* Compare step (bpf_loop): the name's tail against the rule's suffix, ignoring case. */
struct tardy_suffix_cmp {
    const struct tardy_rule *r;
    struct tardy_dns_name *n;
    __u32 start;
    __u32 differ;
};

static long tardy_suffix_step(__u32 k, void *ctx)
{
    struct tardy_suffix_cmp *c = ctx;
    __u64 at = c->start + k, idx = k;
    __u8 a;

    if (k >= c->r->dns_name_len || k >= TARDY_DNS_NAME_MAX)
        return 1;
    /* masked after a barrier: the compiler would drop a mask it knows changes nothing, and
     * the verifier needs it to bound the index */
    asm volatile("" : "+r"(at), "+r"(idx));
    a = c->n->b[at & 0xff];
    if (a >= 'A' && a <= 'Z')
        a += 'a' - 'A';
    if (a != c->r->dns_name[idx & (TARDY_DNS_NAME_MAX - 1)]) {
        c->differ = 1;
        return 1;
    }
    return 0;
}

/* Does the query name at off end in the rule's suffix (at a label boundary)? */
static __always_inline bool tardy_dns_name_matches(struct __sk_buff *skb, __u32 off, const struct tardy_rule *r)
{
    struct tardy_label_walk w = {};
    struct tardy_suffix_cmp c = {};
    struct tardy_dns_name *n;
    __u32 zero = 0;
    __u64 avail;

    if (!r->dns_name_len)
        return true;
    n = bpf_map_lookup_elem(&tardy_dns_scratch, &zero);
    if (!n)
        return false;
    if (skb->len <= off)
        return false;
    avail = skb->len - off;
    if (avail > 255)
        avail = 255;
    /* 1..256 by arithmetic, after a barrier: the compiler keeps the mask, and older verifiers
     * (6.1) learn no lower bound from a test against 0 */
    avail -= 1;
    asm volatile("" : "+r"(avail));
    avail = (avail & 0xff) + 1;
    if (bpf_skb_load_bytes(skb, off, n->b, avail))
        return false;
    n->len = avail;
    w.n = n;
    w.boundary = 0xffffffff;
    bpf_loop(128, tardy_label_step, &w, 0);
    if (!w.qlen || w.qlen < r->dns_name_len)
        return false;
    /* again, now that the suffix's place is known: it must start a label */
    w.at = 0;
    w.boundary = w.qlen - r->dns_name_len;
    w.on_boundary = 0;
    bpf_loop(128, tardy_label_step, &w, 0);
    if (!w.on_boundary)
        return false;
    c.r = r;
    c.n = n;
    c.start = w.boundary;
    bpf_loop(TARDY_DNS_NAME_MAX, tardy_suffix_step, &c, 0);
    return !c.differ;
}

/* The DNS fault of rule r on a packet the target sends (a global function: checked once by
 * the verifier, whatever its caller). */
__noinline int tardy_dns_fault(struct __sk_buff *skb, const struct tardy_rule *r)
{
    struct tardy_counters *cnt;
    struct tardy_dns_hdr h;
    struct tardy_l4_at at;
    __u16 dport, flags;
    __u32 l4, dns;
    bool v4;

    if (!skb || !r || !r->dns_rcode)
        return TARDY_DNS_PASS;
    if (!tardy_l4_of(skb, 17, &at))
        return TARDY_DNS_PASS;
    l4 = at.l4;
    v4 = at.v4;
    if (bpf_skb_load_bytes(skb, l4 + 2, &dport, 2) || dport != bpf_htons(TARDY_DNS_PORT))
        return TARDY_DNS_PASS;
    dns = l4 + 8;
    if (bpf_skb_load_bytes(skb, dns, &h, sizeof(h)))
        return TARDY_DNS_PASS;
    flags = bpf_ntohs(h.flags);
    /* a standard query (QR 0, opcode 0) with one question */
    if ((flags & 0xf800) || h.qdcount != bpf_htons(1))
        return TARDY_DNS_PASS;
    if (!tardy_dns_name_matches(skb, dns + sizeof(h), r))
        return TARDY_DNS_PASS;
    if (!tardy_chance_ppm(r->dns_ppm))
        return TARDY_DNS_PASS;
    cnt = tardy_counters_of(r);
    if (cnt)
        cnt->dns++;
    if (r->dns_rcode == TARDY_DNS_TIMEOUT)
        return TARDY_DNS_LOST;
    {
        /* QR, and RA (a recursive server's answer); opcode, RD and CD as asked */
        __u16 answer = bpf_htons(0x8000 | (flags & 0x7910) | 0x0080 | (r->dns_rcode & 0xf));
        __u16 asked = h.flags;

        if (bpf_l4_csum_replace(skb, l4 + 6, asked, answer, 2 | (v4 ? BPF_F_MARK_MANGLED_0 : 0)))
            return TARDY_DNS_PASS;
        if (bpf_skb_store_bytes(skb, dns + 2, &answer, 2, 0))
            return TARDY_DNS_LOST;
    }
    if (tardy_turn_around(skb, &at))
        return TARDY_DNS_LOST; /* half turned around: it can be neither query nor answer */
    bpf_redirect(skb->ifindex, BPF_F_INGRESS);
    return TARDY_DNS_ANSWERED;
}
