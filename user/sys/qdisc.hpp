// SPDX-License-Identifier: Apache-2.0
// The root qdisc of one network device: record it, swap in another (fq for EDT delay), put it back.
//
// Talks rtnetlink through libmnl. Every function acts in the calling thread's current network
// namespace (callers setns() a thread into the target namespace first), and opens its own
// netlink socket there, so nothing here is tied to one namespace or shared between threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/error.hpp"

namespace tardy {

// The root qdisc of one device, as it was.
struct QdiscSnapshot {
    int ifindex = 0;
    std::string ifname;
    std::string kind;              // "noqueue", "pfifo_fast", "mq", "htb", "noop" (device never up)
    uint32_t handle = 0;           // 0x80040000 for 8004:; 0 for a qdisc the kernel made itself
    std::vector<uint8_t> options;  // raw TCA_OPTIONS payload, replayed verbatim on restore
    // The kernel made it (handle 0: pfifo_fast, noqueue, mq, or noop on a device never up).
    // Restoring deletes our root so the kernel makes its default again.
    bool is_default = false;
    // What replacing this root destroys and restoring cannot rebuild, e.g. "2 classes, 1 filter";
    // empty when restore is exact. Only a non-default root can have any.
    std::string not_restored;

    bool operator==(const QdiscSnapshot&) const = default;
};

// Dumps RTM_GETQDISC and picks the device's entry with parent TC_H_ROOT. A device with no
// entry (down and never up: the kernel's built-in noop, which dumps hide) gives kind "noop".
// Fails with err ENODEV when there is no such device.
Result<QdiscSnapshot> root_qdisc(int ifindex);
// Packets queued in the root qdisc now (its TCA_STATS_QUEUE qlen; 0 for a device with none).
Result<uint32_t> root_qdisc_qlen(int ifindex);

// Makes a new root qdisc of `kind` with kernel-default options and a kernel-chosen handle
// (NLM_F_CREATE|NLM_F_REPLACE; a non-default root of the same kind is deleted first, as the
// kernel would otherwise keep it). Fails with err ENOENT and a message naming the kind when the
// kernel has no such qdisc.
Result<void> replace_root_qdisc(int ifindex, const std::string& kind, const std::vector<uint8_t>& options = {});

// TCA_OPTIONS for the fq that enforces tardy's delays: queues deep enough to hold a delay's
// worth of a fast flow (fq's defaults, 100 packets a flow and 10000 in all, drop a 20 ms
// delayed TCP stream's packets where netem, with limit 10000, would not).
std::vector<uint8_t> fq_options_for_delay();

// Puts the snapshot back: a default root by deleting the current root, any other by creating
// kind + handle + options at the root. A no-op when the root already has the snapshot's kind and
// handle (so it is safe to repeat after a crash). Fails with err ENODEV when the device is gone
// and without touching anything when the ifindex now names a different device.
Result<void> restore_root_qdisc(const QdiscSnapshot& s);

// A user error naming the device and what would be lost when s.not_restored is not empty.
Result<void> check_restorable(const QdiscSnapshot& s);
// "netem 8001:" (kind and handle), for messages.
std::string describe(const QdiscSnapshot& s);

// Whether the kernel can make a qdisc of `kind` (loading its module if that is how it is built).
// Probes on the loopback device of a throwaway network namespace, made by unshare(CLONE_NEWNET)
// on a thread of its own, so no existing device or namespace is touched. Kinds that cannot be a
// root on loopback (mq, mqprio, taprio need a multiqueue device) still count as available when
// the kernel knows them. Needs CAP_SYS_ADMIN (for the namespace) and CAP_NET_ADMIN.
Result<bool> qdisc_kind_available(const std::string& kind);


// One line for the journal, e.g.
// "qdisc-v1 ifindex=5 ifname=eth0 kind=htb handle=00010000 default=0 options=<hex> lost=<hex>".
std::string encode(const QdiscSnapshot& s);
Result<QdiscSnapshot> decode(const std::string& line);

}  // namespace tardy
