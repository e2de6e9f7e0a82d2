// SPDX-License-Identifier: Apache-2.0
// Cohort metrics in the agent: which cgroups are measured for which injection or
// observation, the links of the metric programs (to each measured cgroup: the record a link
// has counts that cgroup and the cgroups below it), and reports over each owner's life.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "agent/backend.hpp"
#include "loader/metrics_object.hpp"
#include "model/cohort.hpp"

namespace tardy {

class Cohorts {
public:
    // Adds tardy's own doing to a cohort's cumulative reading (its injections' counters).
    using AddTardy = std::function<void(const Cgroup& cohort, CohortMetrics&)>;
    explicit Cohorts(AddTardy add_tardy) : add_tardy_(std::move(add_tardy)) {}

    // Starts measuring the owner's cohorts: loads and links what is needed, and reads the
    // baseline the owner's reports count from. On failure nothing of it is left.
    Result<void> measure(const std::string& owner, const std::vector<Injection::CohortRef>& cohorts);
    void forget(const std::string& owner);
    Result<CohortReport> report(const std::string& owner) const;
    std::vector<CohortReport> reports() const;
    // Reads every linked cgroup's record once a second (the agent's tick calls it): the
    // kernel frees a record with its cgroup (once the cgroup is removed and its last socket
    // closed), and what it had counted stays in the cohort's reading from the last read.
    void refresh(uint64_t now_ns);

private:
    Result<void> relink();
    // A linked cgroup's record as the kernel has it now, or as it was last read if the
    // kernel has freed it.
    Result<CohortMetrics> record(uint64_t id) const;
    Result<std::vector<CohortMetrics>> readings(const std::vector<Injection::CohortRef>& cohorts) const;
    AddTardy add_tardy_;
    std::unique_ptr<MetricsObject> obj_;
    struct Owner {
        std::vector<Injection::CohortRef> cohorts;
        std::vector<CohortMetrics> base;
        uint64_t start_ns = 0;
    };
    std::map<std::string, Owner> owners_;
    std::map<uint64_t, std::vector<CgroupLink>> links_;  // measured cgroup -> its links
    mutable std::map<uint64_t, CohortMetrics> last_;      // measured cgroup -> its last reading
    uint64_t next_refresh_ns_ = 0;
};

}  // namespace tardy
