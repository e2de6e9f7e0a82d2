// SPDX-License-Identifier: Apache-2.0
// The injection model: what to do to whom, for how long. Parsed and validated before
// anything in the kernel is touched.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/error.hpp"
#include "model/filter.hpp"
#include "model/net_shape.hpp"
#include "model/sock_faults.hpp"

namespace tardy {

struct NetFaults {
    uint64_t delay_ns = 0;
    uint64_t jitter_ns = 0;
    uint32_t loss_ppm = 0;
    uint32_t flows_ppm = 0;  // --flows: the share of flows hit, sticky per 5-tuple; 0: every flow
    // TARDY_SCOPE_* bits: --direction (egress, ingress or both) and --setup-only
    uint32_t scope = TARDY_SCOPE_EGRESS;
    // netem's shapes (model/net_shape.hpp): tardy_rule's fields of the same names.
    uint32_t dist = TARDY_DIST_UNIFORM;  // --distribution: the shape of the jitter
    uint32_t corr_ppm = 0;               // --correlation
    // Gilbert-Elliott loss (--loss-burst, --loss-gemodel); ge_p_ppm 0: loss_ppm, independent.
    // loss_ppm then holds the model's mean loss, for people.
    uint32_t ge_p_ppm = 0, ge_r_ppm = 0, ge_bad_loss_ppm = 0, ge_good_loss_ppm = 0;
    uint32_t duplicate_ppm = 0;          // --duplicate
    uint32_t reorder_ppm = 0;            // --reorder: that share skips the delay
    uint32_t reorder_gap = 0;            // --reorder-gap: netem's gap (0 or 1: none)
    uint64_t rate_bytes_per_s = 0;       // --rate
    uint32_t dns_rcode = 0;              // --dns: 0 none, an RCODE, or TARDY_DNS_TIMEOUT
    uint32_t dns_ppm = 0;
    std::string dns_name;                // --dns-name as given (normalised: no dots at the ends)
    uint32_t reset_ppm = 0;              // --reset: share of TCP connections reset
    uint32_t corrupt_ppm = 0;            // --corrupt: share of packets the receiver's checksum rejects
    bool any() const {
        return delay_ns || loss_ppm || duplicate_ppm || rate_bytes_per_s || dns_rcode || reset_ppm || corrupt_ppm;
    }
    bool paces() const { return delay_ns || rate_bytes_per_s; }  // sets departure times: needs fq
    bool egress() const { return scope & TARDY_SCOPE_EGRESS; }
    bool ingress() const { return scope & TARDY_SCOPE_INGRESS; }
    bool egress_fq() const { return egress() && paces(); }        // fq on the devices
    bool ingress_delay() const { return ingress() && delay_ns; }  // the ifb and TC ingress
};

// --stall NAME=DUR[:PCT], scoped by the injection's --on and --path (same in every stall).
struct StallSpec {
    std::string name;       // a name stall_syscalls() knows
    std::vector<long> nrs;  // the syscalls it covers (model/syscalls.hpp)
    uint64_t delay_ns = 0;
    uint32_t ppm = 1'000'000;
    std::string on;         // "", "files" or "sockets": the kind of the call's fd
    std::string path;       // "" or absolute: the call's fd must be a file at or under it
};
Result<StallSpec> parse_stall(const std::string& spec);
// Applies --on and --path to every stall; refused for a call that acts on no fd.
Result<void> scope_stalls(std::vector<StallSpec>& stalls, const std::string& on, const std::string& path);
std::string describe(const std::vector<StallSpec>& stalls);

// The target as the user named it; resolution to a cgroup happens in targets.hpp.
// Pid: one or more PIDs joined by ','. Pod: a pod UID, `container` optionally one container
// id (prefix) of that pod.
struct TargetRef {
    enum class Kind { Cgroup, Pid, Container, Pod } kind = Kind::Cgroup;
    std::string value;
    std::string container;
};

// What `tardy inject` asks for, after unit parsing.
struct InjectRequest {
    TargetRef target;
    NetFaults net;
    SockFaults sock;
    Filter filter;  // for the packet and socket faults alike
    std::vector<StallSpec> stalls;
    uint64_t for_ns = 5ULL * 60 * 1'000'000'000;  // 5m
    std::string name;                             // empty: the agent picks one
    std::vector<std::string> devices;             // empty: every non-loopback device
    std::string netns;                            // empty: found from the target's processes
    bool force = false;                           // allow the root cgroup / the agent's own
    std::optional<TargetRef> control;             // the control cohort, measured beside the target
    bool measure = false;                         // --measure: the target measured, no control
};

// Raw strings from the command line, before units are parsed.
struct InjectArgs {
    std::string cgroup, pid, container, pod;  // pid: PIDs joined by ','
    std::string delay, jitter, loss, flows, for_dur, name, netns, path;
    std::string direction;    // --direction egress|ingress|both
    ShapeArgs shape;          // --distribution, --correlation, --loss-burst, ..., --rate
    bool setup_only = false;  // --setup-only
    std::vector<std::string> devices, fails, stalls;
    FilterArgs filter;  // --peer, --except-peer, --port, --except-port, --proto
    std::string on;  // --on files|sockets (stalls)
    bool force = false;
    std::string control, control_pid, control_container;  // --control CGROUP, --control-pid, --control-container
    bool measure = false;                                 // --measure
};

Result<InjectRequest> build_inject_request(const InjectArgs& a);

// Names are used as identifiers in list/stop: keep them shell- and file-friendly.
Result<void> validate_name(const std::string& name);

std::string describe(const NetFaults& f);  // "delay 50ms±10ms, loss 5%"
std::string describe(const InjectRequest& r);  // network and socket faults together

void to_json(nlohmann::json& j, const StallSpec& s);
void from_json(const nlohmann::json& j, StallSpec& s);
void to_json(nlohmann::json& j, const NetFaults& f);
void from_json(const nlohmann::json& j, NetFaults& f);

}  // namespace tardy
