// SPDX-License-Identifier: Apache-2.0
// The loaded cohort-metrics object (bpf/metrics.bpf.c): links of its programs to cohort
// cgroups, and reading what it measured, per cgroup id.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "loader/cgroup_link.hpp"
#include "model/cohort.hpp"
#include "model/error.hpp"

struct tardy_metrics;

namespace tardy {

class MetricsObject {
public:
    static Result<std::unique_ptr<MetricsObject>> load();
    ~MetricsObject();
    MetricsObject(const MetricsObject&) = delete;
    MetricsObject& operator=(const MetricsObject&) = delete;

    // Links the sock_ops and the two cgroup_skb programs to the cgroup directory. The links
    // get one record, zeroed, which counts the sockets of that cgroup and of every cgroup
    // below it, and which goes with the last of them.
    Result<std::vector<CgroupLink>> attach(const std::string& cgroup_path);
    // What was counted in the records of these linked cgroups since they were linked, per
    // cgroup id; a cgroup not linked has no entry (the counters and histograms only:
    // failed_tardy and tardy_* are the agent's to fill).
    Result<std::map<uint64_t, CohortMetrics>> read(const std::set<uint64_t>& cgids) const;

private:
    MetricsObject() = default;
    tardy_metrics* skel_ = nullptr;
};

}  // namespace tardy
