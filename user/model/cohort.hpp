// SPDX-License-Identifier: Apache-2.0
// Cohort metrics as user space sees them: the kernel's counters and log-linear histograms
// (bpf/metrics.bpf.c) summed over a cohort's cgroups, over an interval, with the quantiles
// read from the histograms. One JSON shape for `stats --json`, `observe --json` and the
// experiment runner; the Prometheus text is made from the same values (model/prometheus.hpp).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/error.hpp"

namespace tardy {

// A log-linear histogram of microseconds, bucket layout as in include/tardy/abi.h.
struct Histogram {
    std::map<uint32_t, uint64_t> buckets;  // bucket index -> samples

    static uint32_t bucket_of(uint64_t us);  // the same arithmetic as the BPF side
    static uint64_t lower_us(uint32_t bucket);
    static uint64_t width_us(uint32_t bucket);  // lower_us(b) + width_us(b) is the next lower bound
    uint64_t count() const;
    double sum_us() const;                      // by bucket middles
    // The q-quantile (0 < q <= 1) in us: the middle of the bucket that holds it; 0 when empty.
    double quantile_us(double q) const;
    // How many samples are at most `us` (whole buckets whose upper bound is <= us).
    uint64_t count_at_most_us(double us) const;
    void add(const Histogram& o);
    void subtract(const Histogram& o);  // o must be an earlier reading of the same histogram
};

// What a cohort did over an interval. TCP counts are of TCP sockets created in the cohort.
struct CohortMetrics {
    uint64_t connects = 0;          // active opens (SYN sent) plus connect() calls tardy refused
    uint64_t established = 0;
    uint64_t accepted = 0;          // passive opens
    uint64_t failed_refused = 0;    // RST to the SYN
    uint64_t failed_timeout = 0;    // SYN retries ran out, or another error
    uint64_t failed_abandoned = 0;  // the client closed the socket before an answer
    uint64_t failed_tardy = 0;      // connect() failed at once by a tardy fault (never reached TCP)
    uint64_t retransmits = 0, rtos = 0;
    uint64_t resets_sent = 0, resets_received = 0;
    uint64_t packets_out = 0, bytes_out = 0, packets_in = 0, bytes_in = 0;
    Histogram connect_us, rtt_us;
    // tardy's own doing to the cohort (its injections' counters)
    uint64_t tardy_dropped = 0, tardy_delayed = 0, tardy_failed = 0, tardy_stalled = 0;

    uint64_t failed() const { return failed_refused + failed_timeout + failed_abandoned + failed_tardy; }
    void add(const CohortMetrics& o);
    void subtract(const CohortMetrics& o);  // o: an earlier reading
};

struct Cohort {
    std::string role;    // "experiment", "control" or "observed"
    std::string cgroup;  // below the cgroup2 mount
    uint64_t cgroup_id = 0;
    CohortMetrics m;
};

// The cohorts of one injection or observation, over [since, now].
struct CohortReport {
    std::string name;
    double seconds = 0;  // the interval measured
    std::vector<Cohort> cohorts;
};

// {"name", "seconds", "cohorts": [{"role", "cgroup", "tcp": {...}, "packets": {...},
// "tardy": {...}}], "difference": {...}} (docs/metrics.md has every key).
nlohmann::json to_json(const CohortReport& r);
nlohmann::json cohort_json(const Cohort& c);

// Every field of CohortMetrics as it is, histograms as [[bucket, count], ...]: what the agent
// sends for {"op":"stats","raw":true}, so a client can take differences over any interval.
nlohmann::json raw_json(const CohortMetrics& m);
// The inverse; absent keys are 0, anything of the wrong type an error (never throws).
Result<CohortMetrics> metrics_from_raw(const nlohmann::json& j);

}  // namespace tardy
