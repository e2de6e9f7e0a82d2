// SPDX-License-Identifier: Apache-2.0
// The agent's wire protocol, defined once: every request and reply as a type, with its JSON
// form, used by the client (agent/inject.cpp, agent/client.cpp, cli/) and the agent
// (agent/agent.cpp). One JSON object per line each way over the agent's Unix socket.
//
// Every line carries "v": kProtocolVersion; one without "v" is taken as version 1. Requests
// carry "op" too; replies carry "ok" and, when it is false, "user" and "error". An agent
// refuses a request of another version (request.cpp) and answers in its own version; the
// client refuses a reply of another version (check_reply_version) with one line naming both
// versions and the fix. Checking what arrives is validate_request()'s job (request.hpp): the
// from_json conversions here assume a checked request and fill absent fields with defaults.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/error.hpp"
#include "model/sock_faults.hpp"
#include "model/spec.hpp"

namespace tardy::wire {

// 2: the peer and port filter moved from "sock" to "filter", for every fault of the injection.
// 3: net.scope: the direction of packet faults, and TCP connection setup only.
// 4: cohorts and observe in inject; the stats request.
// 5: bound in inject (the injection ends when the requesting process exits); raw in stats.
// 6: the update request.
// 7: net.corrupt_ppm and net.reorder_gap (an agent of 6 would have ignored them: no damage, no
//    gap, and no error).
inline constexpr int kProtocolVersion = 7;

// ---- requests ----------------------------------------------------------------------------------

struct CgroupRef {
    std::string path;  // absolute, under the cgroup2 mount
    std::string rel;   // as shown to people: below the mount
    uint64_t id = 0;   // the directory's inode
};

struct NetnsRef {
    uint64_t ino = 0;  // the namespace's identity (nsfs inode)
    std::string path;  // how to open it
};

// A cohort measured besides the target (the experiment): a control, or an observed cgroup.
struct CohortWire {
    std::string role;  // "control" or "observed"
    CgroupRef cgroup;
};

// {"op":"inject"}: the target resolved to a cgroup and, for packet faults, its namespaces.
// With observe: no fault; the cohorts (the target first) are measured only.
struct Inject {
    std::string name;  // empty: the agent picks one
    CgroupRef cgroup;
    NetFaults net;
    SockFaults sock;
    Filter filter;
    std::vector<StallSpec> stalls;
    uint64_t for_ns = 0;
    std::vector<NetnsRef> netns;       // read only with packet faults
    std::vector<std::string> devices;  // empty: every non-loopback device
    bool force = false;
    std::vector<CohortWire> cohorts;
    bool observe = false;
    bool measure = false;  // measure the target (the experiment cohort) without a control
    // Ends when the process that sent this request exits (the agent learns its pid from the
    // socket, SO_PEERCRED, and watches a pidfd): `tardy run`'s faults never outlive it.
    bool bound = false;
    static constexpr const char* kOp = "inject";
};

// {"op":"stats"}: the cohorts of one injection or observation (model/cohort.hpp's JSON).
struct Stats {
    std::string name;
    bool raw = false;  // also "raw": each cohort's counters and histogram buckets (model/cohort.hpp)
    static constexpr const char* kOp = "stats";
};

// {"op":"stop"}: one injection by name, or all. On the wire: {"all":true} or {"name":...}.
struct Stop {
    std::string name;
    bool all = false;
    static constexpr const char* kOp = "stop";
};

// {"op":"update"}: a live injection's faults changed in place (`tardy update`): the whole new
// net and sock faults (the client merges its flags into what `list` showed), with the same
// kinds as before; for_ns, if not 0, a new deadline counted from now. Slot, counters, filter,
// devices and links stay. revision, when not -1, is the injection's revision that the client
// merged into (`list` shows it): the agent refuses the update, with kStaleUpdate, if another
// update came in between, and the client merges again; two racing updates then both land.
struct Update {
    std::string name;
    NetFaults net;
    SockFaults sock;
    uint64_t for_ns = 0;
    int64_t revision = -1;
    static constexpr const char* kOp = "update";
};
inline constexpr const char* kStaleUpdate = "changed by another update since it was read";

struct List {
    static constexpr const char* kOp = "list";
};

struct Ping {
    static constexpr const char* kOp = "ping";
};

// ---- replies (with "ok": true) -----------------------------------------------------------------

struct InjectReply {
    std::string name;
    std::vector<std::string> devices;  // where packet faults attached
};

struct Counters {
    uint64_t matched = 0, delayed = 0, dropped = 0, bytes = 0;  // packets
    uint64_t calls = 0, failed = 0, stalled = 0;                  // syscalls
    uint64_t duplicated = 0, reordered = 0, paced = 0;            // packets: --duplicate, --reorder, --rate
    uint64_t dns = 0;                                             // DNS queries failed by --dns
    uint64_t resets = 0;                                          // TCP connections reset by --reset
    uint64_t corrupted = 0;                                       // packets given a bad checksum by --corrupt
};

// One active injection. `tardy list --json` prints these as they are.
struct InjectionInfo {
    std::string name;
    std::string cgroup;  // rel
    uint64_t cgroup_id = 0;
    NetFaults net;
    SockFaults sock;
    Filter filter;
    std::vector<StallSpec> stalls;
    std::string faults;  // all of them described, for people
    uint64_t left_ns = 0;
    std::vector<std::string> devices;
    std::vector<std::string> replaced_qdiscs;
    Counters counters;
    std::string control;  // the control cohort's cgroup, "" for none
    bool observe = false;
    bool measured = false;
    int64_t owner_pid = 0;  // bound: the process whose exit ends it
    uint64_t revision = 0;  // updates so far (Update.revision)
};

struct ListReply {
    std::vector<InjectionInfo> injections;
    int64_t agent_pid = 0;
};

struct StopReply {
    std::vector<std::string> stopped;
};

struct PingReply {
    int64_t pid = 0;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(CgroupRef, path, rel, id)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(NetnsRef, ino, path)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(CohortWire, role, cgroup)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Inject, name, cgroup, net, sock, filter, stalls, for_ns, netns, devices, force,
                                                cohorts, observe, measure, bound)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Stats, name, raw)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Update, name, net, sock, for_ns, revision)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(InjectReply, name, devices)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Counters, matched, delayed, dropped, bytes, calls, failed, stalled,
                                                duplicated, reordered, paced, dns, resets, corrupted)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(InjectionInfo, name, cgroup, cgroup_id, net, sock, filter, stalls, faults,
                                                left_ns, devices, replaced_qdiscs, counters, control, observe, measured, owner_pid,
                                                revision)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ListReply, injections, agent_pid)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(StopReply, stopped)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(PingReply, pid)
void to_json(nlohmann::json& j, const Stop& s);
void from_json(const nlohmann::json& j, Stop& s);
inline void to_json(nlohmann::json& j, const List&) { j = nlohmann::json::object(); }
inline void from_json(const nlohmann::json&, List&) {}
inline void to_json(nlohmann::json& j, const Ping&) { j = nlohmann::json::object(); }
inline void from_json(const nlohmann::json&, Ping&) {}

// A request line's object: the body with "op" and "v".
template <typename Req>
nlohmann::json request(const Req& r) {
    nlohmann::json j = r;
    j["op"] = Req::kOp;
    j["v"] = kProtocolVersion;
    return j;
}

// A successful reply's object: the body with "ok": true and "v".
template <typename Rep>
nlohmann::json reply(const Rep& r) {
    nlohmann::json j = r;
    j["ok"] = true;
    j["v"] = kProtocolVersion;
    return j;
}

// The protocol version of a line: its "v", 1 when absent, -1 when not a whole number.
int64_t version_of(const nlohmann::json& line);

// The agent's refusal of a request whose "v" is `shown`.
Error request_version_error(const std::string& shown);

// The client's check of a reply: one of another version is a user error naming both
// versions and the fix. Never throws.
Result<void> check_reply_version(const nlohmann::json& reply);

// A checked reply as its type; a reply that does not fit is an error, not an exception.
template <typename Rep>
Result<Rep> read_reply(const nlohmann::json& j) {
    try {
        return j.get<Rep>();
    } catch (const std::exception& e) {
        return Error::other(std::string("the agent sent a reply this tardy cannot read: ") + e.what());
    }
}

}  // namespace tardy::wire
