// SPDX-License-Identifier: Apache-2.0
// The agent's state: the injections, their slots and names, and the backends that put them
// in the kernel. Driven by the event loop in run.cpp; requests come in already validated
// (model/request.hpp).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/agent.hpp"
#include "agent/backends.hpp"
#include "agent/cohorts.hpp"
#include "agent/devices.hpp"
#include "agent/log.hpp"
#include "sys/journal.hpp"

namespace tardy {

class Agent {
public:
    Agent(const AgentOptions& o, std::unique_ptr<TcObject> obj);

    // `caller`: the requesting process (SO_PEERCRED), 0 when unknown; a bound inject needs it.
    nlohmann::json handle(const nlohmann::json& req, pid_t caller = 0);
    // Every measured injection's cohorts, and every injection's counters (for /metrics).
    std::vector<CohortReport> cohort_reports() const { return cohorts_.reports(); }
    std::vector<std::pair<const Injection*, FaultCounters>> counters() const;
    std::string prometheus() const;  // /metrics: every injection's counters and cohorts
    void tick();  // renews the lease, ends what reached its deadline or lost its target
    void end_all();
    void arm() { __atomic_store_n(&tc_->control()->armed, 1u, __ATOMIC_SEQ_CST); }
    bool idle() const { return injections_.empty() && !devices_.draining(); }
    uint64_t last_activity_ns = mono_ns();
    StallBackend& stalls() { return *stalls_; }

private:
    nlohmann::json inject(const nlohmann::json& req, pid_t caller);
    nlohmann::json list();
    nlohmann::json stop(const nlohmann::json& req);
    FaultCounters count(const Injection& inj) const;  // summed over the backends it uses
    nlohmann::json update(const nlohmann::json& req);
    nlohmann::json stats(const nlohmann::json& req);
    // Starts the injection's measuring (before its faults, so the baseline has none of them).
    // Required for an observation or with a control; otherwise a failure only leaves it
    // unmeasured, with the reason.
    Result<void> start_measuring(Injection& inj);
    void add_tardy(const Cgroup& cohort, CohortMetrics& m) const;
    Result<void> end(const std::string& name);
    // Ends an injection that nobody stopped (its deadline, its target gone): logged, and kept
    // in ended.json for `tardy list`, which may run after this agent has left.
    void end_by_itself(const std::string& name, const std::string& reason);
    bool target_gone(const Injection& inj) const;
    // Tells each backend that no injection but `leaving` uses any more that it is unused:
    // host-wide programs (stall tracepoints, LSM hooks) cost every process while attached.
    void release_unused(const std::string& leaving);

    AgentOptions o_;
    std::unique_ptr<TcObject> tc_;
    Journal journal_;
    DeviceManager devices_;
    StallBackend* stalls_ = nullptr;
    std::vector<std::unique_ptr<Backend>> backends_;  // in the order faults are put in place
    Cohorts cohorts_{[this](const Cgroup& cg, CohortMetrics& m) { add_tardy(cg, m); }};
    std::map<std::string, Injection> injections_;
    std::vector<uint32_t> free_slots_;
    // The final counters of injections that ended, by target cgroup: a cohort's reading counts
    // them on, so tardy's doing in it only grows while it is measured (an observation's step
    // ending must not take its failures out of the observation). Cleared when nothing is left.
    struct Retired {
        Cgroup cg;
        FaultCounters c;
    };
    std::map<uint64_t, Retired> retired_;  // by target cgroup id
    uint64_t next_auto_name_ = 1;
    uint64_t next_target_check_ns_ = 0;
    nlohmann::json ended_ = nlohmann::json::array();  // the last few, newest last
};

}  // namespace tardy
