// SPDX-License-Identifier: Apache-2.0
// What every fault backend (packets at TC, socket calls, file calls, stalls, and those to
// come) offers the agent: the agent keeps the injections and asks each backend that an
// injection uses to put it in the kernel, take it out, and count what it did. Adding a fault
// kind means a backend and its model, not another branch in the agent.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/error.hpp"
#include "model/spec.hpp"
#include "sys/cgroup.hpp"
#include "sys/fd.hpp"
#include "sys/netns.hpp"
#include "loader/sock_object.hpp"

namespace tardy {

struct DeviceKey {
    uint64_t netns = 0;
    int ifindex = 0;
    auto operator<=>(const DeviceKey&) const = default;
};

struct Injection {
    std::string name;
    Cgroup cg;
    NetFaults net;
    SockFaults sock;
    Filter filter;  // the packet and socket faults' traffic
    std::vector<StallSpec> stalls;
    std::vector<NetnsRef> netns;          // where the packet faults' devices are
    std::vector<std::string> want_devices;  // empty: every non-loopback device
    uint64_t expires_ns = 0;
    uint64_t for_ns = 0;
    uint32_t slot = 0;
    uint32_t flow_seed = 0;  // tc: the --flows draw's seed, kept by an update
    uint64_t revision = 0;   // updates so far: the base a client merged its change into
    bool force = false;  // --force: may replace a configured root qdisc
    // Filled in by the backends:
    std::vector<std::string> replaced_qdiscs;  // e.g. "netem 8001: on eth0", restored at the end
    std::vector<DeviceKey> devices;       // tc: the devices it holds
    std::vector<DeviceKey> in_devices;    // tc: the devices where it delays ingress
    std::vector<DeviceKey> csum_devices;  // tc: the devices where it corrupts (checksum offload held off)
    std::vector<std::string> device_names;
    std::vector<CgroupLink> links;        // sock: programs on the target cgroup
    // Cohort metrics: the target is the experiment cohort; a control, or the cgroups of an
    // observation (which has no faults). Empty cohorts with measured: the target alone.
    struct CohortRef {
        std::string role;
        Cgroup cg;
    };
    std::vector<CohortRef> cohorts;
    bool observe = false;          // measures, injects nothing
    bool measure = false;          // --measure: the target measured without a control
    bool measured = false;
    std::string unmeasured_reason;  // why `tardy stats` has nothing for it
    // bound (wire::Inject): the requesting process, whose exit ends the injection.
    int64_t owner_pid = 0;
    Fd owner;  // its pidfd, readable once it has exited
};

// Counters of one injection, summed over the backends it uses.
struct FaultCounters {
    uint64_t matched = 0, delayed = 0, dropped = 0, bytes = 0;  // packets
    uint64_t calls = 0, failed = 0, stalled = 0;                  // syscalls
    uint64_t connects_refused = 0;  // of failed: connect() calls failed at once
    uint64_t duplicated = 0, reordered = 0, paced = 0;  // packets (netem's shapes)
    uint64_t dns = 0;                                   // DNS queries failed (--dns)
    uint64_t resets = 0;                                // TCP connections reset (--reset)
    uint64_t corrupted = 0;                             // packets with a bad checksum (--corrupt)
    FaultCounters& operator+=(const FaultCounters& o) {
        corrupted += o.corrupted;
        matched += o.matched, delayed += o.delayed, dropped += o.dropped, bytes += o.bytes;
        duplicated += o.duplicated, reordered += o.reordered, paced += o.paced, dns += o.dns, resets += o.resets;
        calls += o.calls, failed += o.failed, stalled += o.stalled, connects_refused += o.connects_refused;
        return *this;
    }
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual const char* name() const = 0;
    virtual bool used_by(const Injection& inj) const = 0;
    // Whether this backend can hold inj next to `other`, an active injection on the same
    // cgroup (both use it); most hold one rule per cgroup, the packet backend several.
    virtual bool shares_cgroup() const { return false; }
    // Loads the BPF object on first use, puts the injection's rule and attaches what it
    // needs. On failure nothing of this injection is left in this backend.
    virtual Result<void> add(Injection& inj) = 0;
    // Removes the injection's rule and what only it needed.
    virtual Result<void> remove(Injection& inj) = 0;
    // `tardy update`: rewrites the rule with next's faults and expiry (same kinds: used_by is
    // the same for both) in one map update, so no packet or call meets no rule meanwhile; the
    // slot, and so the counters, stay. On failure the old rule is in place.
    virtual Result<void> update(const Injection& inj, const Injection& next) = 0;
    // No injection uses this backend any more: detach the programs every process pays for.
    virtual void unused() {}
    virtual void count(const Injection& inj, FaultCounters& c) const = 0;
};

}  // namespace tardy
